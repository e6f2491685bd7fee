package userpass

import (
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
	userpassview "github.com/ledger-secrets/ledger/projections/userpass"
)

// userFields are the parameters of users/<name>, for the "ignored these unrecognized
// parameters" warning.
var userFields = append([]string{"username", "password", "policies", "ttl", "max_ttl", "bound_cidrs"}, enginetoken.ParamFields()...)

// listUsers is LIST users.
func (b *Backend) listUsers() (*engines.Response, error) {
	keys := b.view.Users(b.mount.UUID)
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}, nil
}

// readUser is GET users/<name>: the token fields, never the password or its hash.
func (b *Backend) readUser(name string) (*engines.Response, error) {
	u, ok := b.view.User(b.mount.UUID, name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	d := map[string]any{}
	enginetoken.PopulateParams(d, u.Token)
	// Backwards compatible data, shown only when the deprecated fields were used.
	if u.LegacyTTL > 0 {
		d["ttl"] = seconds(u.LegacyTTL)
	}
	if u.LegacyMaxTTL > 0 {
		d["max_ttl"] = seconds(u.LegacyMaxTTL)
	}
	if len(u.LegacyPolicies) > 0 {
		d["policies"] = d["token_policies"]
	}
	if len(u.LegacyBoundCIDRs) > 0 {
		d["bound_cidrs"] = list(u.LegacyBoundCIDRs)
	}
	return &engines.Response{Data: d}, nil
}

// writeUser is POST users/<name>, following Vault's pathUserWrite: a new user needs a
// password; an update changes what it names.
func (b *Backend) writeUser(r *request, name string, createOp bool) (*engines.Response, error) {
	old, exists := b.view.User(b.mount.UUID, name)
	u := old
	if !exists {
		u = userpassview.User{Name: name, Token: tokenview.Params{Type: "default"}, Created: r.now}
	}
	pw, err := engines.String(r.data, "password", "")
	if err != nil {
		return nil, err
	}
	if (createOp || !exists) && pw == "" {
		return nil, engines.BadRequest("missing password")
	}
	warnings, err := enginetoken.ParseParams(r.data, &u.Token)
	if err != nil {
		return nil, err
	}
	if err := upgradeLegacy(r.data, &u); err != nil {
		return nil, err
	}
	if u.Token.TTL > 0 && u.Token.MaxTTL > 0 && u.Token.TTL > u.Token.MaxTTL {
		return nil, engines.BadRequest("'token_ttl' cannot be greater than 'token_max_ttl'")
	}
	if engines.Has(r.data, "password") {
		if pw == "" {
			return nil, engines.BadRequest("missing password")
		}
		if u.PasswordHash, err = b.hash(r, pw); err != nil {
			return nil, err
		}
	}
	if unknown := engines.Unknown(r.data, userFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	return b.written(r, u, warnings), nil
}

// hash hashes a password inside a hash slot. The password's bytes are cleared afterwards; the
// string it came from belongs to the request and goes with it.
func (b *Backend) hash(r *request, pw string) (string, error) {
	release, err := b.hashSlot(r.ctx)
	if err != nil {
		return "", err
	}
	defer release()
	buf := []byte(pw)
	defer clear(buf)
	return hashPassword(buf), nil
}

func (b *Backend) written(r *request, u userpassview.User, warnings []string) *engines.Response {
	u.Updated = r.now
	ev := b.event(r, userpassview.UserWritten, u.Name, userpassview.UserWrittenPayload{Mount: b.mount.UUID, User: u})
	return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}
}

// upgradeLegacy applies the deprecated policies, ttl, max_ttl and bound_cidrs as Vault's
// tokenutil.UpgradeValue: alone they set their token_* twin; beside it they mirror it; when only
// the new field is given the old one is cleared.
func upgradeLegacy(data map[string]any, u *userpassview.User) error {
	if err := enginetoken.UpgradePolicies(data, &u.Token, &u.LegacyPolicies); err != nil {
		return err
	}
	if err := enginetoken.UpgradeDuration(data, "ttl", "token_ttl", &u.LegacyTTL, &u.Token.TTL); err != nil {
		return err
	}
	if err := enginetoken.UpgradeDuration(data, "max_ttl", "token_max_ttl", &u.LegacyMaxTTL, &u.Token.MaxTTL); err != nil {
		return err
	}
	switch {
	case engines.Has(data, "token_bound_cidrs") && engines.Has(data, "bound_cidrs"):
		u.LegacyBoundCIDRs = u.Token.BoundCIDRs
	case engines.Has(data, "token_bound_cidrs"):
		u.LegacyBoundCIDRs = nil
	case engines.Has(data, "bound_cidrs"):
		cidrs, err := engines.Strings(data, "bound_cidrs")
		if err != nil {
			return err
		}
		if err := engines.CheckCIDRs("invalid bound_cidrs", cidrs); err != nil {
			return err
		}
		u.LegacyBoundCIDRs, u.Token.BoundCIDRs = cidrs, cidrs
	}
	return nil
}

// deleteUser is DELETE users/<name>. Tokens issued to the user live on, as in Vault.
func (b *Backend) deleteUser(r *request, name string) (*engines.Response, error) {
	if _, ok := b.view.User(b.mount.UUID, name); !ok {
		return &engines.Response{}, nil
	}
	ev := b.event(r, userpassview.UserDeleted, name, userpassview.UserDeletedPayload{Mount: b.mount.UUID, Name: name})
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

// writePassword is POST users/<name>/password.
func (b *Backend) writePassword(r *request, name string) (*engines.Response, error) {
	u, ok := b.view.User(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("username does not exist")
	}
	pw, err := engines.String(r.data, "password", "")
	if err != nil {
		return nil, err
	}
	if pw == "" {
		return nil, engines.BadRequest("missing password")
	}
	if u.PasswordHash, err = b.hash(r, pw); err != nil {
		return nil, err
	}
	return b.written(r, u, nil), nil
}

// writePolicies is POST users/<name>/policies.
func (b *Backend) writePolicies(r *request, name string) (*engines.Response, error) {
	u, ok := b.view.User(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("username does not exist")
	}
	in := map[string]any{}
	for _, k := range []string{"token_policies", "policies"} {
		if v, ok := r.data[k]; ok {
			in[k] = v
		}
	}
	if _, err := enginetoken.ParseParams(in, &u.Token); err != nil {
		return nil, err
	}
	if engines.Has(in, "token_policies") {
		u.Token.Policies = enginetoken.SanitizePolicies(u.Token.Policies, false)
	}
	if err := upgradeLegacy(in, &u); err != nil {
		return nil, err
	}
	return b.written(r, u, nil), nil
}

// seconds is a duration as Vault's JSON shows it: whole seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// list copies a list for a response: [] rather than null when empty, as Vault shows lists.
func list(in []string) []string { return append([]string{}, in...) }
