package auth

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Token is the current auto-auth token, shared by everything that needs it.
// Subscribers wait on the channel Get returns, closed at the next change.
type Token struct {
	mu      sync.Mutex
	value   string
	expires time.Time // zero: no expiry known
	changed chan struct{}
}

// NewToken returns an empty token holder.
func NewToken() *Token { return &Token{changed: make(chan struct{})} }

// Get returns the current token ("" before the first login) and a channel
// closed when it changes.
func (t *Token) Get() (string, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.value, t.changed
}

// Expires tells when the current token stops working, if known.
func (t *Token) Expires() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expires
}

func (t *Token) set(v string, ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ttl > 0 {
		t.expires = time.Now().Add(ttl)
	} else {
		t.expires = time.Time{}
	}
	if v == t.value {
		return
	}
	t.value = v
	close(t.changed)
	t.changed = make(chan struct{})
}

// Handler runs auto-auth: login, sinks, renewal, re-authentication.
type Handler struct {
	Client     *api.Client // no token set; cloned per use
	Method     Method
	Sinks      []FileSink
	MinBackoff time.Duration
	MaxBackoff time.Duration
	ExitOnErr  bool // the first failed login ends Run
	Logger     *slog.Logger
	Token      *Token

	reauth chan struct{}
	once   sync.Once
}

func (h *Handler) init() {
	h.once.Do(func() { h.reauth = make(chan struct{}, 1) })
}

// Reauthenticate asks for a new login because a caller saw the token
// refused (403). Requests coalesce, and Run honours them immediately only
// once: repeated refusals wait a backoff that doubles up to MaxBackoff, so a
// policy that denies a path never turns into a login loop.
func (h *Handler) Reauthenticate() {
	h.init()
	select {
	case h.reauth <- struct{}{}:
	default:
	}
}

// Run logs in and keeps a valid token in h.Token until ctx ends. With
// once, it returns after the first successful login and sink writes
// (exit_after_auth).
func (h *Handler) Run(ctx context.Context, once bool) error {
	h.init()
	b := backoff{min: h.MinBackoff, max: h.MaxBackoff}
	forced := backoff{min: h.MinBackoff, max: h.MaxBackoff}
	var lastForced time.Time
	for {
		secret, err := h.Method.Login(ctx, h.Client)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if h.ExitOnErr {
				return err
			}
			wait := b.next()
			h.Logger.Error("auto-auth: login failed; retrying", "error", err, "backoff", wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		b.reset()
		tok := secret.Auth.ClientToken
		ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
		h.Token.set(tok, ttl)
		h.Logger.Info("auto-auth: authenticated", "accessor", secret.Auth.Accessor, "ttl", ttl, "renewable", secret.Auth.Renewable)
		for _, s := range h.Sinks {
			if err := s.Write(tok); err != nil {
				h.Logger.Error("auto-auth: sink write failed", "path", s.Path, "error", err)
			} else {
				h.Logger.Info("auto-auth: token written", "path", s.Path)
			}
		}
		if once {
			return nil
		}
		reason := h.keepAlive(ctx, tok, ttl, secret.Auth.Renewable)
		switch reason {
		case stopCtx:
			return nil
		case stopForced:
			// The first refusal after a quiet spell re-authenticates at once;
			// further ones back off.
			if time.Since(lastForced) > h.MaxBackoff {
				forced.reset()
			} else if !sleep(ctx, forced.next()) {
				return nil
			}
			lastForced = time.Now()
			h.Logger.Warn("auto-auth: token refused by the server; re-authenticating")
		default:
			h.Logger.Info("auto-auth: token can no longer be renewed; re-authenticating")
		}
	}
}

type stopReason int

const (
	stopCtx stopReason = iota
	stopForced
	stopExpired
)

// keepAlive renews the token at about two-thirds of its TTL until renewal is
// refused or its max TTL is near, then returns so Run logs in again. While
// the server cannot be reached it retries with backoff, as long as the token
// may still be alive.
func (h *Handler) keepAlive(ctx context.Context, tok string, ttl time.Duration, renewable bool) stopReason {
	c, err := h.Client.Clone()
	if err != nil {
		return stopExpired
	}
	c.SetToken(tok)
	expires := time.Now().Add(ttl)
	granted := ttl
	b := backoff{min: h.MinBackoff, max: h.MaxBackoff}
	for {
		var wait <-chan time.Time
		if ttl > 0 {
			d := time.Duration(float64(time.Until(expires)) * (2.0/3.0 + rand.Float64()/6))
			if !renewable {
				// Log in again before the token dies.
				select {
				case <-ctx.Done():
					return stopCtx
				case <-h.reauth:
					return stopForced
				case <-time.After(d):
					return stopExpired
				}
			}
			wait = time.After(d)
		}
		select {
		case <-ctx.Done():
			return stopCtx
		case <-h.reauth:
			return stopForced
		case <-wait:
		}
		s, err := c.Auth().Token().RenewSelfWithContext(ctx, int(granted.Seconds()))
		if err != nil {
			var re *api.ResponseError
			if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests {
				h.Logger.Warn("auto-auth: renewal refused", "status", re.StatusCode)
				return stopExpired
			}
			if time.Now().After(expires) {
				return stopExpired
			}
			d := b.next()
			h.Logger.Warn("auto-auth: renewal failed; retrying", "error", err, "backoff", d.Round(time.Millisecond))
			if !sleep(ctx, d) {
				return stopCtx
			}
			continue
		}
		b.reset()
		if s == nil || s.Auth == nil {
			return stopExpired
		}
		newTTL := time.Duration(s.Auth.LeaseDuration) * time.Second
		expires = time.Now().Add(newTTL)
		h.Token.set(tok, newTTL)
		h.Logger.Debug("auto-auth: token renewed", "ttl", newTTL)
		if newTTL < granted/3 {
			// The max TTL caps renewals now: use what is left, then log in.
			renewable = false
		}
		ttl = newTTL
	}
}

// backoff is exponential with ±25% jitter, so agents restarted together
// do not hammer a recovering server in step.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	return time.Duration(float64(b.cur) * (0.75 + rand.Float64()/2))
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
