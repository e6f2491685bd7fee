// Package userpass is Vault's userpass auth method: users with a password, and a login that
// trades the two for a token. Paths, parameters, responses and messages are Vault's, so the
// official clients (including api/auth/userpass and `vault login -method=userpass`) work
// unchanged. The engine decides the events (projections/userpass folds them,
// projections/token folds the tokens) and never appends them itself.
//
// Passwords are hashed with argon2id when a write is decided; only the hash travels, in the
// sealed event. A login of an unknown user verifies against a fixed dummy hash, so its cost
// does not tell whether the user exists, and it fails with the same message as a wrong
// password. Failed logins are rate-limited per source address and per user name (see package
// ratelimit); the limits live in memory on the node and reset when the backend is rebuilt at
// unseal.
package userpass

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/ratelimit"
	"github.com/ledger-secrets/ledger/ledger"
	userpassview "github.com/ledger-secrets/ledger/projections/userpass"
)

// Brute-force brake: failed logins allowed per source address and per user name, regained
// evenly over the window.
const (
	LoginFailures = 5
	LoginWindow   = time.Minute
)

// maxNameLen bounds user names (Vault's maxHmacInputLength).
const maxNameLen = 4096

// Backend is one userpass mount.
type Backend struct {
	view    *userpassview.View
	keyring *ledger.Keyring
	mount   engines.Mount
	limiter *ratelimit.Limiter

	slots     chan struct{} // argon2 computations in flight
	dummyOnce sync.Once
	dummy     string
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.PathsSpecial     = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
)

// New returns the userpass backend of mount m; keyring computes the MACs of the tokens it
// issues.
func New(view *userpassview.View, keyring *ledger.Keyring, m engines.Mount) *Backend {
	return &Backend{
		view: view, keyring: keyring, mount: m,
		limiter: ratelimit.New(LoginFailures, LoginWindow, 0),
		slots:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
	}
}

// Unauthenticated implements engines.PathsSpecial: logins need no token.
func (b *Backend) Unauthenticated() []string { return []string{"login/*"} }

// Sudo implements engines.PathsSpecial: no userpass path needs sudo.
func (b *Backend) Sudo() []string { return nil }

// LockKey implements engines.Locker: writes to one user are serialised (a password change and
// a policy change cannot lose each other's update). Logins change nothing and take no lock.
func (b *Backend) LockKey(req *engines.Request) string {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(req.Path, "/"), "users/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return "user\x00" + strings.ToLower(name)
}

// Exists implements engines.ExistenceChecker: writing users/<name> creates a user that does
// not exist and updates one that does; every other write is an update, as in Vault.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(req.Path, "/"), "users/")
	if !ok || strings.Contains(rest, "/") {
		return true, nil
	}
	_, found := b.view.User(b.mount.UUID, strings.ToLower(rest))
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
	case p == "users":
		if req.Op != engines.OpList {
			return nil, errUnsupportedOp
		}
		return b.listUsers()
	case strings.HasPrefix(p, "users/"):
		return b.usersPath(r, strings.TrimPrefix(p, "users/"))
	case strings.HasPrefix(p, "login/"):
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		name, err := userName(strings.TrimPrefix(p, "login/"))
		if err != nil {
			return nil, err
		}
		return b.login(r, name)
	}
	return nil, errUnsupportedPath
}

// usersPath routes users/<name>[/password|/policies].
func (b *Backend) usersPath(r *request, rest string) (*engines.Response, error) {
	name, sub := rest, ""
	if i := strings.LastIndexByte(rest, '/'); i >= 0 && (rest[i+1:] == "password" || rest[i+1:] == "policies") {
		name, sub = rest[:i], rest[i+1:]
	}
	name, err := userName(name)
	if err != nil {
		return nil, err
	}
	op := r.Op
	switch sub {
	case "":
		switch {
		case op == engines.OpRead:
			return b.readUser(name)
		case isWrite(op):
			return b.writeUser(r, name, op == engines.OpCreate)
		case op == engines.OpDelete:
			return b.deleteUser(r, name)
		}
	case "password":
		if isWrite(op) {
			return b.writePassword(r, name)
		}
	case "policies":
		if isWrite(op) {
			return b.writePolicies(r, name)
		}
	}
	return nil, errUnsupportedOp
}

// userName checks and lower-cases a user name from a path, as Vault does.
func userName(name string) (string, error) {
	switch {
	case name == "":
		return "", engines.BadRequest("missing username")
	case len(name) > maxNameLen:
		return "", engines.BadRequest("username is longer than maximum of %d bytes", maxNameLen)
	case strings.ContainsRune(name, '/'):
		return "", engines.BadRequest("invalid username %q: usernames cannot contain \"/\"", name)
	}
	return strings.ToLower(name), nil
}

// mountPath is where the method is mounted, "auth/userpass/" unless told otherwise.
func (b *Backend) mountPath(req *engines.Request) string {
	for _, p := range []string{req.Mount.Path, b.mount.Path} {
		if p != "" {
			return strings.TrimSuffix(p, "/") + "/"
		}
	}
	return "auth/userpass/"
}

// event builds one of the engine's events, stamped with the request.
func (b *Backend) event(r *request, typ, user string, payload any) ledger.Event {
	p, err := json.Marshal(payload)
	if err != nil {
		// The payloads are structs of strings, numbers and times.
		panic(fmt.Sprintf("userpass: %s payload does not encode: %v", typ, err))
	}
	return stamp(r, ledger.Event{Type: typ, Subject: ledger.SubjectFor("userpass", b.mount.UUID, user), Payload: p})
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
