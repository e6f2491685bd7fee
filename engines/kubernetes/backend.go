// Package kubernetes is Vault's Kubernetes auth method: a pod trades its service-account JWT
// for a token. Paths, fields, responses and messages are Vault's, so the official clients
// (api/auth/kubernetes, `vault write auth/kubernetes/login`) work unchanged. The configuration
// and roles live in the authrole view; the engine decides their events and never appends.
//
// A login is checked twice over, as in Vault: the JWT's claims are validated here (algorithm,
// issuer, audience, times, the service account's name and namespace against the role), and the
// JWT itself is verified either by the cluster's TokenReview API (authentication.k8s.io/v1) or,
// when no reviewer JWT is configured but pem_keys or Ledger's jwks_url are, locally against
// those keys. Failed logins are rate-limited per source address and per role.
package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/ratelimit"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Brute-force brake: failed logins allowed per source address and per role, regained evenly
// over the window.
const (
	LoginFailures = 20
	LoginWindow   = time.Minute
)

// Backend is one Kubernetes auth mount.
type Backend struct {
	view    *authrole.View
	tokens  *tokenview.View
	keyring *ledger.Keyring
	mount   engines.Mount
	limiter *ratelimit.Limiter

	// Verifiers built from a configuration are kept until it changes: their HTTP clients
	// keep connections to the API server alive and their key sets keep fetched keys.
	mu       sync.Mutex
	cfgRaw   string
	verifier *verifier
}

var (
	_ engines.Backend      = (*Backend)(nil)
	_ engines.PathsSpecial = (*Backend)(nil)
	_ engines.Locker       = (*Backend)(nil)
)

// New returns the Kubernetes backend of mount m.
func New(view *authrole.View, tokens *tokenview.View, keyring *ledger.Keyring, m engines.Mount) *Backend {
	return &Backend{view: view, tokens: tokens, keyring: keyring, mount: m,
		limiter: ratelimit.New(LoginFailures, LoginWindow, 0)}
}

// Unauthenticated implements engines.PathsSpecial.
func (b *Backend) Unauthenticated() []string { return []string{"login"} }

// Sudo implements engines.PathsSpecial.
func (b *Backend) Sudo() []string { return nil }

// LockKey implements engines.Locker: config and role writes are serialised per target.
func (b *Backend) LockKey(req *engines.Request) string {
	p := strings.TrimSuffix(req.Path, "/")
	if p == "login" {
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
		name := strings.TrimPrefix(p, "role/")
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
	}
	return nil, errUnsupportedPath
}

func (b *Backend) event(r *request, typ, name string, payload any) ledger.Event {
	p, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("kubernetes: %s payload does not encode: %v", typ, err))
	}
	ev := ledger.Event{Type: typ, Subject: ledger.SubjectFor("authrole", b.mount.UUID, name), Payload: p, Request: r.ID, Time: r.now}
	if r.Caller != nil {
		ev.Actor = r.Caller.Accessor
	}
	return ev
}

// mountPath is where the method is mounted.
func (b *Backend) mountPath(req *engines.Request) string {
	for _, p := range []string{req.Mount.Path, b.mount.Path} {
		if p != "" {
			return strings.TrimSuffix(p, "/") + "/"
		}
	}
	return "auth/kubernetes/"
}
