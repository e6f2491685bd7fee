package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cache holds responses that carry a lease (dynamic secrets) or a new token
// (logins, token create), as Vault Agent's lease cache does, so that a
// client asking again with the same token and request gets the same lease
// instead of a new credential. Entries leave when their lease ends, when a
// revocation passes through the proxy, and when the watcher finds the lease
// or token gone on the server.
type Cache struct {
	mu      sync.Mutex
	entries map[string]*entry // by request key
	byLease map[string]string // lease ID -> key
}

type entry struct {
	key       string
	status    int
	header    http.Header
	body      []byte
	leaseID   string
	newToken  string // a token created by this request (login, token create)
	token     string // the token that asked
	stored    time.Time
	granted   time.Duration // the last lease duration the server granted
	first     time.Duration // the lease duration at issue
	expires   time.Time
	renewable bool
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{entries: map[string]*entry{}, byLease: map[string]string{}}
}

// requestKey identifies a request: method, path, query, body and the token
// that sent it (a lease is only ever handed back to the token that got it).
func requestKey(method, path, query string, body []byte, token string) string {
	h := sha256.New()
	for _, s := range []string{method, path, query, token} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// envelope is the part of a Vault response the cache reads.
type envelope struct {
	LeaseID       string `json:"lease_id"`
	LeaseDuration int    `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
	Auth          *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int    `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
	} `json:"auth"`
}

// store keeps a response if it is worth keeping: 200 with a lease or a
// new token that expires.
func (c *Cache) store(key, token string, status int, header http.Header, body []byte) {
	if status != http.StatusOK {
		return
	}
	var env envelope
	if json.Unmarshal(body, &env) != nil {
		return
	}
	e := &entry{key: key, status: status, header: header.Clone(), body: body, token: token, stored: time.Now()}
	switch {
	case env.LeaseID != "" && env.LeaseDuration > 0:
		e.leaseID, e.granted, e.renewable = env.LeaseID, time.Duration(env.LeaseDuration)*time.Second, env.Renewable
	case env.Auth != nil && env.Auth.ClientToken != "" && env.Auth.LeaseDuration > 0:
		e.newToken, e.granted, e.renewable = env.Auth.ClientToken, time.Duration(env.Auth.LeaseDuration)*time.Second, env.Auth.Renewable
	default:
		return
	}
	e.expires, e.first = e.stored.Add(e.granted), e.granted
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok && old.leaseID != "" {
		delete(c.byLease, old.leaseID)
	}
	c.entries[key] = e
	if e.leaseID != "" {
		c.byLease[e.leaseID] = key
	}
}

// lookup returns a cached response with its lease_duration cut to what is
// left, so the client schedules its renewal or re-fetch from the truth. An
// entry with less than a third of its lease left is a miss: a client
// re-fetching near the end wants a fresh secret, not the dying one.
func (c *Cache) lookup(key string) (*entry, []byte, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	left := time.Until(e.expires)
	if left < e.first/3 || left < 2*time.Second {
		c.evictKey(key)
		return nil, nil, false
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(e.body))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return nil, nil, false
	}
	secs := int(left.Seconds())
	if e.leaseID != "" {
		m["lease_duration"] = secs
	} else if a, ok := m["auth"].(map[string]any); ok {
		a["lease_duration"] = secs
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, nil, false
	}
	return e, body, true
}

func (c *Cache) evictKey(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		delete(c.byLease, e.leaseID)
		delete(c.entries, key)
	}
}

// EvictLease drops the entry holding leaseID; it reports whether there was one.
func (c *Cache) EvictLease(leaseID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, ok := c.byLease[leaseID]
	if !ok {
		return false
	}
	delete(c.byLease, leaseID)
	delete(c.entries, key)
	return true
}

// EvictPrefix drops every lease under prefix.
func (c *Cache) EvictPrefix(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, key := range c.byLease {
		if strings.HasPrefix(id, prefix) {
			delete(c.byLease, id)
			delete(c.entries, key)
			n++
		}
	}
	return n
}

// EvictToken drops what token asked for and what created token itself.
func (c *Cache) EvictToken(token string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for key, e := range c.entries {
		if e.token == token || e.newToken == token {
			delete(c.byLease, e.leaseID)
			delete(c.entries, key)
			n++
		}
	}
	return n
}

// renewed records a successful renewal that passed through the proxy.
func (c *Cache) renewed(leaseID string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if key, ok := c.byLease[leaseID]; ok {
		e := c.entries[key]
		e.granted, e.expires = d, time.Now().Add(d)
	}
}

// Len is the number of cached responses.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) snapshot() []entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]entry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, *e)
	}
	return out
}

// Watch polls the server for every cached lease (sys/leases/lookup, which
// Vault's default policy allows) and token (lookup-self) every interval,
// evicts what is gone, and calls revoked for each evicted lease. It is how
// a `lease revoke` done elsewhere reaches the agent within seconds rather
// than at the next renewal. When the token that holds a lease is itself no
// longer valid, its entries go and denied is called, so auto-auth logs in
// again instead of waiting for its next renewal.
func (c *Cache) Watch(ctx context.Context, client *api.Client, interval time.Duration, logger *slog.Logger, revoked func(leaseID string), denied func(token string)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, e := range c.snapshot() {
			cc, err := client.Clone()
			if err != nil {
				return
			}
			var gone bool
			if e.leaseID != "" {
				cc.SetToken(e.token)
				_, err = cc.Logical().WriteWithContext(ctx, "sys/leases/lookup", map[string]any{"lease_id": e.leaseID})
				gone = isStatus(err, http.StatusBadRequest) || isStatus(err, http.StatusNotFound)
				if isStatus(err, http.StatusForbidden) {
					if _, err := cc.Auth().Token().LookupSelfWithContext(ctx); isStatus(err, http.StatusForbidden) {
						n := c.EvictToken(e.token)
						logger.Warn("cache: the token holding cached leases is no longer valid; evicted", "entries", n)
						if denied != nil {
							denied(e.token)
						}
						continue
					}
				}
			} else {
				cc.SetToken(e.newToken)
				_, err = cc.Auth().Token().LookupSelfWithContext(ctx)
				gone = isStatus(err, http.StatusForbidden)
			}
			if !gone {
				continue
			}
			c.evictKey(e.key)
			if e.leaseID != "" {
				logger.Info("cache: lease revoked on the server; evicted", "lease_id", e.leaseID)
				if revoked != nil {
					revoked(e.leaseID)
				}
			} else {
				logger.Info("cache: token revoked on the server; evicted")
			}
		}
	}
}

func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}
