// Package dbplugin is the contract between the database secrets engine and the code that talks
// to one kind of database (one sub-package of engines/database per plugin), plus the statement
// handling they share: splitting a statement list as the database would, and filling in
// {{name}}, {{username}}, {{password}} and {{expiration}}.
//
// A plugin owns one connection pool, built from one connection configuration. It never sees
// Ledger's events or views; the engine decides what to run and when.
package dbplugin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is what a plugin connects with. ConnectionURL may hold {{username}} and {{password}},
// which the plugin fills from Username and Password, escaped for the URL's syntax.
type Config struct {
	ConnectionURL string
	Username      string
	Password      string
	// Pool settings, as Vault's: 0 open means 4; 0 idle means as many as open; 0 lifetime means
	// connections are reused for ever.
	MaxOpenConnections    int
	MaxIdleConnections    int
	MaxConnectionLifetime time.Duration
}

// NewUser describes a dynamic user to create.
type NewUser struct {
	Username   string
	Password   string
	Expiration time.Time
	Creation   []string // the role's creation statements, templates not yet filled
	Rollback   []string // run when creation fails part-way; the plugin drops the user after
}

// Plugin manages users in one database through one pool. Methods are safe for concurrent use.
// Errors never contain a password (the plugin redacts what the database echoes back) and may be
// shown to the client.
type Plugin interface {
	// Verify connects and pings the database. The error names the host.
	Verify(ctx context.Context) error
	// CreateUser runs the creation statements. When it fails, the plugin runs the rollback
	// statements and then drops whatever user of that name exists, so nothing is left behind.
	CreateUser(ctx context.Context, u NewUser) error
	// RevokeUser runs the revocation statements, or the plugin's default (drop the user with
	// its privileges and sessions) when there are none. A user that does not exist is already
	// revoked (nil). After a nil return the user cannot log in and has no session left, even
	// if the statements left the user in place.
	RevokeUser(ctx context.Context, statements []string, username string) error
	// DisableUser makes the user unusable without dropping it: no login, password removed,
	// sessions ended. It is the fallback when RevokeUser fails. A missing user is nil.
	DisableUser(ctx context.Context, username string) error
	// RenewUser moves the user's expiry to expiration: the renew statements, or the plugin's
	// default (which may do nothing where the database has no account expiry).
	RenewUser(ctx context.Context, statements []string, username string, expiration time.Time) error
	// SetPassword changes an existing user's password: the statements, or the plugin's default.
	SetPassword(ctx context.Context, statements []string, username, password string) error
	// ListUsers returns the users whose name starts with prefix, sorted.
	ListUsers(ctx context.Context, prefix string) ([]string, error)
	// Close closes the pool, waiting for queries in flight.
	Close() error
}

// Driver names a plugin and opens instances of it.
type Driver struct {
	// Name is the plugin_name of a config: "postgresql-database-plugin".
	Name string
	// MaxUsernameLength is the database's limit for a user name, in bytes.
	MaxUsernameLength int
	// DefaultUsernameTemplate is Vault's username_template default for this database.
	DefaultUsernameTemplate string
	// Open builds a plugin. It parses the configuration but does not connect.
	Open func(cfg Config) (Plugin, error)
}

// ErrNoUser: the user a statement was meant for does not exist.
var ErrNoUser = errors.New("user does not exist")

// ExpirationFormat is how {{expiration}} is written, as Vault writes it.
const ExpirationFormat = "2006-01-02 15:04:05-0700"

// Vars are the values a statement's templates are filled with.
type Vars struct {
	Username   string
	Password   string
	Expiration time.Time
}

// Render fills {{name}} and {{username}} (the user), {{password}} and {{expiration}}.
func Render(stmt string, v Vars) string {
	pairs := []string{"{{name}}", v.Username, "{{username}}", v.Username, "{{password}}", v.Password}
	if !v.Expiration.IsZero() {
		pairs = append(pairs, "{{expiration}}", v.Expiration.Format(ExpirationFormat))
	}
	return strings.NewReplacer(pairs...).Replace(stmt)
}

// FillURL puts the credentials into a connection URL's {{username}} and {{password}}. urlStyle
// escapes them for the user-info part of a URL; keyValue quotes them for PostgreSQL's
// "key=value" form; otherwise (a MySQL DSN, whose parser splits at the last '@') they go in as is.
func FillURL(conn, username, password string, style URLStyle) string {
	esc := func(s string) string { return s }
	switch style {
	case URLStyleURL:
		esc = escapeUserinfo
	case URLStyleKeyValue:
		esc = quoteKeyValue
	}
	return strings.NewReplacer("{{username}}", esc(username), "{{password}}", esc(password)).Replace(conn)
}

// URLStyle is the syntax of a connection string.
type URLStyle int

// Connection string syntaxes.
const (
	URLStyleRaw URLStyle = iota
	URLStyleURL
	URLStyleKeyValue
)

// escapeUserinfo percent-encodes everything but unreserved characters, which is valid in a
// URL's user-info whatever the value holds.
func escapeUserinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c) // not QueryEscape: its '+' for a space is a '+' here
	}
	return b.String()
}

func quoteKeyValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Redact replaces every occurrence of the secrets (and their URL-escaped forms) in msg.
func Redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, form := range []string{s, escapeUserinfo(s), url.QueryEscape(s)} {
			msg = strings.ReplaceAll(msg, form, "[redacted]")
		}
	}
	return msg
}

// redactedError is an error whose message has been cleared of secrets. It keeps only the
// sentinel kinds callers test for, never the original error, whose text may hold a password.
type redactedError struct {
	msg  string
	kind error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.kind }

// RedactErr returns an error with err's message, every secret replaced; errors.Is still finds
// ErrNoUser and context cancellation. nil stays nil.
func RedactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var kind error
	for _, k := range []error{ErrNoUser, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			kind = k
			break
		}
	}
	return &redactedError{msg: Redact(err.Error(), secrets...), kind: kind}
}
