package approle

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// roleFor returns the role a secret-ID endpoint names, or Vault's "does not exist" error of
// the given kind.
func (b *Backend) roleFor(name string, kind error) (approleview.Role, error) {
	role, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return approleview.Role{}, engines.Errorf(kind, "role %q does not exist", name)
	}
	return role, nil
}

// createSecretID is POST role/<name>/secret-id (a fresh random secret ID) and
// role/<name>/custom-secret-id (the caller's), following Vault's handleRoleSecretIDCommon.
func (b *Backend) createSecretID(r *request, name string, custom bool) (*engines.Response, error) {
	secretID := newUUID()
	if custom {
		var err error
		if secretID, err = engines.String(r.data, "secret_id", ""); err != nil {
			return nil, err
		}
		if secretID == "" {
			return nil, engines.BadRequest("missing secret_id")
		}
		if len(secretID) > maxInput {
			return nil, engines.BadRequest("secret_id is longer than maximum of %d bytes", maxInput)
		}
	}
	role, err := b.roleFor(name, engines.ErrNotFound)
	if err != nil {
		return nil, err
	}
	if !role.BindSecretID {
		return nil, engines.BadRequest("bind_secret_id is not set on the role")
	}

	cidrs, err := engines.Strings(r.data, "cidr_list")
	if err != nil {
		return nil, err
	}
	if err := engines.CheckCIDRs("failed to validate CIDR blocks", cidrs); err != nil {
		return nil, err
	}
	if !engines.SubsetCIDRs(role.SecretIDBoundCIDRs, cidrs) {
		return nil, engines.BadRequest("failed to verify subset relationship between CIDR blocks on the role %q and CIDR blocks on the secret ID %q", role.SecretIDBoundCIDRs, cidrs)
	}
	tokenCIDRs, err := engines.Strings(r.data, "token_bound_cidrs")
	if err != nil {
		return nil, err
	}
	if err := engines.CheckCIDRs("failed to validate token CIDR blocks", tokenCIDRs); err != nil {
		return nil, err
	}
	if !engines.SubsetCIDRs(role.Token.BoundCIDRs, tokenCIDRs) {
		return nil, engines.BadRequest("failed to verify subset relationship between CIDR blocks on the role %q and CIDR blocks on the secret ID %q", role.Token.BoundCIDRs, tokenCIDRs)
	}

	numUses := role.SecretIDNumUses
	if engines.Has(r.data, "num_uses") {
		if numUses, err = engines.Int(r.data, "num_uses", 0); err != nil {
			return nil, err
		}
		if numUses < 0 {
			return nil, engines.BadRequest("num_uses cannot be negative")
		}
		if role.SecretIDNumUses > 0 && (numUses == 0 || numUses > role.SecretIDNumUses) {
			return nil, engines.BadRequest("num_uses cannot be higher than the role's secret_id_num_uses")
		}
	}
	ttl := role.SecretIDTTL
	if engines.Has(r.data, "ttl") {
		if ttl, err = engines.NonNegativeDuration(r.data, "ttl"); err != nil {
			return nil, err
		}
		if role.SecretIDTTL > 0 && (ttl == 0 || ttl > role.SecretIDTTL) {
			return nil, engines.BadRequest("ttl cannot be longer than the role's secret_id_ttl")
		}
	}
	// Vault's deriveSecretIDTTL: a TTL past the mount's max is cut to it; zero never expires.
	if _, mountMax := enginetoken.LeaseTTLs(r.Mount, b.mount); ttl > mountMax {
		ttl = mountMax
	}
	meta, err := parseMetadata(r.data)
	if err != nil {
		return nil, err
	}

	mac := b.secretMAC(role.Key, secretID)
	if _, dup := b.view.SecretID(b.mount.UUID, mac); dup {
		return nil, engines.BadRequest("SecretID is already registered")
	}
	s := approleview.SecretID{
		MAC: mac, Accessor: b.newAccessor(), Role: role.Name, RoleKey: role.Key,
		NumUses: numUses, TTL: ttl, CreationTime: r.now, LastUpdatedTime: r.now,
		Metadata: meta, CIDRList: cidrs, TokenBoundCIDRs: tokenCIDRs,
	}
	if ttl > 0 {
		s.ExpirationTime = r.now.Add(ttl)
	}
	ev := b.event(r, approleview.SecretIDCreated, role.Name, approleview.SecretIDCreatedPayload{Mount: b.mount.UUID, SecretID: s})
	// The secret ID's keyed fingerprint, so a leaked one is recognised; never the ID itself.
	fp, err := fpview.Event(fpview.RecordedPayload{
		Kind: fpview.KindSecretID, Mount: b.mount.UUID, Path: "role/" + role.Name + "/secret-id",
		Ref: mac, Accessor: s.Accessor, Time: r.now.UTC(),
		Fields: map[string]string{"secret_id": b.keyring.Fingerprint([]byte(secretID))},
	}, ev.Actor, ev.Request, r.now)
	if err != nil {
		return nil, err
	}
	return &engines.Response{
		Data: map[string]any{
			"secret_id":          secretID,
			"secret_id_accessor": s.Accessor,
			"secret_id_ttl":      seconds(ttl),
			"secret_id_num_uses": numUses,
		},
		Events: []ledger.Event{ev, fp},
	}, nil
}

// newAccessor draws a secret-ID accessor no live secret ID of the mount has.
func (b *Backend) newAccessor() string {
	for {
		a := newUUID()
		if _, taken := b.view.SecretIDByAccessor(b.mount.UUID, a); !taken {
			return a
		}
	}
}

// listSecretIDs is LIST role/<name>/secret-id: the accessors.
func (b *Backend) listSecretIDs(name string) (*engines.Response, error) {
	if _, err := b.roleFor(name, engines.ErrBadRequest); err != nil {
		return nil, err
	}
	keys := b.view.Accessors(b.mount.UUID, name)
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}, nil
}

// secretData is Vault's answer to a secret-ID lookup.
func secretData(s approleview.SecretID) map[string]any {
	meta := maps.Clone(s.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	return map[string]any{
		"secret_id_accessor": s.Accessor,
		"secret_id_num_uses": s.NumUses,
		"secret_id_ttl":      seconds(s.TTL),
		"creation_time":      s.CreationTime.Format(time.RFC3339Nano),
		"expiration_time":    s.ExpirationTime.Format(time.RFC3339Nano),
		"last_updated_time":  s.LastUpdatedTime.Format(time.RFC3339Nano),
		"metadata":           meta,
		"cidr_list":          list(s.CIDRList),
		"token_bound_cidrs":  list(s.TokenBoundCIDRs),
	}
}

// bodySecretID finds the role's secret ID named in the body. Found is false for one that is
// unknown or belongs to another role.
func (b *Backend) bodySecretID(r *request, name string) (approleview.SecretID, bool, error) {
	sid, err := engines.String(r.data, "secret_id", "")
	if err != nil {
		return approleview.SecretID{}, false, err
	}
	if sid = strings.TrimSpace(sid); sid == "" {
		return approleview.SecretID{}, false, engines.BadRequest("missing secret_id")
	}
	role, err := b.roleFor(name, engines.ErrBadRequest)
	if err != nil {
		return approleview.SecretID{}, false, err
	}
	if len(sid) > maxInput {
		return approleview.SecretID{}, false, nil
	}
	s, ok := b.view.SecretID(b.mount.UUID, b.secretMAC(role.Key, sid))
	return s, ok && s.Role == role.Name, nil
}

// lookupSecretID is POST role/<name>/secret-id/lookup. An unknown secret ID answers nothing
// (204), as Vault.
func (b *Backend) lookupSecretID(r *request, name string) (*engines.Response, error) {
	s, ok, err := b.bodySecretID(r, name)
	if err != nil || !ok {
		return &engines.Response{}, err
	}
	return &engines.Response{Data: secretData(s)}, nil
}

// destroySecretID is POST/DELETE role/<name>/secret-id/destroy.
func (b *Backend) destroySecretID(r *request, name string) (*engines.Response, error) {
	s, ok, err := b.bodySecretID(r, name)
	if err != nil || !ok {
		return &engines.Response{}, err
	}
	return &engines.Response{Events: []ledger.Event{b.destroyedEvent(r, s, approleview.ReasonDestroyed)}}, nil
}

func (b *Backend) destroyedEvent(r *request, s approleview.SecretID, reason string) ledger.Event {
	return b.event(r, approleview.SecretIDDestroyed, s.Role, approleview.SecretIDDestroyedPayload{Mount: b.mount.UUID, MAC: s.MAC, Reason: reason})
}

// bodyAccessor finds the role's secret ID whose accessor the body names.
func (b *Backend) bodyAccessor(r *request, name string) (approleview.SecretID, string, bool, error) {
	acc, err := engines.String(r.data, "secret_id_accessor", "")
	if err != nil {
		return approleview.SecretID{}, "", false, err
	}
	if acc = strings.TrimSpace(acc); acc == "" {
		return approleview.SecretID{}, "", false, engines.BadRequest("missing secret_id_accessor")
	}
	if _, err := b.roleFor(name, engines.ErrBadRequest); err != nil {
		return approleview.SecretID{}, "", false, err
	}
	s, ok := b.view.SecretIDByAccessor(b.mount.UUID, acc)
	return s, acc, ok && s.Role == name, nil
}

// lookupSecretIDAccessor is POST role/<name>/secret-id-accessor/lookup.
func (b *Backend) lookupSecretIDAccessor(r *request, name string) (*engines.Response, error) {
	s, acc, ok, err := b.bodyAccessor(r, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engines.Errorf(engines.ErrNotFound, "failed to find accessor entry for secret_id_accessor: %q", acc)
	}
	return &engines.Response{Data: secretData(s)}, nil
}

// destroySecretIDAccessor is POST/DELETE role/<name>/secret-id-accessor/destroy.
func (b *Backend) destroySecretIDAccessor(r *request, name string) (*engines.Response, error) {
	s, acc, ok, err := b.bodyAccessor(r, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engines.BadRequest("%s", fmt.Sprintf("failed to find accessor entry for secret_id_accessor: %q", acc))
	}
	return &engines.Response{Events: []ledger.Event{b.destroyedEvent(r, s, approleview.ReasonDestroyed)}}, nil
}
