// Package jwt is Vault's JWT/OIDC auth method, served under both mount types, "jwt" and
// "oidc", as in Vault: a JWT signed by a trusted issuer logs in at login, and a person logs in
// through an OpenID Connect provider with the authorization-code flow (PKCE, state and nonce)
// at oidc/auth_url and oidc/callback. Paths, fields and messages are Vault's.
//
// Signatures and claims are checked with maintained libraries: hashicorp/cap's jwt.Validator
// over go-jose key sets (package jwks) for JWT logins, and cap's oidc.Provider (go-oidc
// underneath) for discovery, the code exchange and ID-token verification. Pending OIDC logins
// (state, nonce, PKCE verifier) live in the node's memory for ten minutes, never in the log,
// and each state is good for one callback.
package jwt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	capoidc "github.com/hashicorp/cap/oidc"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/ratelimit"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Brute-force brake: failed logins allowed per source address and per role.
const (
	LoginFailures = 20
	LoginWindow   = time.Minute
)

// pendingTTL is how long an OIDC login may take between auth_url and callback; maxPending
// bounds how many may be under way, so unauthenticated auth_url calls cannot fill memory.
const (
	pendingTTL = 10 * time.Minute
	maxPending = 10000
)

// Backend is one JWT/OIDC mount.
type Backend struct {
	view    *authrole.View
	tokens  *tokenview.View
	keyring *ledger.Keyring
	mount   engines.Mount
	limiter *ratelimit.Limiter

	mu       sync.Mutex
	cfgRaw   string
	verifier *verifier
	pending  map[string]*pending // by state
}

type pending struct {
	req         *capoidc.Req
	role        string
	clientNonce string
	expires     time.Time
}

var (
	_ engines.Backend      = (*Backend)(nil)
	_ engines.PathsSpecial = (*Backend)(nil)
	_ engines.Locker       = (*Backend)(nil)
)

// New returns the backend of a jwt or oidc mount.
func New(view *authrole.View, tokens *tokenview.View, keyring *ledger.Keyring, m engines.Mount) *Backend {
	return &Backend{view: view, tokens: tokens, keyring: keyring, mount: m,
		limiter: ratelimit.New(LoginFailures, LoginWindow, 0), pending: map[string]*pending{}}
}

// Unauthenticated implements engines.PathsSpecial.
func (b *Backend) Unauthenticated() []string {
	return []string{"login", "oidc/auth_url", "oidc/callback"}
}

// Sudo implements engines.PathsSpecial.
func (b *Backend) Sudo() []string { return nil }

// ActiveOnly implements engines.ActiveOnly: a callback's state is held by the node that
// handed it out at oidc/auth_url (a write, so the active node).
func (b *Backend) ActiveOnly() []string { return []string{"oidc/callback"} }

// LockKey implements engines.Locker.
func (b *Backend) LockKey(req *engines.Request) string {
	p := strings.TrimSuffix(req.Path, "/")
	if p == "login" || strings.HasPrefix(p, "oidc/") {
		return ""
	}
	return p
}

type request struct {
	*engines.Request
	ctx  context.Context
	now  time.Time
	data map[string]any
}

var (
	errUnsupportedPath = engines.Errorf(engines.ErrNotFound, "unsupported path")
	errUnsupportedOp   = engines.Errorf(engines.ErrUnsupported, "unsupported operation")
)

func isWrite(op engines.Operation) bool { return op == engines.OpCreate || op == engines.OpUpdate }

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &request{Request: req, ctx: ctx, now: now.UTC(), data: req.Data}
	if r.data == nil {
		r.data = map[string]any{}
	}
	p := strings.TrimSuffix(req.Path, "/")
	switch {
	case p == "config":
		switch {
		case req.Op == engines.OpRead:
			return b.readConfig()
		case isWrite(req.Op):
			return b.writeConfig(r)
		}
		return nil, errUnsupportedOp
	case p == "role":
		if req.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		keys := b.view.Roles(b.mount.UUID)
		if len(keys) == 0 {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: map[string]any{"keys": keys}}, nil
	case strings.HasPrefix(p, "role/"):
		name := strings.ToLower(strings.TrimPrefix(p, "role/"))
		if name == "" || strings.Contains(name, "/") {
			return nil, engines.BadRequest("invalid role name %q", name)
		}
		switch {
		case req.Op == engines.OpRead:
			return b.readRole(name)
		case isWrite(req.Op):
			return b.writeRole(r, name)
		case req.Op == engines.OpDelete:
			return b.deleteRole(r, name)
		}
		return nil, errUnsupportedOp
	case p == "login":
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		return b.login(r)
	case p == "oidc/auth_url":
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		return b.authURL(r)
	case p == "oidc/callback":
		if req.Op != engines.OpRead && !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		return b.callback(r)
	}
	return nil, errUnsupportedPath
}

func (b *Backend) event(r *request, typ, name string, payload any) ledger.Event {
	p, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("jwt: %s payload does not encode: %v", typ, err))
	}
	ev := ledger.Event{Type: typ, Subject: ledger.SubjectFor("authrole", b.mount.UUID, name), Payload: p, Request: r.ID, Time: r.now}
	if r.Caller != nil {
		ev.Actor = r.Caller.Accessor
	}
	return ev
}

func (b *Backend) mountPath(req *engines.Request) string {
	for _, p := range []string{req.Mount.Path, b.mount.Path} {
		if p != "" {
			return strings.TrimSuffix(p, "/") + "/"
		}
	}
	return "auth/jwt/"
}
