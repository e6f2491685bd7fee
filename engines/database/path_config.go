package database

import (
	"context"
	"path"
	"sort"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/database/dbplugin"
	"github.com/ledger-secrets/ledger/ledger"
	dbview "github.com/ledger-secrets/ledger/projections/database"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// handleConfig serves config/:name.
func (b *Backend) handleConfig(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	switch req.Op {
	case engines.OpRead:
		c, ok := b.view.Config(b.mount.UUID, name)
		if !ok {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: configData(c)}, nil
	case engines.OpCreate, engines.OpUpdate:
		return b.writeConfig(ctx, req, name)
	case engines.OpDelete:
		if _, ok := b.view.Config(b.mount.UUID, name); !ok {
			return respond(), nil
		}
		if b.liveLeases != nil {
			if n := b.liveLeases(name); n > 0 {
				return nil, engines.BadRequest("connection %q still has %d open lease(s); revoke them first (ledger lease revoke -prefix %screds/) so no credential outlives the connection that can revoke it", name, n, b.mount.Path)
			}
		}
		b.reset(name)
		ev, err := event(req, req.Now, dbview.ConfigDeleted, b.subject("config/"+name), dbview.DeletedPayload{Mount: b.mount.UUID, Name: name})
		if err != nil {
			return nil, err
		}
		return respond(ev), nil
	}
	return nil, unsupported()
}

// configData is a configuration as Vault reads it back: never the password.
func configData(c dbview.Config) map[string]any {
	details := map[string]any{"connection_url": redactConnURL(c.ConnectionURL)}
	if c.Username != "" {
		details["username"] = c.Username
	}
	if c.MaxOpenConnections != 0 {
		details["max_open_connections"] = c.MaxOpenConnections
	}
	if c.MaxIdleConnections != 0 {
		details["max_idle_connections"] = c.MaxIdleConnections
	}
	if c.MaxConnectionLifetime != 0 {
		details["max_connection_lifetime"] = c.MaxConnectionLifetime.String()
	}
	if c.UsernameTemplate != "" {
		details["username_template"] = c.UsernameTemplate
	}
	return map[string]any{
		"plugin_name":                        c.PluginName,
		"plugin_version":                     "",
		"connection_details":                 details,
		"allowed_roles":                      nonNil(c.AllowedRoles),
		"root_credentials_rotate_statements": nonNil(c.RootRotationStatements),
		"password_policy":                    c.PasswordPolicy,
		"verify_connection":                  c.VerifyConnection,
	}
}

// writeConfig creates or updates a configuration. An update keeps the fields it does not name,
// as Vault merges connection details. With verify_connection (the default) the database must
// answer before anything is recorded; the pool built to check it is kept.
func (b *Backend) writeConfig(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	if err := checkName("connection", name); err != nil {
		return nil, err
	}
	d := req.Data
	c, exists := b.view.Config(b.mount.UUID, name)
	if !exists {
		c = dbview.Config{}
	}
	var err error
	str := func(key string, dst *string) {
		if err == nil && engines.Has(d, key) {
			*dst, err = engines.String(d, key, "")
		}
	}
	integer := func(key string, dst *int) {
		if err == nil && engines.Has(d, key) {
			*dst, err = engines.Int(d, key, 0)
		}
	}
	str("plugin_name", &c.PluginName)
	str("connection_url", &c.ConnectionURL)
	str("username", &c.Username)
	str("password", &c.Password)
	str("password_policy", &c.PasswordPolicy)
	str("username_template", &c.UsernameTemplate)
	integer("max_open_connections", &c.MaxOpenConnections)
	integer("max_idle_connections", &c.MaxIdleConnections)
	if err == nil && engines.Has(d, "max_connection_lifetime") {
		c.MaxConnectionLifetime, err = engines.Duration(d, "max_connection_lifetime", 0)
	}
	if err == nil && engines.Has(d, "allowed_roles") {
		c.AllowedRoles, err = engines.Strings(d, "allowed_roles")
	}
	if err == nil && engines.Has(d, "root_rotation_statements") {
		c.RootRotationStatements, err = statements(d, "root_rotation_statements")
	}
	if err == nil {
		c.VerifyConnection, err = engines.Bool(d, "verify_connection", true)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case c.PluginName == "":
		return nil, engines.BadRequest("empty plugin name")
	case c.ConnectionURL == "":
		return nil, engines.BadRequest("connection_url cannot be empty")
	case c.MaxOpenConnections < 0 || c.MaxIdleConnections < 0:
		return nil, engines.BadRequest("max_open_connections and max_idle_connections cannot be negative")
	}
	drv, ok := b.drivers[c.PluginName]
	if !ok {
		return nil, engines.BadRequest("unsupported plugin_name %q: this build serves %s", c.PluginName, b.driverNames())
	}
	for _, pattern := range c.AllowedRoles {
		if _, err := path.Match(pattern, ""); err != nil {
			return nil, engines.BadRequest("invalid allowed_roles pattern %q", pattern)
		}
	}
	if c.UsernameTemplate != "" {
		if _, err := GenerateUsername(c.UsernameTemplate, "token", "role", req.Now, drv.MaxUsernameLength); err != nil {
			return nil, err
		}
	}

	pl, err := b.open(c)
	if err != nil {
		return nil, err
	}
	if c.VerifyConnection {
		if err := pl.Verify(ctx); err != nil {
			_ = pl.Close()
			return nil, engines.BadRequest("error creating database object: %s", dbplugin.Redact(err.Error(), c.Password))
		}
	}
	// A written config replaces whatever rotate-root left pending: its password is the truth.
	b.mu.Lock()
	delete(b.pendingRoot, name)
	b.mu.Unlock()
	if _, err := b.install(name, connKey(c), pl, false); err != nil {
		return nil, err
	}
	ev, err := event(req, req.Now, dbview.ConfigWritten, b.subject("config/"+name), dbview.ConfigPayload{Mount: b.mount.UUID, Name: name, Config: c})
	if err != nil {
		return nil, err
	}
	var fp []ledger.Event
	if engines.Has(req.Data, "password") { // an update without one keeps the recorded password
		if fp, err = b.fingerprintEvents(req, req.Now, fpview.KindRoot, "config/"+name, 0, "", c.Password); err != nil {
			return nil, err
		}
	}
	resp := respond(append([]ledger.Event{ev}, fp...)...)
	if redactConnURL(c.ConnectionURL) != c.ConnectionURL {
		resp.Warnings = append(resp.Warnings, "Password found in connection_url, use a templated url to enable root rotation and prevent read access to password information.")
	}
	return resp, nil
}

// redactConnURL hides a literal password in a connection string (URL user-info, a MySQL DSN's
// "user:password@", or PostgreSQL's password=…); the {{password}} template stays.
func redactConnURL(s string) string {
	const hidden = "*****"
	if strings.Contains(s, "://") || !strings.Contains(s, "=") || strings.Contains(s, "@") {
		// URL or DSN: user-info ends at the last '@' before the host part.
		start := 0
		end := len(s)
		if i := strings.Index(s, "://"); i >= 0 {
			start = i + 3
			if j := strings.IndexAny(s[start:], "/?#"); j >= 0 {
				end = start + j
			}
		} else if j := strings.LastIndex(s, "/"); j >= 0 {
			end = j
		}
		at := strings.LastIndex(s[start:end], "@")
		if at < 0 {
			return s
		}
		userinfo := s[start : start+at]
		user, pw, ok := strings.Cut(userinfo, ":")
		if !ok || pw == "" || pw == "{{password}}" {
			return s
		}
		return s[:start] + user + ":" + hidden + s[start+at:]
	}
	// key=value form.
	fields := strings.Fields(s)
	for i, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok && k == "password" && v != "{{password}}" && v != "'{{password}}'" {
			fields[i] = "password=" + hidden
		}
	}
	return strings.Join(fields, " ")
}

func (b *Backend) driverNames() string {
	var s []string
	for n := range b.drivers {
		s = append(s, n)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// allowed reports whether role matches allowed_roles: "*" or globs like "app-*".
func allowed(patterns []string, role string) bool {
	for _, p := range patterns {
		if p == "*" || p == role {
			return true
		}
		if ok, err := path.Match(p, role); err == nil && ok {
			return true
		}
	}
	return false
}

// resetConfig serves reset/:name: the pool is closed and rebuilt from the view on next use.
func (b *Backend) resetConfig(name string) (*engines.Response, error) {
	if _, ok := b.view.Config(b.mount.UUID, name); !ok {
		return nil, engines.BadRequest("failed to find entry for connection with name: %q", name)
	}
	b.reset(name)
	return respond(), nil
}
