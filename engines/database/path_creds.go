package database

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
	dbview "github.com/ledger-secrets/ledger/projections/database"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// LeaseData is the InternalData of a credentials lease, as JSON. It names the user and where it
// lives, and keeps the role's revocation and renew statements as they were when the user was
// created, for when the role is gone by the time the lease ends (while the role exists, its
// current statements are used, so a broken statement can be fixed by rewriting the role).
type LeaseData struct {
	Version              int       `json:"v"` // 1
	DBName               string    `json:"db_name"`
	Username             string    `json:"username"`
	Role                 string    `json:"role"`
	PluginName           string    `json:"plugin_name"`
	RevocationStatements []string  `json:"revocation_statements,omitempty"`
	RenewStatements      []string  `json:"renew_statements,omitempty"`
	Expiration           time.Time `json:"expiration"` // the expiry written into the database
}

// ParseLeaseData decodes a lease's InternalData.
func ParseLeaseData(b []byte) (LeaseData, error) {
	var d LeaseData
	if err := json.Unmarshal(b, &d); err != nil {
		return LeaseData{}, fmt.Errorf("database lease data: %w", err)
	}
	if d.Version != 1 || d.DBName == "" || d.Username == "" {
		return LeaseData{}, errors.New("database lease data: unknown version or missing user")
	}
	return d, nil
}

// fallbackTTL is Vault's system default lease TTL.
const fallbackTTL = 768 * time.Hour

// ttls decides a lease's TTL and max TTL as Vault's CalculateTTL does: the role's values, else
// the mount's; the max never above the mount's; the TTL never above the max. The mount's TTLs
// are the request's (m), not those the backend was built with: a tune changes them without
// rebuilding the backend, and the user's expiry in the database must not outlive the lease the
// pipeline caps with the tuned values.
func ttls(r dbview.Role, m engines.Mount) (ttl, maxTTL time.Duration) {
	ttl, maxTTL = r.DefaultTTL, r.MaxTTL
	if ttl == 0 {
		ttl = m.DefaultLeaseTTL
	}
	if maxTTL == 0 || (m.MaxLeaseTTL > 0 && maxTTL > m.MaxLeaseTTL) {
		maxTTL = m.MaxLeaseTTL
	}
	if maxTTL > 0 && ttl > maxTTL {
		ttl = maxTTL
	}
	if ttl <= 0 {
		// A mount without lease settings (never through the pipeline, which fills them): an
		// expiry of "now" would hand out a dead credential.
		ttl = fallbackTTL
	}
	return ttl, maxTTL
}

// creds serves creds/:role: the user is created first, then the answer carries it with a Secret
// whose InternalData lets the pipeline's lease revoke it.
func (b *Backend) creds(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	r, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("unknown role: %s", name)
	}
	c, ok := b.view.Config(b.mount.UUID, r.DBName)
	if !ok {
		return nil, engines.BadRequest("failed to find entry for connection with name: %q", r.DBName)
	}
	if !allowed(c.AllowedRoles, name) {
		return nil, engines.BadRequest("%q is not an allowed role", name)
	}
	drv, ok := b.drivers[c.PluginName]
	if !ok {
		return nil, engines.BadRequest("unsupported plugin_name %q", c.PluginName)
	}
	m := req.Mount
	if m.UUID == "" {
		m = b.mount // a request built without its mount (never through the pipeline)
	}
	ttl, maxTTL := ttls(r, m)
	tmpl := c.UsernameTemplate
	if tmpl == "" {
		tmpl = drv.DefaultUsernameTemplate
	}
	display := "token"
	if req.Caller != nil && req.Caller.DisplayName != "" {
		display = req.Caller.DisplayName
	}
	username, err := GenerateUsername(tmpl, display, name, req.Now, drv.MaxUsernameLength)
	if err != nil {
		return nil, err
	}
	password, err := b.newPassword(ctx, c)
	if err != nil {
		return nil, err
	}
	expiration := req.Now.Add(ttl).UTC()
	b.noteCreated(username, req.Now)
	err = b.withPlugin(r.DBName, c, func(p Plugin) error {
		return p.CreateUser(ctx, dbplugin.NewUser{Username: username, Password: password, Expiration: expiration,
			Creation: r.CreationStatements, Rollback: r.RollbackStatements})
	})
	if err != nil {
		return nil, b.userError(err, password, c.Password)
	}
	internal, err := json.Marshal(LeaseData{Version: 1, DBName: r.DBName, Username: username, Role: name,
		PluginName: c.PluginName, RevocationStatements: r.RevocationStatements, RenewStatements: r.RenewStatements,
		Expiration: expiration})
	if err != nil {
		return nil, err
	}
	fp, err := b.fingerprintEvents(req, req.Now, fpview.KindCreds, "creds/"+name, 0, username, password)
	if err != nil {
		return nil, err
	}
	return &engines.Response{
		Events: fp,
		Data:   map[string]any{"username": username, "password": password},
		Secret: &engines.Secret{LeaseDuration: ttl, MaxTTL: maxTTL, Renewable: true, InternalData: internal},
	}, nil
}

// userError turns a plugin's failure into a 400 carrying the database's message, redacted once
// more (the plugin already redacts) so no password can slip into the answer.
func (b *Backend) userError(err error, secrets ...string) error {
	if errors.Is(err, engines.ErrBadRequest) || errors.Is(err, ErrClosed) {
		return err
	}
	return engines.BadRequest("%s", dbplugin.Redact(err.Error(), secrets...))
}

// noteCreated remembers a user this process is creating, so reconciliation does not take it
// for an orphan before its lease is registered.
func (b *Backend) noteCreated(username string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for u, t := range b.created {
		if now.Sub(t) > OrphanGrace {
			delete(b.created, u)
		}
	}
	b.created[username] = now
}
