// Package token is Vault's token auth method, mounted at auth/token/: it creates, looks up,
// renews and revokes tokens, with Vault's paths, parameters, rules and messages. It decides the
// token events (projections/token folds them) and never appends them itself. Auth methods
// (approle, userpass) issue their login tokens through it too: ParseParams and PopulateParams
// handle their token_* fields, Issue decides the token.
//
// A token string exists only in the response that hands it out: the engine stores and finds
// tokens by keyring.MAC("token", token), and no error, event or log line carries one.
package token

import (
	"context"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Default lease TTLs when neither the mount nor the system sets them (Vault's 32 days).
const (
	defaultTTL    = 768 * time.Hour
	defaultMaxTTL = 768 * time.Hour
)

// TreeLock is the lock key of every request that changes a token's life (create, renew,
// revoke). They are serialised so that a revocation sees every child created before it and a
// child is never created under a parent whose revocation is being decided. Callers of
// RevokeTree outside HandleRequest (the expiration manager) take the same lock.
const TreeLock = "auth/token/tree"

// Backend is the token store at auth/token/.
type Backend struct {
	view         *tokenview.View
	keyring      *ledger.Keyring
	mount        engines.Mount
	policyExists func(name string) bool
	sudo         func(c *engines.Caller, path string) bool
	// identityPolicies, when set, names a token's identity policies for lookups.
	identityPolicies func(entityID string) []string
}

// Option configures a Backend.
type Option func(*Backend)

// WithSudo sets how the backend learns whether a caller has sudo on a path (mount path
// included, e.g. "auth/token/create"), which Vault's token store asks itself for orphans,
// periodic tokens, policies outside the caller's own and revoke-orphan. Without it only root
// tokens count as sudo.
func WithSudo(f func(c *engines.Caller, path string) bool) Option {
	return func(b *Backend) { b.sudo = f }
}

// New returns the token store over view. policyExists (may be nil) only feeds Vault's
// "Policy %q does not exist" warnings on create.
func New(view *tokenview.View, keyring *ledger.Keyring, mount engines.Mount, policyExists func(name string) bool, opts ...Option) *Backend {
	b := &Backend{
		view: view, keyring: keyring, mount: mount, policyExists: policyExists,
		sudo: func(c *engines.Caller, _ string) bool { return c != nil && c.Root },
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

var (
	_ engines.Backend      = (*Backend)(nil)
	_ engines.PathsSpecial = (*Backend)(nil)
	_ engines.Locker       = (*Backend)(nil)
)

// Unauthenticated implements engines.PathsSpecial: every token path needs a token.
func (b *Backend) Unauthenticated() []string { return nil }

// Sudo implements engines.PathsSpecial with Vault's root-protected paths. The body form of
// revoke-orphan is not listed, as in Vault: its handler answers a caller without sudo with
// Vault's 400 itself. create-orphan needs no sudo (that is its point, per Vault's docs).
func (b *Backend) Sudo() []string { return []string{"accessors*", "revoke-orphan/*"} }

// LockKey implements engines.Locker: TreeLock for renewals and revocations, which read and
// change existing tokens. Creations take no lock, so they share group commits: the view makes a
// create racing its parent's revocation safe in either order (a revoke cascades to every
// current descendant, and a child whose parent is gone is never added).
func (b *Backend) LockKey(req *engines.Request) string {
	if !isWrite(req.Op) && req.Op != engines.OpDelete {
		return ""
	}
	p := strings.TrimSuffix(req.Path, "/")
	if strings.HasPrefix(p, "roles/") {
		return p // a role update reads the role it changes
	}
	if !isWrite(req.Op) {
		return ""
	}
	for _, prefix := range []string{"renew", "revoke"} {
		if strings.HasPrefix(p, prefix) {
			return TreeLock
		}
	}
	return ""
}

type clientTokenKey struct{}

// WithClientToken returns ctx carrying the request's own token, so that lookup-self and
// renew-self can answer with it as Vault does (data.id, auth.client_token). The pipeline sets
// it after authentication; the backend uses it only when its MAC is the caller's.
func WithClientToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, clientTokenKey{}, token)
}

// clientToken is the caller's own token string when the pipeline supplied it, else "".
func (b *Backend) clientToken(ctx context.Context, c *engines.Caller) string {
	tok, _ := ctx.Value(clientTokenKey{}).(string)
	if tok == "" || c == nil || !ledger.EqualMAC(b.keyring.MAC("token", tok), c.TokenMAC) {
		return ""
	}
	return tok
}

func isWrite(op engines.Operation) bool { return op == engines.OpUpdate || op == engines.OpCreate }

var (
	errUnsupportedPath = engines.Errorf(engines.ErrNotFound, "unsupported path")
	errUnsupportedOp   = engines.Errorf(engines.ErrUnsupported, "unsupported operation")
	errDenied          = engines.Errorf(engines.ErrPermissionDenied, "permission denied")
)

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if req.Caller == nil {
		return nil, errDenied
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &request{Request: req, ctx: ctx, now: now.UTC(), data: req.Data}
	if r.data == nil {
		r.data = map[string]any{}
	}
	p := strings.TrimSuffix(req.Path, "/")
	read, write, list := req.Op == engines.OpRead, isWrite(req.Op), req.Op == engines.OpList

	switch {
	case p == "accessors":
		if !list {
			return nil, errUnsupportedOp
		}
		return b.listAccessors(r)
	case p == "roles" || strings.HasPrefix(p, "roles/"):
		return b.handleRoles(r, p)
	case p == "create" || p == "create-orphan":
		if !write {
			return nil, errUnsupportedOp
		}
		return b.create(r, p == "create-orphan", nil)
	case strings.HasPrefix(p, "create/"):
		if !write {
			return nil, errUnsupportedOp
		}
		name := strings.TrimPrefix(p, "create/")
		role, ok := b.view.Role(name)
		if !ok {
			return nil, engines.BadRequest("unknown role %s", name)
		}
		return b.create(r, false, &role)
	case p == "lookup" || p == "lookup-self":
		if !read && !write {
			return nil, errUnsupportedOp
		}
		return b.lookup(r, p == "lookup-self")
	case p == "lookup-accessor":
		if !write {
			return nil, errUnsupportedOp
		}
		return b.lookupAccessor(r)
	case p == "renew" || p == "renew-self" || p == "renew-accessor":
		if !write {
			return nil, errUnsupportedOp
		}
		return b.renewPath(r, p)
	case p == "revoke" || p == "revoke-self" || p == "revoke-accessor":
		if !write {
			return nil, errUnsupportedOp
		}
		return b.revokePath(r, p)
	case p == "revoke-orphan":
		if !write {
			return nil, errUnsupportedOp
		}
		return b.revokeOrphan(r)
	}
	return nil, errUnsupportedPath
}

// request is one call with its resolved clock and non-nil data.
type request struct {
	*engines.Request
	ctx  context.Context
	now  time.Time
	data map[string]any
}

// mountPath is where the store is mounted, "auth/token/" unless told otherwise.
func (b *Backend) mountPath(req *engines.Request) string {
	for _, p := range []string{req.Mount.Path, b.mount.Path} {
		if p != "" {
			return strings.TrimSuffix(p, "/") + "/"
		}
	}
	return "auth/token/"
}

// LeaseTTLs are the effective default and max TTL of tokens issued at a mount: the request's
// mount (tuning may have changed since the backend was built), else the backend's, else
// Vault's 32 days.
func LeaseTTLs(req, backend engines.Mount) (def, max time.Duration) {
	def, max = req.DefaultLeaseTTL, req.MaxLeaseTTL
	if def <= 0 {
		def = backend.DefaultLeaseTTL
	}
	if max <= 0 {
		max = backend.MaxLeaseTTL
	}
	if def <= 0 {
		def = defaultTTL
	}
	if max <= 0 {
		max = defaultMaxTTL
	}
	return def, max
}

// live returns the token with this MAC unless it is unknown or past its expiry (a token the
// expiration manager has not revoked yet is already dead to readers, as in Vault).
func (b *Backend) live(mac string, now time.Time) (tokenview.Entry, bool) {
	e, ok := b.view.ByMAC(mac)
	if !ok || e.Expired(now) {
		return tokenview.Entry{}, false
	}
	return e, true
}

// macOf is the view key of a token string.
func (b *Backend) macOf(token string) string { return b.keyring.MAC("token", token) }

// stamp sets the request's actor, id and time on events the engine decided.
func stamp(r *request, evs []ledger.Event) []ledger.Event {
	for i := range evs {
		evs[i].Actor = r.Caller.Accessor
		evs[i].Request = r.ID
		evs[i].Time = r.now
	}
	return evs
}
