// Package approle is Vault's AppRole auth method: roles with a role_id and secret IDs, and a
// login that trades the two for a token. Paths, parameters, responses and messages are
// Vault's, so the official clients (including api/auth/approle) work unchanged. The engine
// decides the events (projections/approle folds them, projections/token folds the tokens) and
// never appends them itself.
//
// Secret IDs exist in clear only in the response that hands them out: the engine stores and
// finds them by keyring.MAC("approle-secret-id", role key + ":" + secret ID). A login spends a
// use of a limited secret ID with an event of its own, and logins presenting the same secret ID
// are serialised (LockKey) so that two of them cannot both spend the last use.
//
// Failed logins are rate-limited per source address and per role_id (see package ratelimit):
// the limits live in memory on the node and reset when the backend is rebuilt at unseal.
package approle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/ratelimit"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Brute-force brake: failed logins allowed per source address and per role_id, regained
// evenly over the window.
const (
	LoginFailures = 5
	LoginWindow   = time.Minute
)

// Keyring MAC domains.
const (
	secretIDDomain = "approle-secret-id"
	lockDomain     = "approle-login-lock"
)

// maxInput is Vault's maxHmacInputLength: role names and secret IDs longer than this are refused.
const maxInput = 4096

// tidyBatch bounds the secret IDs one tidy destroys, so that its events fit one append.
const tidyBatch = 500

// Backend is one AppRole mount.
type Backend struct {
	view    *approleview.View
	tokens  *tokenview.View
	keyring *ledger.Keyring
	mount   engines.Mount
	limiter *ratelimit.Limiter
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.PathsSpecial     = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
)

// New returns the AppRole backend of mount m. tokens is the token view, consulted so that a
// login never issues a token string or accessor the view already holds; keyring computes the
// secret-ID and token MACs.
func New(view *approleview.View, tokens *tokenview.View, keyring *ledger.Keyring, m engines.Mount) *Backend {
	return &Backend{
		view: view, tokens: tokens, keyring: keyring, mount: m,
		limiter: ratelimit.New(LoginFailures, LoginWindow, 0),
	}
}

// Unauthenticated implements engines.PathsSpecial: login needs no token.
func (b *Backend) Unauthenticated() []string { return []string{"login"} }

// Sudo implements engines.PathsSpecial: no AppRole path needs sudo.
func (b *Backend) Sudo() []string { return nil }

// Lock keys. Role configuration writes share one key per mount, so no two roles can claim the
// same role_id at once; secret-ID writes of a role share that role's key; logins with the same
// secret ID share a key derived from it.
const rolesLock = "roles"

// LockKey implements engines.Locker.
func (b *Backend) LockKey(req *engines.Request) string {
	p := strings.TrimSuffix(req.Path, "/")
	if p == "login" {
		sid, _ := engines.String(req.Data, "secret_id", "")
		if sid = strings.TrimSpace(sid); sid == "" || len(sid) > maxInput {
			return ""
		}
		// A MAC rather than the secret ID itself: lock keys are kept in memory while held.
		return "login\x00" + b.keyring.MAC(lockDomain, sid)
	}
	rest, ok := strings.CutPrefix(p, "role/")
	if !ok {
		return ""
	}
	name, sub, _ := strings.Cut(rest, "/")
	name = strings.ToLower(name)
	switch sub {
	case "secret-id", "custom-secret-id", "secret-id/destroy", "secret-id-accessor/destroy":
		return "role\x00" + name
	case "secret-id/lookup", "secret-id-accessor/lookup":
		return ""
	}
	return rolesLock
}

// Exists implements engines.ExistenceChecker: writing role/<name> creates a role that does not
// exist and updates one that does; every other write is an update, as in Vault.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(req.Path, "/"), "role/")
	if !ok || strings.Contains(rest, "/") {
		return true, nil
	}
	_, found := b.view.Role(b.mount.UUID, strings.ToLower(rest))
	return found, nil
}

// request is one call with its resolved clock and non-nil data.
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
	case p == "login":
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		return b.login(r)
	case p == "role":
		if req.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		return b.listRoles()
	case p == "tidy/secret-id":
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		return b.tidy(r)
	case strings.HasPrefix(p, "role/"):
		return b.rolePath(r, strings.TrimPrefix(p, "role/"))
	}
	return nil, errUnsupportedPath
}

// rolePath routes role/<name>[/<endpoint>].
func (b *Backend) rolePath(r *request, rest string) (*engines.Response, error) {
	name, sub, _ := strings.Cut(rest, "/")
	if name == "" {
		return nil, engines.BadRequest("missing role_name")
	}
	if len(name) > maxInput {
		return nil, engines.BadRequest("role_name is longer than maximum of %d bytes", maxInput)
	}
	name = strings.ToLower(name)
	op := r.Op
	switch sub {
	case "":
		switch {
		case op == engines.OpRead:
			return b.readRole(name)
		case isWrite(op):
			return b.writeRole(r, name, r.data)
		case op == engines.OpDelete:
			return b.deleteRole(r, name)
		}
		return nil, errUnsupportedOp
	case "role-id":
		switch {
		case op == engines.OpRead:
			return b.readRoleID(name)
		case isWrite(op):
			return b.writeRoleID(r, name)
		}
		return nil, errUnsupportedOp
	case "secret-id":
		switch {
		case op == engines.OpList:
			return b.listSecretIDs(name)
		case isWrite(op):
			return b.createSecretID(r, name, false)
		}
		return nil, errUnsupportedOp
	case "custom-secret-id":
		if !isWrite(op) {
			return nil, errUnsupportedOp
		}
		return b.createSecretID(r, name, true)
	case "secret-id/lookup":
		if !isWrite(op) {
			return nil, errUnsupportedOp
		}
		return b.lookupSecretID(r, name)
	case "secret-id/destroy":
		if !isWrite(op) && op != engines.OpDelete {
			return nil, errUnsupportedOp
		}
		return b.destroySecretID(r, name)
	case "secret-id-accessor/lookup":
		if !isWrite(op) {
			return nil, errUnsupportedOp
		}
		return b.lookupSecretIDAccessor(r, name)
	case "secret-id-accessor/destroy":
		if !isWrite(op) && op != engines.OpDelete {
			return nil, errUnsupportedOp
		}
		return b.destroySecretIDAccessor(r, name)
	}
	if f, ok := roleFieldPaths[sub]; ok {
		return b.roleField(r, name, f)
	}
	return nil, engines.BadRequest("invalid role name %q: role names cannot contain \"/\"", rest)
}

// mountPath is where the method is mounted, "auth/approle/" unless told otherwise.
func (b *Backend) mountPath(req *engines.Request) string {
	for _, p := range []string{req.Mount.Path, b.mount.Path} {
		if p != "" {
			return strings.TrimSuffix(p, "/") + "/"
		}
	}
	return "auth/approle/"
}

// subject is the aggregate of a role and its secret IDs.
func (b *Backend) subject(role string) string {
	return ledger.SubjectFor("approle", b.mount.UUID, role)
}

// event builds one of the engine's events, stamped with the request.
func (b *Backend) event(r *request, typ, role string, payload any) ledger.Event {
	p, err := json.Marshal(payload)
	if err != nil {
		// The payloads are structs of strings, numbers, times and string maps.
		panic(fmt.Sprintf("approle: %s payload does not encode: %v", typ, err))
	}
	return stamp(r, ledger.Event{Type: typ, Subject: b.subject(role), Payload: p})
}

// stamp sets the request's actor, id and time on an event.
func stamp(r *request, ev ledger.Event) ledger.Event {
	if r.Caller != nil {
		ev.Actor = r.Caller.Accessor
	}
	ev.Request = r.ID
	ev.Time = r.now
	return ev
}

// secretMAC is the view key of a secret ID issued for a role.
func (b *Backend) secretMAC(roleKey, secretID string) string {
	return b.keyring.MAC(secretIDDomain, roleKey+":"+secretID)
}

// TidyEvents decides the destruction of the mount's secret IDs that are expired at now, at
// most tidyBatch of them (call again while it returns a full batch). The active node runs it
// periodically, as Vault's tidy does; replay never does, the events record it.
func (b *Backend) TidyEvents(now time.Time) []ledger.Event {
	expired := b.view.Expired(b.mount.UUID, now, tidyBatch)
	out := make([]ledger.Event, 0, len(expired))
	for _, s := range expired {
		p, err := json.Marshal(approleview.SecretIDDestroyedPayload{Mount: b.mount.UUID, MAC: s.MAC, Reason: approleview.ReasonExpired})
		if err != nil {
			panic("approle: destroyed payload does not encode: " + err.Error())
		}
		out = append(out, ledger.Event{Type: approleview.SecretIDDestroyed, Subject: b.subject(s.Role), Time: now.UTC(), Payload: p})
	}
	return out
}

// tidy is tidy/secret-id: Vault answers 202 with a warning and tidies in the background; here
// the expired secret IDs are destroyed by the request's own events.
func (b *Backend) tidy(r *request) (*engines.Response, error) {
	evs := b.TidyEvents(r.now)
	for i := range evs {
		evs[i] = stamp(r, evs[i])
	}
	return &engines.Response{
		Status:   202,
		Warnings: []string{"Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."},
		Events:   evs,
	}, nil
}
