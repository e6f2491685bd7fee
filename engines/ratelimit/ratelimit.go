// Package ratelimit is the brute-force brake of the login paths: token buckets of failed
// attempts, keyed by whatever the caller names (a source address, a user name, a role ID).
//
// State lives in memory on the node that takes the login, and nowhere else: it is not in the
// log, not replicated and not in snapshots, and it starts empty when the backend holding the
// limiter is rebuilt (at every unseal). An attacker spreading guesses over N nodes therefore
// gets N times the budget; the log still records every failure through the audit trail.
//
// A login first Takes one attempt from every bucket it touches, all or nothing, and gives the
// attempts back with Refund when it succeeds. Reserving before the check (instead of counting
// failures afterwards) is what keeps concurrent guesses from all slipping through while the
// first of them is still being verified.
package ratelimit

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the buckets a Limiter remembers (a few MiB), so a flood of distinct
// names cannot grow memory without end.
const DefaultMaxKeys = 100_000

// Limiter allows burst attempts per key, regained evenly over per (one every per/burst). It is
// a token bucket kept as a single time per key, the instant at which the bucket will be full
// again (GCRA), so that it needs no floating point and a full bucket is simply no entry. It is
// safe for concurrent use.
type Limiter struct {
	mu       sync.Mutex
	per      time.Duration
	interval time.Duration // per / burst: the cost of one attempt
	maxKeys  int
	full     map[[16]byte]time.Time // key → when its bucket is full again
}

// New returns a limiter of burst attempts per key, regained at burst per `per`, remembering at
// most maxKeys keys (DefaultMaxKeys when maxKeys ≤ 0).
func New(burst int, per time.Duration, maxKeys int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if per <= 0 {
		per = time.Minute
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{per: per, interval: per / time.Duration(burst), maxKeys: maxKeys, full: map[[16]byte]time.Time{}}
}

// id keeps keys fixed-size whatever their length (user names are attacker-chosen).
func id(key string) [16]byte {
	s := sha256.Sum256([]byte(key))
	return [16]byte(s[:16])
}

// Take consumes one attempt from the bucket of every key, or from none: when a bucket is empty
// it returns false and how long until that bucket (the slowest, if several) holds an attempt
// again. A clock that steps backwards regains nothing.
func (l *Limiter) Take(now time.Time, keys ...string) (ok bool, retryAfter time.Duration) {
	ids := make([][16]byte, len(keys))
	for i, k := range keys {
		ids[i] = id(k)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range ids {
		next := l.after(k, now).Add(l.interval)
		if over := next.Sub(now) - l.per; over > wait {
			wait = over
		}
	}
	if wait > 0 {
		return false, wait
	}
	for _, k := range ids {
		if _, known := l.full[k]; !known {
			l.makeRoom(now)
		}
		l.full[k] = l.after(k, now).Add(l.interval)
	}
	return true, 0
}

// after is the later of now and when k's bucket is full. Callers hold mu.
func (l *Limiter) after(k [16]byte, now time.Time) time.Time {
	if t, ok := l.full[k]; ok && t.After(now) {
		return t
	}
	return now
}

// Refund gives back the attempt Take consumed for each key (a successful login costs nothing).
func (l *Limiter) Refund(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		kid := id(k)
		t, ok := l.full[kid]
		if !ok {
			continue
		}
		if t = t.Add(-l.interval); t.After(now) {
			l.full[kid] = t
		} else {
			delete(l.full, kid) // a full bucket is the same as none
		}
	}
}

// Len is the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.full)
}

// makeRoom keeps the map under maxKeys before a new key is added. Full buckets go first (they
// remember nothing); if that is not enough, arbitrary ones go down to 90%, which forgets some
// failures but never lets the memory grow. Callers hold mu.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.full) < l.maxKeys {
		return
	}
	for k, t := range l.full {
		if !t.After(now) {
			delete(l.full, k)
		}
	}
	for k := range l.full {
		if len(l.full) < l.maxKeys*9/10 {
			break
		}
		delete(l.full, k)
	}
}
