package commands

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// The expiration manager revokes leases when they expire, when their token is revoked, and on
// request. It runs only live on an unsealed node — replaying the log never calls a backend — and
// it appends lease.revoked.v1 only after the backend undid the side effect. A backend that is
// down is retried with capped exponential backoff; at most maxRevocations run at once, so a
// storm of expiries cannot open a storm of connections.
type expiration struct {
	c   *Core
	st  *unsealed
	sem chan struct{}

	mu       sync.Mutex
	inflight map[string]chan struct{} // lease ID → closed when the attempt ends
	retry    map[string]retryState
	wake     chan struct{}
}

type retryState struct {
	attempts int
	next     time.Time
	lastErr  string
}

const (
	maxRevocations = 16
	maxBackoff     = 5 * time.Minute
)

func newExpiration(c *Core, st *unsealed) *expiration {
	return &expiration{c: c, st: st, sem: make(chan struct{}, maxRevocations),
		inflight: map[string]chan struct{}{}, retry: map[string]retryState{}, wake: make(chan struct{}, 1)}
}

func (x *expiration) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// run revokes expired leases until ctx ends. Leases that expired while the node was down or
// sealed are picked up at once: their expiry is in the past.
func (x *expiration) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-x.wake:
		}
		now := time.Now()
		for _, e := range x.st.leases.Expiring(now, 1000) {
			x.start(ctx, e.ID, "expired", now)
		}
		next := now.Add(time.Second)
		if t, ok := x.st.leases.NextExpiry(); ok && t.Before(next) {
			next = t
		}
		x.mu.Lock()
		for _, r := range x.retry {
			if r.next.Before(next) {
				next = r.next
			}
		}
		x.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(next), 5*time.Millisecond))
	}
}

// start launches a background revocation unless one is running or backing off.
func (x *expiration) start(ctx context.Context, id, reason string, now time.Time) {
	x.mu.Lock()
	if _, busy := x.inflight[id]; busy {
		x.mu.Unlock()
		return
	}
	if r, ok := x.retry[id]; ok && now.Before(r.next) {
		x.mu.Unlock()
		return
	}
	done := make(chan struct{})
	x.inflight[id] = done
	x.mu.Unlock()
	go func() {
		x.attempt(ctx, id, reason)
		close(done)
	}()
}

// revokeNow revokes synchronously (sys/leases/revoke with sync). If a background attempt is
// running it waits for it and then tries once more if the lease is still there.
func (x *expiration) revokeNow(ctx context.Context, id, reason string) error {
	for range 2 {
		x.mu.Lock()
		done, busy := x.inflight[id]
		if !busy {
			done = make(chan struct{})
			x.inflight[id] = done
			x.mu.Unlock()
			err := x.attempt(ctx, id, reason)
			close(done)
			return err
		}
		x.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if _, ok := x.st.leases.Get(id); !ok {
			return nil
		}
	}
	return fmt.Errorf("lease %s is being revoked by another request; retry", id)
}

// attempt runs one revocation of id; the caller registered it in inflight.
func (x *expiration) attempt(ctx context.Context, id, reason string) error {
	defer func() {
		x.mu.Lock()
		delete(x.inflight, id)
		x.mu.Unlock()
	}()
	e, ok := x.st.leases.Get(id)
	if !ok {
		return nil
	}
	select {
	case x.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := x.undo(ctx, e)
	<-x.sem
	now := time.Now()
	if err != nil {
		x.mu.Lock()
		r := x.retry[id]
		r.attempts++
		backoff := min(time.Duration(1<<min(r.attempts-1, 20))*time.Second, maxBackoff)
		r.next = now.Add(backoff)
		changed := r.lastErr != err.Error()
		r.lastErr = err.Error()
		x.retry[id] = r
		x.mu.Unlock()
		x.c.logger.Error("lease revocation failed; will retry", "lease_id", id, "attempt", r.attempts, "retry_in", backoff, "err", err)
		if changed {
			b, _ := json.Marshal(lease.FailedPayload{ID: id, Error: err.Error(), Attempts: r.attempts, Time: now})
			x.append(ctx, []ledger.Event{{Type: lease.RevocationFailed, Subject: ledger.SubjectFor("lease", id), Payload: b}})
		}
		x.poke()
		return err
	}
	x.mu.Lock()
	delete(x.retry, id)
	x.mu.Unlock()
	b, _ := json.Marshal(lease.RevokedPayload{ID: id, Reason: reason})
	return x.append(ctx, []ledger.Event{{Type: lease.Revoked, Subject: ledger.SubjectFor("lease", id), Payload: b}})
}

func (x *expiration) append(ctx context.Context, evs []ledger.Event) error {
	pos, err := x.c.log.Append(ctx, evs, x.c.termOf(ctx)...)
	if err == nil {
		err = x.st.runner.WaitFor(ctx, pos[len(pos)-1].Seq)
	}
	if err != nil && ctx.Err() == nil {
		x.c.logger.Error("append lease event", "err", err)
	}
	return err
}

// undo asks the owning backend to undo the lease's side effect.
func (x *expiration) undo(ctx context.Context, e lease.Entry) error {
	m, ok := x.st.mounts.Get(e.MountPath)
	if !ok || m.UUID != e.MountUUID {
		return fmt.Errorf("the mount %s that issued this lease is gone; use revoke-force to forget the lease", e.MountPath)
	}
	b, err := x.c.backend(x.st, m)
	if err != nil {
		return err
	}
	lb, ok := b.(engines.LeaseBackend)
	if !ok {
		return nil // nothing to undo
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return lb.RevokeLease(ctx, engineLease(e))
}

func engineLease(e lease.Entry) engines.Lease {
	return engines.Lease{ID: e.ID, Path: e.Path, MountPath: e.MountPath, MountUUID: e.MountUUID, IssueTime: e.IssueTime,
		ExpireTime: e.ExpireTime, MaxExpire: e.MaxExpire, Renewable: e.Renewable, InternalData: e.InternalData}
}

// revokeTokensLeases queues the leases of every token a batch of events revoked.
func (c *Core) afterEvents(ctx context.Context, st *unsealed, events []ledger.Event) {
	c.destroyCubbyholes(ctx, st, events)
	for _, ev := range events {
		if ev.Type != tokenview.Revoked {
			continue
		}
		var p tokenview.RevokedPayload
		if json.Unmarshal(ev.Payload, &p) != nil {
			continue
		}
		for _, id := range st.leases.ByToken(p.MAC) {
			st.expire.start(context.WithoutCancel(ctx), id, "token revoked", time.Now())
		}
	}
}

// newLeaseID is <mount><path>/<24 random base62 characters>, like Vault's.
func newLeaseID(mountPath, rel string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 24)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic("crypto/rand unavailable")
		}
		b[i] = alphabet[n.Int64()]
	}
	return mountPath + strings.TrimSuffix(rel, "/") + "/" + string(b)
}

// registerLease turns a backend's Secret into a lease event, capping its TTLs by the mount's.
func registerLease(req *engines.Request, m mount.Entry, em engines.Mount, s *engines.Secret) (ledger.Event, lease.IssuedPayload) {
	ttl := s.LeaseDuration
	if ttl <= 0 {
		ttl = em.DefaultLeaseTTL
	}
	maxTTL := s.MaxTTL
	if maxTTL <= 0 || maxTTL > em.MaxLeaseTTL {
		maxTTL = em.MaxLeaseTTL
	}
	ttl = min(ttl, maxTTL)
	p := lease.IssuedPayload{ID: newLeaseID(m.Path, req.Path), MountUUID: m.UUID, MountPath: m.Path, Path: req.Path,
		IssueTime: req.Now, ExpireTime: req.Now.Add(ttl), MaxExpire: req.Now.Add(maxTTL), Renewable: s.Renewable,
		InternalData: s.InternalData}
	if req.Caller != nil {
		p.TokenMAC = req.Caller.TokenMAC
	}
	s.LeaseID, s.LeaseDuration = p.ID, ttl
	b, _ := json.Marshal(p)
	return ledger.Event{Type: lease.Issued, Subject: ledger.SubjectFor("lease", p.ID), Payload: b}, p
}

// leasePaths serves sys/leases/* and the legacy sys/renew, sys/revoke*.
func (s *sysBackend) leasePaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	st, x := s.st, s.st.expire
	leaseID := func() (string, error) {
		id, err := engines.String(req.Data, "lease_id", "")
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", engines.BadRequest("field \"lease_id\" is required")
		}
		return id, nil
	}
	notFound := func(id string) error { return engines.BadRequest("lease not found: %q", id) }
	switch {
	case p == "leases/lookup" && isWrite(req.Op):
		id, err := leaseID()
		if err != nil {
			return nil, err
		}
		e, ok := st.leases.Get(id)
		if !ok {
			return nil, notFound(id)
		}
		d := map[string]any{"id": e.ID, "issue_time": e.IssueTime.Format(time.RFC3339Nano),
			"expire_time": e.ExpireTime.Format(time.RFC3339Nano), "last_renewal": nil, "renewable": e.Renewable,
			"ttl": max(int64(time.Until(e.ExpireTime)/time.Second), 0)}
		if !e.LastRenewal.IsZero() {
			d["last_renewal"] = e.LastRenewal.Format(time.RFC3339Nano)
		}
		if e.LastError != "" {
			d["revocation_error"], d["revocation_attempts"] = e.LastError, e.Attempts
		}
		return &engines.Response{Data: d}, nil
	case strings.HasPrefix(p, "leases/lookup") && req.Op == engines.OpList:
		prefix := strings.TrimPrefix(strings.TrimPrefix(p, "leases/lookup"), "/")
		if prefix != "" {
			prefix += "/"
		}
		return &engines.Response{Data: map[string]any{"keys": st.leases.Children(prefix)}}, nil
	case (p == "leases/renew" || p == "renew" || strings.HasPrefix(p, "renew/")) && isWrite(req.Op):
		id, err := leaseID()
		if strings.HasPrefix(p, "renew/") {
			id, err = strings.TrimPrefix(p, "renew/"), nil
		}
		if err != nil {
			return nil, err
		}
		return s.renewLease(ctx, req, id)
	case (p == "leases/revoke" || p == "revoke" || strings.HasPrefix(p, "revoke/") || strings.HasPrefix(p, "leases/revoke/")) && isWrite(req.Op):
		id, err := leaseID()
		if rest, ok := strings.CutPrefix(p, "revoke/"); ok {
			id, err = rest, nil
		} else if rest, ok := strings.CutPrefix(p, "leases/revoke/"); ok {
			id, err = rest, nil
		}
		if err != nil {
			return nil, err
		}
		if _, ok := st.leases.Get(id); !ok {
			return nil, nil // Vault: revoking an unknown lease succeeds
		}
		sync, err := engines.Bool(req.Data, "sync", true)
		if err != nil {
			return nil, err
		}
		if !sync {
			x.start(context.WithoutCancel(ctx), id, "revoked", time.Now())
			return &engines.Response{Status: 202, Data: map[string]any{}}, nil
		}
		if err := x.revokeNow(ctx, id, "revoked"); err != nil {
			return nil, engines.BadRequest("failed to revoke lease %s: %s (the credential was made unusable where the backend allows; Ledger keeps retrying)", id, err.Error())
		}
		return nil, nil
	case p == "leases/revoke-prefix" || p == "revoke-prefix" ||
		strings.HasPrefix(p, "leases/revoke-prefix/") || strings.HasPrefix(p, "revoke-prefix/"):
		if !isWrite(req.Op) {
			return nil, engines.ErrUnsupported
		}
		prefix := leasePrefix(st.leases, p, "revoke-prefix")
		if prefix == "" {
			return nil, engines.BadRequest("an empty prefix would revoke every lease; name a prefix such as database/creds/readonly/")
		}
		return nil, s.revokePrefix(ctx, prefix, "prefix")
	case p == "leases/revoke-force" || p == "revoke-force" ||
		strings.HasPrefix(p, "leases/revoke-force/") || strings.HasPrefix(p, "revoke-force/"):
		if !isWrite(req.Op) {
			return nil, engines.ErrUnsupported
		}
		prefix := leasePrefix(st.leases, p, "revoke-force")
		if prefix == "" {
			return nil, engines.BadRequest("an empty prefix would forget every lease; name a prefix")
		}
		var evs []ledger.Event
		for _, id := range st.leases.WithPrefix(prefix) {
			b, _ := json.Marshal(lease.RevokedPayload{ID: id, Reason: "forced"})
			evs = append(evs, ledger.Event{Type: lease.Revoked, Subject: ledger.SubjectFor("lease", id), Payload: b})
		}
		s.c.logger.Warn("revoke-force: forgetting leases without undoing them", "prefix", prefix, "count", len(evs))
		return &engines.Response{Events: evs}, nil
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q", "sys/"+p)
}

// leasePrefix reads the prefix of a revoke-prefix or revoke-force path (p without its trailing
// slash) as Vault does: a whole lease ID names that lease; anything else is whole path segments,
// so "database/creds/app/" and "database/creds/app" both mean role app's leases and never those
// of app-admin. "" is the empty prefix.
func leasePrefix(leases *lease.View, p, op string) string {
	prefix := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(p, "leases/"), op), "/")
	if prefix == "" {
		return ""
	}
	if _, ok := leases.Get(prefix); ok {
		return prefix
	}
	return prefix + "/"
}

// revokePrefix revokes every lease under prefix synchronously, in parallel up to the manager's
// bound; it reports the first failure after trying them all.
func (s *sysBackend) revokePrefix(ctx context.Context, prefix, reason string) error {
	ids := s.st.leases.WithPrefix(prefix)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.st.expire.revokeNow(ctx, id, reason)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return engines.BadRequest("failed to revoke some leases under %s (they are unusable where the backend allows; Ledger keeps retrying): %s", prefix, err.Error())
	}
	return nil
}

func (s *sysBackend) renewLease(ctx context.Context, req *engines.Request, id string) (*engines.Response, error) {
	st := s.st
	e, ok := st.leases.Get(id)
	if !ok {
		return nil, engines.BadRequest("lease not found: %q", id)
	}
	if !e.Renewable {
		return nil, engines.BadRequest("lease is not renewable")
	}
	inc, err := engines.Duration(req.Data, "increment", 0)
	if err != nil {
		return nil, err
	}
	if inc <= 0 {
		inc = e.ExpireTime.Sub(e.IssueTime)
		if !e.LastRenewal.IsZero() {
			inc = e.ExpireTime.Sub(e.LastRenewal)
		}
	}
	newExpire := req.Now.Add(inc)
	var warnings []string
	if newExpire.After(e.MaxExpire) {
		newExpire = e.MaxExpire
		warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
			inc.String(), e.MaxExpire.Sub(req.Now).Round(time.Second).String()))
	}
	m, ok := st.mounts.Get(e.MountPath)
	if !ok || m.UUID != e.MountUUID {
		return nil, engines.BadRequest("the mount that issued lease %s is gone", id)
	}
	b, err := s.c.backend(st, m)
	if err != nil {
		return nil, err
	}
	if lb, ok := b.(engines.LeaseBackend); ok {
		if err := lb.RenewLease(ctx, engineLease(e), newExpire); err != nil {
			return nil, engines.BadRequest("failed to renew lease %s: %s", id, err.Error())
		}
	}
	p, _ := json.Marshal(lease.RenewedPayload{ID: id, ExpireTime: newExpire, RenewTime: req.Now})
	ttl := newExpire.Sub(req.Now)
	return &engines.Response{Warnings: warnings, Data: map[string]any{},
		Secret: &engines.Secret{LeaseID: id, LeaseDuration: ttl, Renewable: true},
		Events: []ledger.Event{{Type: lease.Renewed, Subject: ledger.SubjectFor("lease", id), Payload: p}}}, nil
}
