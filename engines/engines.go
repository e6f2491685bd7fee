// Package engines is the contract between the request pipeline (package commands) and the
// secret engines and auth methods, one sub-package each. A Backend *decides*: it validates a
// request against its views and answers with a response and the events that should happen. It
// never appends to the log; the pipeline appends the events, waits until the views have applied
// them, and only then answers the client.
package engines

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// Operation is what a request does, in Vault's vocabulary.
type Operation string

// Operations.
const (
	OpCreate Operation = "create"
	OpRead   Operation = "read"
	OpUpdate Operation = "update"
	OpPatch  Operation = "patch"
	OpDelete Operation = "delete"
	OpList   Operation = "list"
)

// Mount describes where a backend is mounted.
type Mount struct {
	Path     string // with trailing slash: "secret/", "auth/token/"
	Type     string // "kv", "token", …
	UUID     string
	Accessor string
	Options  map[string]string
	// Effective lease TTLs: the mount's tuning, else the system's defaults.
	DefaultLeaseTTL time.Duration
	MaxLeaseTTL     time.Duration
}

// Caller is the authenticated identity behind a request.
type Caller struct {
	TokenMAC    string // key of the token in the token view; never the token itself
	Accessor    string
	Policies    []string
	DisplayName string
	EntityID    string
	Meta        map[string]string
	Root        bool // carries the root policy
	Orphan      bool
	TTL         time.Duration // remaining
	Period      time.Duration
}

// Request is one API call routed to a backend.
type Request struct {
	ID         string
	Op         Operation
	Path       string // relative to the mount, no leading slash
	Mount      Mount
	Data       map[string]any // body for writes; query parameters for reads and lists
	Caller     *Caller        // nil on unauthenticated paths (logins)
	RemoteAddr string
	Now        time.Time
}

// Auth is what a login or token creation hands out, shaped like Vault's "auth" block.
type Auth struct {
	ClientToken   string
	Accessor      string
	Policies      []string
	TokenPolicies []string
	Metadata      map[string]string
	LeaseDuration time.Duration
	Renewable     bool
	EntityID      string
	TokenType     string
	Orphan        bool
	NumUses       int
	// Alias names the caller to the identity store: the pipeline finds or creates the entity
	// behind it and stamps the token with its ID. GroupAliases are the caller's groups at the
	// identity provider, which fill external groups. IdentityPolicies is set by the pipeline.
	Alias            *Alias
	GroupAliases     []Alias
	IdentityPolicies []string
}

// Alias is how an auth method names who logged in (Vault's logical.Alias).
type Alias struct {
	Name     string
	Metadata map[string]string
}

// Secret is lease information for dynamic secrets. A backend that performed a side effect
// (created a database user) answers with a Secret carrying InternalData; the pipeline then
// registers a lease — ID, issue and expiry times, the sealed InternalData — in the same append
// as the backend's events, and if that append fails asks the backend to undo the side effect.
// A Secret without InternalData (KV v1's passthrough TTL) only shapes the response.
type Secret struct {
	LeaseID       string        // set by the pipeline
	LeaseDuration time.Duration // the TTL the backend decided (capped by the mount's max)
	// MaxTTL bounds renewals: the lease never outlives issue time + MaxTTL (0: the mount's max).
	MaxTTL    time.Duration
	Renewable bool
	// InternalData is what RevokeLease and RenewLease need (the username, the database). It is
	// stored only inside sealed events and never returned to a client.
	InternalData []byte
}

// Lease is a registered lease as a LeaseBackend sees it.
type Lease struct {
	ID           string
	Path         string // request path relative to the mount, e.g. "creds/readonly"
	MountPath    string
	MountUUID    string
	IssueTime    time.Time
	ExpireTime   time.Time
	MaxExpire    time.Time
	Renewable    bool
	InternalData []byte
}

// LeaseBackend is implemented by backends whose secrets have side effects to undo.
type LeaseBackend interface {
	// RevokeLease undoes the lease's side effect. It must be idempotent (revoking what is
	// already gone succeeds) and, when the full cleanup fails, first make the credential
	// unusable and then return the error: the expiration manager retries with backoff and the
	// credential never keeps working meanwhile.
	RevokeLease(ctx context.Context, l Lease) error
	// RenewLease extends the side effect to newExpire (e.g. VALID UNTIL).
	RenewLease(ctx context.Context, l Lease, newExpire time.Time) error
}

// Response is a backend's answer plus the events to append before it is sent.
type Response struct {
	Data     map[string]any
	Warnings []string
	Auth     *Auth
	Secret   *Secret
	// Status overrides the status the pipeline would choose (200 with data, 204 without). KV
	// uses it for a soft-deleted latest version: 404 with the metadata in data, as Vault does.
	Status int
	// Events are appended, in order and atomically, before the response is sent.
	Events []ledger.Event
	// MountType is the type of the mount that answered ("kv", "token", "system"); the
	// pipeline sets it, for the envelope's mount_type.
	MountType string
	// WrapInfo, when set, replaces the whole response: the client asked for response wrapping
	// and gets only the single-use token that unwraps it (see commands/wrapping.go).
	WrapInfo *WrapInfo
}

// WrapInfo is Vault's wrap_info block.
type WrapInfo struct {
	Token           string
	Accessor        string
	TTL             time.Duration
	CreationTime    time.Time
	CreationPath    string
	WrappedAccessor string // the accessor of a wrapped token, else ""
}

// Backend is a secret engine or auth method instance at one mount.
type Backend interface {
	HandleRequest(ctx context.Context, req *Request) (*Response, error)
}

// ExistenceChecker lets the pipeline tell create from update for a write, as Vault does, so
// policies granting only "create" or only "update" mean what they say. Backends without it
// treat every write as an update.
type ExistenceChecker interface {
	Exists(ctx context.Context, req *Request) (bool, error)
}

// Locker names the aggregate a write touches. The pipeline serialises writes with the same key
// from decision to applied event, so a backend's check-and-set reads a view that cannot change
// under it. Writes with different keys proceed in parallel (and share a group commit).
type Locker interface {
	LockKey(req *Request) string
}

// PathsSpecial lists paths that need no token (logins) and paths that need sudo, relative to
// the mount, with a trailing "*" as a prefix glob.
type PathsSpecial interface {
	Unauthenticated() []string
	Sudo() []string
}

// ActiveOnly lists paths (relative to the mount, trailing "*" a prefix glob) whose answer
// depends on what only the active node holds in memory, such as an OIDC callback's state: a
// standby never answers them itself but forwards them, whatever the method.
type ActiveOnly interface {
	ActiveOnly() []string
}

// Factory builds the backend for a mount. Backends are rebuilt at every unseal.
type Factory func(m Mount) (Backend, error)

// Errors a backend returns. The HTTP edge maps them to status codes; the message of an error
// made by Errorf is shown to the client as is, so it must never contain a secret.
var (
	ErrBadRequest       = errors.New("bad request")           // 400
	ErrPermissionDenied = errors.New("permission denied")     // 403
	ErrNotFound         = errors.New("not found")             // 404
	ErrUnsupported      = errors.New("unsupported operation") // 405
	ErrRateLimited      = errors.New("rate limited")          // 429
)

type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.kind }

// Errorf returns an error of the given kind whose message is shown to the client verbatim.
func Errorf(kind error, format string, args ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// BadRequest is Errorf(ErrBadRequest, …).
func BadRequest(format string, args ...any) error { return Errorf(ErrBadRequest, format, args...) }
