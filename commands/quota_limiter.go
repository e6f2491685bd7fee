package commands

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/quota"
)

// quotaBuckets count requests for rate-limit quotas: per quota and client address, a fixed
// window of Interval holding Rate requests (Vault's limiter store works the same way), and a
// block until a time for quotas with block_interval. State is per node and in memory, as in
// Vault; it starts over when a quota is rewritten.
type quotaBuckets struct {
	mu     sync.Mutex
	quotas map[string]*quotaCounters // by quota name
}

type quotaCounters struct {
	version ledger.Position
	clients map[string]*window
}

type window struct {
	index        int64 // which interval since the epoch
	used         int
	blockedUntil time.Time
}

// maxClients bounds the clients one quota remembers; stale ones go first.
const maxClients = 100_000

// rateResult is one decision, with what Vault's response headers say about it.
type rateResult struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Duration // until the window refills
	retryAfter time.Duration // when refused: until the client may try again
}

func (m *miscState) rateLimiter() *quotaBuckets {
	m.quotasOnce.Do(func() { m.buckets = &quotaBuckets{quotas: map[string]*quotaCounters{}} })
	return m.buckets
}

func (b *quotaBuckets) take(q quota.Quota, client string, now time.Time) rateResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	qc := b.quotas[q.Name]
	if qc == nil || qc.version != q.Version {
		qc = &quotaCounters{version: q.Version, clients: map[string]*window{}}
		b.quotas[q.Name] = qc
	}
	interval := q.Interval
	if interval <= 0 {
		interval = time.Second
	}
	idx := now.UnixNano() / int64(interval)
	limit := max(1, int(math.Round(q.Rate)))
	res := rateResult{limit: limit, reset: time.Duration((idx+1)*int64(interval) - now.UnixNano())}
	w := qc.clients[client]
	if w == nil {
		if len(qc.clients) >= maxClients {
			qc.sweep(idx, now)
		}
		w = &window{index: idx}
		qc.clients[client] = w
	}
	if now.Before(w.blockedUntil) {
		res.retryAfter = w.blockedUntil.Sub(now)
		return res
	}
	if w.index != idx {
		w.index, w.used = idx, 0
	}
	if w.used < limit {
		w.used++
		res.allowed, res.remaining = true, limit-w.used
		return res
	}
	res.retryAfter = res.reset
	if q.BlockInterval > 0 {
		w.blockedUntil = now.Add(q.BlockInterval)
		res.retryAfter = q.BlockInterval
	}
	return res
}

// sweep forgets clients whose window is over and who are not blocked; if that is not enough,
// arbitrary ones, so memory stays bounded whatever addresses arrive.
func (qc *quotaCounters) sweep(idx int64, now time.Time) {
	for k, w := range qc.clients {
		if w.index < idx && !now.Before(w.blockedUntil) {
			delete(qc.clients, k)
		}
	}
	for k := range qc.clients {
		if len(qc.clients) < maxClients*9/10 {
			break
		}
		delete(qc.clients, k)
	}
}

// RateLimitHeaders collects the rate-limit headers of one request for the HTTP edge (set only
// when sys/quotas/config enables them).
type RateLimitHeaders struct {
	mu sync.Mutex
	h  [][2]string
}

type rateLimitHeadersKey struct{}

// WithRateLimitHeaders returns a context that collects the request's rate-limit headers.
func WithRateLimitHeaders(ctx context.Context) (context.Context, *RateLimitHeaders) {
	h := &RateLimitHeaders{}
	return context.WithValue(ctx, rateLimitHeadersKey{}, h), h
}

// Each calls set for every header collected.
func (h *RateLimitHeaders) Each(set func(k, v string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, kv := range h.h {
		set(kv[0], kv[1])
	}
}

func reportRateLimit(ctx context.Context, r rateResult) {
	h, _ := ctx.Value(rateLimitHeadersKey{}).(*RateLimitHeaders)
	if h == nil {
		return
	}
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) }
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h = append(h.h, [2]string{"X-Ratelimit-Limit", strconv.Itoa(r.limit)},
		[2]string{"X-Ratelimit-Remaining", strconv.Itoa(r.remaining)},
		[2]string{"X-Ratelimit-Reset", secs(r.reset)})
	if !r.allowed {
		h.h = append(h.h, [2]string{"Retry-After", secs(r.retryAfter)})
	}
}
