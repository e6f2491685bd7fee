package database

import (
	"github.com/ledger-secrets/ledger/engines"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

// handleRole serves roles/:name.
func (b *Backend) handleRole(req *engines.Request, name string) (*engines.Response, error) {
	switch req.Op {
	case engines.OpRead:
		r, ok := b.view.Role(b.mount.UUID, name)
		if !ok {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: map[string]any{
			"db_name":               r.DBName,
			"creation_statements":   nonNil(r.CreationStatements),
			"revocation_statements": nonNil(r.RevocationStatements),
			"rollback_statements":   nonNil(r.RollbackStatements),
			"renew_statements":      nonNil(r.RenewStatements),
			"default_ttl":           seconds(r.DefaultTTL),
			"max_ttl":               seconds(r.MaxTTL),
			"credential_type":       "password",
		}}, nil
	case engines.OpCreate, engines.OpUpdate:
		return b.writeRole(req, name)
	case engines.OpDelete:
		if _, ok := b.view.Role(b.mount.UUID, name); !ok {
			return respond(), nil
		}
		ev, err := event(req, req.Now, dbview.RoleDeleted, b.subject("roles/"+name), dbview.DeletedPayload{Mount: b.mount.UUID, Name: name})
		if err != nil {
			return nil, err
		}
		return respond(ev), nil
	}
	return nil, unsupported()
}

// writeRole creates or updates a dynamic role; an update keeps the fields it does not name.
func (b *Backend) writeRole(req *engines.Request, name string) (*engines.Response, error) {
	if err := checkName("role", name); err != nil {
		return nil, err
	}
	if _, ok := b.view.StaticRole(b.mount.UUID, name); ok {
		return nil, engines.BadRequest("Role and Static Role names must be unique")
	}
	d := req.Data
	r, _ := b.view.Role(b.mount.UUID, name)
	var err error
	if engines.Has(d, "db_name") {
		if r.DBName, err = engines.String(d, "db_name", ""); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		dst *[]string
	}{
		{"creation_statements", &r.CreationStatements},
		{"revocation_statements", &r.RevocationStatements},
		{"rollback_statements", &r.RollbackStatements},
		{"renew_statements", &r.RenewStatements},
	} {
		if engines.Has(d, f.key) {
			if *f.dst, err = statements(d, f.key); err != nil {
				return nil, err
			}
		}
	}
	if engines.Has(d, "default_ttl") {
		if r.DefaultTTL, err = engines.Duration(d, "default_ttl", 0); err != nil {
			return nil, err
		}
	}
	if engines.Has(d, "max_ttl") {
		if r.MaxTTL, err = engines.Duration(d, "max_ttl", 0); err != nil {
			return nil, err
		}
	}
	switch {
	case r.DBName == "":
		return nil, engines.BadRequest("empty database name attribute")
	case len(r.CreationStatements) == 0:
		return nil, engines.BadRequest("empty creation statements")
	case r.MaxTTL != 0 && r.DefaultTTL > r.MaxTTL:
		return nil, engines.BadRequest("ttl cannot be greater than max_ttl")
	}
	ev, err := event(req, req.Now, dbview.RoleWritten, b.subject("roles/"+name), dbview.RolePayload{Mount: b.mount.UUID, Name: name, Role: r})
	if err != nil {
		return nil, err
	}
	return respond(ev), nil
}
