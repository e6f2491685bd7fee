package commands

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Request is one API call, decoded from HTTP by httpapi. Op is OpUpdate for every write; the
// pipeline tells create from update with the backend's existence check.
type Request struct {
	ID         string
	Op         engines.Operation
	Path       string // without the /v1/ prefix or a leading slash
	Data       map[string]any
	Token      string
	RemoteAddr string
	// WrapTTL is the X-Vault-Wrap-TTL header: when set, the response is wrapped (wrapping.go).
	WrapTTL string
	// Help asks for the path's help and OpenAPI (`?help=1`) instead of the operation: the
	// backend is never called, so no data can answer it (openapi.go).
	Help bool

	wrapTTL time.Duration // WrapTTL, parsed and checked by Handle

	// Body, when set, decodes the request's body into Data. The pipeline calls it only after
	// the token is known to be allowed some write on the path, so a request that is refused
	// costs no decoding (and its audit record holds no body).
	Body func() (map[string]any, error)
}

// ErrInvalidPath: the path holds "..", NUL, control characters or surrounding spaces.
var ErrInvalidPath = errors.New("invalid request path")

// ValidatePath refuses paths that could be read two ways.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path: %w", ErrInvalidPath)
	}
	if err := checkUTF8(p); err != nil {
		return err
	}
	if strings.TrimSpace(p) != p {
		return fmt.Errorf("path %q has leading or trailing spaces: %w", p, ErrInvalidPath)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path contains a control character: %w", ErrInvalidPath)
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("path %q contains a %q segment: %w", p, seg, ErrInvalidPath)
		}
	}
	return nil
}

// Handle runs one request through the pipeline.
func (c *Core) Handle(ctx context.Context, r *Request) (*engines.Response, error) {
	if err := ValidatePath(r.Path); err != nil {
		return nil, engines.BadRequest("%s", err.Error())
	}
	c.mu.RLock()
	st := c.st
	if st == nil {
		c.mu.RUnlock()
		return nil, ErrSealed
	}
	term, standby := c.decisionTerm()
	sys := r.Path == "sys" || strings.HasPrefix(r.Path, "sys/")
	if standby && (c.activeOnly(st, r.Path) || (!sys && r.Op != engines.OpRead && r.Op != engines.OpList)) {
		// A write reaches a standby only when it lost the lease (or has not finished beginning
		// its term) after the HTTP edge looked: it is refused, never decided on these views.
		c.mu.RUnlock()
		return nil, ErrStandby
	}
	if term != 0 {
		ctx = context.WithValue(ctx, termKey{}, term)
	}
	if f := c.log.Floor(); !standby && f > st.runner.Applied() {
		// The writer took up the chain past what the views hold (another writer's batch,
		// found by a fence refusal): nothing is decided on views without it.
		wctx, cancel := context.WithTimeout(ctx, floorWait)
		err := st.runner.WaitFor(wctx, f)
		cancel()
		if err != nil {
			c.mu.RUnlock()
			return nil, fmt.Errorf("this node's views have not caught up with the log (%v): %w", err, ledger.ErrConflict)
		}
	}
	if !standby && c.opts.HA != nil && (r.Op == engines.OpRead || r.Op == engines.OpList) {
		// A batch this node is storing is in the stream before this node hears so, and a
		// standby may already have answered a read with it: a read here must not answer
		// with what came before it. So it waits for the stores in progress and for the views
		// to hold what they committed (a single node has no one to read ahead of it).
		wctx, cancel := context.WithTimeout(ctx, floorWait)
		seq, err := c.log.Settled(wctx)
		if err == nil && seq > st.runner.Applied() {
			err = st.runner.WaitFor(wctx, seq)
		}
		cancel()
		if err != nil {
			c.mu.RUnlock()
			return nil, fmt.Errorf("this node's writes in flight have not settled (%v): %w", err, ledger.ErrConflict)
		}
	}
	var trail auditTrail
	resp, after, err := c.quotaGate(ctx, st, r, &trail)
	if !trail.committed {
		// Reads, denials and failures: their audit record must be durable before the answer
		// leaves (fail-closed). Writes carried theirs inside their own batch.
		if aerr := c.auditRecord(ctx, st, r, &trail, resp, err); aerr != nil {
			c.logger.Error("audit record not stored; refusing to answer", "request_id", r.ID, "err", aerr)
			resp, after, err = nil, nil, fmt.Errorf("audit: %w", aerr)
		}
	}
	c.mu.RUnlock()
	if after != nil {
		after()
	}
	return resp, err
}

// auditTrail is what the pipeline learned about a request, for its audit record.
type auditTrail struct {
	req       *engines.Request // nil when the request failed before routing
	mountType string
	committed bool // the audit record went out inside the request's own batch
}

// route is where a request goes.
type route struct {
	mount   mount.Entry
	backend engines.Backend
	rel     string // path relative to the mount
}

func (c *Core) route(st *unsealed, path string) (route, error) {
	if path == "cubbyhole" || strings.HasPrefix(path, "cubbyhole/") {
		return c.cubbyholeRoute(st, path), nil
	}
	if isIdentityPath(path) {
		return c.identityRoute(st, path)
	}
	if path == "sys" || strings.HasPrefix(path, "sys/") {
		return route{mount: mount.Entry{Path: "sys/", Type: "system"}, backend: &sysBackend{c: c, st: st}, rel: strings.TrimPrefix(strings.TrimPrefix(path, "sys"), "/")}, nil
	}
	m, ok := st.mounts.Match(path)
	if !ok {
		return route{}, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", path)
	}
	b, err := c.backend(st, m)
	if err != nil {
		return route{}, err
	}
	return route{mount: m, backend: b, rel: strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(m.Path, "/")), "/")}, nil
}

func (c *Core) handle(ctx context.Context, st *unsealed, r *Request, trail *auditTrail) (*engines.Response, func(), error) {
	now := time.Now().UTC()
	rt, err := c.route(st, r.Path)
	if err != nil {
		return nil, nil, err
	}
	req := &engines.Request{ID: r.ID, Op: r.Op, Path: rt.rel, Mount: c.engineMount(rt.mount), Data: r.Data, RemoteAddr: r.RemoteAddr, Now: now}
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	trail.req, trail.mountType = req, rt.mount.Type
	if r.Help {
		// Help needs a valid token, and no capability on the path, as in Vault.
		if _, err := st.authenticate(r.Token, r.RemoteAddr, now); err != nil {
			return nil, nil, err
		}
		resp, err := c.help(rt, r.Path)
		return resp, nil, err
	}
	special, _ := rt.backend.(engines.PathsSpecial)
	var entry tokenview.Entry
	authenticated := special == nil || !matchAny(special.Unauthenticated(), rt.rel)
	if authenticated {
		entry, err = st.authenticate(r.Token, r.RemoteAddr, now)
		if err != nil {
			return nil, nil, err
		}
		req.Caller = callerOf(entry, now)
		// The body is decoded only once the token may write here at all (bounded work before
		// authorisation); the full decision, with parameters, follows under the lock.
		if !mayWrite(c.aclForToken(st, entry), req.Op, r.Path) {
			return nil, nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
		}
	}
	if err := decodeBody(r, req); err != nil {
		return nil, nil, err
	}

	if entry.NumUses > 0 {
		// A limited-use token serves one request at a time, so two concurrent requests cannot
		// both spend its last use: the second sees the view after the first's use event.
		defer st.locks.lock("token-use\x00" + entry.MAC)()
		if entry, err = st.authenticate(r.Token, r.RemoteAddr, now); err != nil {
			return nil, nil, err
		}
		ctx = enginetoken.WithClientToken(ctx, r.Token)
	} else if req.Caller != nil {
		ctx = enginetoken.WithClientToken(ctx, r.Token)
	}
	write := req.Op != engines.OpRead && req.Op != engines.OpList
	if lk, ok := rt.backend.(engines.Locker); ok && write {
		if key := lk.LockKey(req); key != "" {
			defer st.locks.lock(rt.mount.UUID + "\x00" + key)()
		}
	}
	if authenticated {
		// Create-vs-update, and so the capability it needs, is decided while the aggregate is
		// held: a create-only token cannot turn into an updater by racing another writer.
		if err := c.authorize(ctx, st, rt, special, req, entry, r); err != nil {
			return nil, nil, err
		}
	}
	resp, err := rt.backend.HandleRequest(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if resp == nil {
		resp = &engines.Response{}
	}
	warnIgnored(rt.backend, req, resp)
	ident, err := c.bindIdentity(st, req, rt, resp)
	if err != nil {
		return nil, nil, err
	}
	defer ident.unlock()
	events := resp.Events
	var issued *engines.Lease
	if resp.Secret != nil && resp.Secret.InternalData != nil {
		ev, p := registerLease(req, rt.mount, req.Mount, resp.Secret)
		events = append(events, ev)
		l := engineLease(lease.Entry{IssuedPayload: p})
		issued = &l
	}
	if entry.NumUses > 0 {
		// The use is recorded with the request's own events, so a limited-use token cannot be
		// used more often than allowed even under concurrency: each use is one event in order.
		events = append([]ledger.Event{enginetoken.UsedEvent(entry.MAC)}, events...)
	}
	if len(events) > 0 {
		events = append(events, c.auditEvents(st, r, trail, resp)...)
		for i := range events {
			if events[i].Actor == "" && req.Caller != nil {
				events[i].Actor = req.Caller.Accessor
			}
			events[i].Request = r.ID
		}
		// The request's context does not end the append nor the wait for the view: a client
		// that gives up (or times out) would otherwise release the aggregate's lock while its
		// batch is still queued and lands later, and the next writer would decide on a view
		// without it (two check-and-set writes both making the same KV version). The log bounds
		// the append itself (its commit deadline); the wait for the view is bounded here.
		held := context.WithoutCancel(ctx)
		pos, err := c.log.Append(held, events, c.termOf(ctx)...)
		if err != nil {
			if issued != nil {
				// The side effect happened but its lease was not recorded: undo it now.
				if lb, ok := rt.backend.(engines.LeaseBackend); ok {
					if rerr := lb.RevokeLease(context.WithoutCancel(ctx), *issued); rerr != nil {
						c.logger.Error("roll back unrecorded lease; the engine's reconciliation will find it", "path", r.Path, "err", rerr)
					}
				}
			}
			return nil, nil, fmt.Errorf("append: %w", err)
		}
		trail.committed = true
		wctx, cancel := context.WithTimeout(held, applyWait)
		err = st.runner.WaitFor(wctx, pos[len(pos)-1].Seq)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("apply: %w", err)
		}
		c.afterEvents(ctx, st, events)
		if sh, ok := rt.backend.(shredder); ok {
			if err := sh.Shred(ctx, resp.Events); err != nil {
				c.logger.Error("shred data keys", "path", r.Path, "err", err)
			}
		}
	}
	resp.Events = nil
	ident.finish(st, resp)
	resp.MountType = rt.mount.Type
	sb, _ := rt.backend.(*sysBackend)
	if sb != nil {
		return resp, sb.after, nil
	}
	return resp, nil, nil
}

// termKey carries, in a request's context, the leader epoch it is decided in.
type termKey struct{}

// termOf is the append option that stores a request's events only in the term it was decided
// in (none without HA).
func (c *Core) termOf(ctx context.Context) []ledger.AppendOption {
	if t, ok := ctx.Value(termKey{}).(uint64); ok && t != 0 {
		return []ledger.AppendOption{ledger.InTerm(t)}
	}
	return nil
}

// floorWait bounds how long a request waits for the views to apply batches another writer
// stored before this node's chain (Handle).
const floorWait = 10 * time.Second

// applyWait bounds how long a write holds its aggregate's lock waiting for this node's views to
// apply its own committed batch.
const applyWait = 2 * time.Minute

// shredder is implemented by backends that destroy data keys after their events are applied.
type shredder interface {
	Shred(ctx context.Context, events []ledger.Event) error
}

func (c *Core) engineMount(m mount.Entry) engines.Mount {
	em := engines.Mount{Path: m.Path, Type: m.Type, UUID: m.UUID, Accessor: m.Accessor, Options: m.Options,
		DefaultLeaseTTL: m.DefaultLeaseTTL, MaxLeaseTTL: m.MaxLeaseTTL}
	if em.DefaultLeaseTTL == 0 {
		em.DefaultLeaseTTL = DefaultLeaseTTL
	}
	if em.MaxLeaseTTL == 0 {
		em.MaxLeaseTTL = MaxLeaseTTL
	}
	return em
}

// System-wide lease TTLs, as Vault's defaults.
const (
	DefaultLeaseTTL = 768 * time.Hour
	MaxLeaseTTL     = 768 * time.Hour
)

// authenticate resolves a token to its entry. Every failure is the same 403, so a probe learns
// nothing about which tokens exist.
func (st *unsealed) authenticate(token, remote string, now time.Time) (tokenview.Entry, error) {
	denied := engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	if token == "" || len(token) > 512 {
		return tokenview.Entry{}, denied
	}
	e, ok := st.tokens.ByMAC(st.keyring.Load().MAC("token", token))
	if !ok {
		return tokenview.Entry{}, denied
	}
	if !e.ExpireTime.IsZero() && !now.Before(e.ExpireTime) {
		return tokenview.Entry{}, denied
	}
	if len(e.BoundCIDRs) > 0 && !inCIDRs(remote, e.BoundCIDRs) {
		return tokenview.Entry{}, denied
	}
	return e, nil
}

func inCIDRs(remote string, cidrs []string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, c := range cidrs {
		if _, n, err := net.ParseCIDR(c); err == nil && n.Contains(ip) {
			return true
		}
		if c == host {
			return true
		}
	}
	return false
}

func callerOf(e tokenview.Entry, now time.Time) *engines.Caller {
	c := &engines.Caller{TokenMAC: e.MAC, Accessor: e.Accessor, Policies: e.Policies, DisplayName: e.DisplayName,
		EntityID: e.EntityID, Meta: e.Meta, Root: slices.Contains(e.Policies, "root"), Orphan: e.Orphan, Period: e.Period}
	if !e.ExpireTime.IsZero() {
		c.TTL = e.ExpireTime.Sub(now)
	}
	return c
}

// aclFor returns the merged ACL of the named policies, parsing each set once per version.
func (c *Core) aclFor(st *unsealed, names []string) *acl.ACL {
	var key strings.Builder
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		key.WriteString(n)
		if e, ok := st.policies.Get(n); ok {
			fmt.Fprintf(&key, "@%s", e.Version)
		}
		key.WriteByte(0)
	}
	k := key.String()
	st.acls.mu.RLock()
	a, ok := st.acls.m[k]
	st.acls.mu.RUnlock()
	if ok {
		return a
	}
	var pols []*acl.Policy
	for _, n := range sorted {
		if p := builtinPolicy(n); p != nil {
			pols = append(pols, p)
			continue
		}
		if n == "root" {
			p, _ := acl.Parse("root", `path "*" { capabilities = ["sudo"] }`)
			p.Name = "root"
			pols = append(pols, p)
			continue
		}
		e, ok := st.policies.Get(n)
		if !ok {
			continue
		}
		p, err := acl.Parse(n, e.Text)
		if err != nil {
			c.logger.Error("stored policy does not parse; ignoring it", "policy", n, "err", err)
			continue
		}
		pols = append(pols, p)
	}
	a = acl.New(pols...)
	st.acls.mu.Lock()
	if len(st.acls.m) > 10000 {
		st.acls.m = map[string]*acl.ACL{}
	}
	st.acls.m[k] = a
	st.acls.mu.Unlock()
	return a
}

func aclOp(op engines.Operation) acl.Operation {
	switch op {
	case engines.OpCreate:
		return acl.Create
	case engines.OpRead:
		return acl.Read
	case engines.OpPatch:
		return acl.Patch
	case engines.OpDelete:
		return acl.Delete
	case engines.OpList:
		return acl.List
	}
	return acl.Update
}

// matchAny reports whether path matches one of the patterns (exact, or prefix with a trailing *).
func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if strings.Contains(p, "+") {
			if matchSegments(p, path) {
				return true
			}
			continue
		}
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(path, pre) {
				return true
			}
		} else if p == path {
			return true
		}
	}
	return false
}
