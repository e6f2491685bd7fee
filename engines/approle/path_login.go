package approle

import (
	"crypto/subtle"
	"math"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
)

// errInvalid is the one answer for an unknown role_id, an unknown, foreign or expired
// secret_id: which of them was wrong is not told.
var errInvalid = engines.BadRequest("invalid role or secret ID")

// login is POST login: role_id and secret_id for a token.
func (b *Backend) login(r *request) (*engines.Response, error) {
	roleID, err := engines.String(r.data, "role_id", "")
	if err != nil {
		return nil, err
	}
	if roleID = strings.TrimSpace(roleID); roleID == "" {
		return nil, engines.BadRequest("missing role_id")
	}
	secretID, err := engines.String(r.data, "secret_id", "")
	if err != nil {
		return nil, err
	}
	secretID = strings.TrimSpace(secretID)

	// One attempt is reserved from the source's and the role_id's budgets before anything is
	// checked, and given back on success: only failures stay spent, and concurrent guesses
	// cannot overrun the budget while the first is being verified.
	host := engines.HostOf(r.RemoteAddr)
	keys := []string{"addr\x00" + host, "role_id\x00" + roleID}
	if ok, wait := b.limiter.Take(r.now, keys...); !ok {
		return nil, engines.Errorf(engines.ErrRateLimited, "too many failed login attempts for this user or source; retry after %ds", int64(math.Ceil(wait.Seconds())))
	}
	resp, err := b.verifyLogin(r, roleID, secretID, host)
	if err != nil {
		return nil, err // the failure stays counted; the pipeline audits it like any error
	}
	b.limiter.Refund(r.now, keys...)
	return resp, nil
}

// verifyLogin is Vault's pathLoginUpdate, with the expiry of secret IDs judged at r.now.
func (b *Backend) verifyLogin(r *request, roleID, secretID, host string) (*engines.Response, error) {
	role, ok := b.view.RoleByRoleID(b.mount.UUID, roleID)
	if !ok || subtle.ConstantTimeCompare([]byte(role.RoleID), []byte(roleID)) != 1 {
		return nil, errInvalid
	}
	var (
		events     []ledger.Event
		meta       = map[string]string{}
		tokenCIDRs = role.Token.BoundCIDRs
	)
	if role.BindSecretID {
		if secretID == "" {
			return nil, engines.BadRequest("missing secret_id")
		}
		if len(secretID) > maxInput {
			return nil, errInvalid
		}
		mac := b.secretMAC(role.Key, secretID)
		s, ok := b.view.SecretID(b.mount.UUID, mac)
		if !ok || !ledger.EqualMAC(s.MAC, mac) || subtle.ConstantTimeCompare([]byte(s.RoleKey), []byte(role.Key)) != 1 || s.Expired(r.now) {
			return nil, errInvalid
		}
		if len(s.CIDRList) > 0 {
			// The role's blocks may have narrowed since the secret ID was issued.
			if !engines.SubsetCIDRs(role.SecretIDBoundCIDRs, s.CIDRList) {
				return nil, engines.BadRequest("failed to verify subset relationship between CIDR blocks on the role %q and CIDR blocks on the secret ID %q", role.SecretIDBoundCIDRs, s.CIDRList)
			}
			if !engines.InCIDRs(host, s.CIDRList) {
				return nil, engines.BadRequest("source address %q unauthorized through CIDR restrictions on the secret ID", host)
			}
		}
		if len(role.SecretIDBoundCIDRs) > 0 && !engines.InCIDRs(host, role.SecretIDBoundCIDRs) {
			return nil, engines.BadRequest("source address %q unauthorized by CIDR restrictions on the role", host)
		}
		if s.NumUses > 0 {
			// Unlike Vault, the use is spent only once every check passed: a refused source
			// address does not burn a use of a secret ID it does not hold legitimately.
			events = append(events, b.event(r, approleview.SecretIDUsed, role.Name, approleview.SecretIDUsedPayload{Mount: b.mount.UUID, MAC: s.MAC, Time: r.now}))
		}
		for k, v := range s.Metadata {
			meta[k] = v
		}
		if len(s.TokenBoundCIDRs) > 0 {
			tokenCIDRs = s.TokenBoundCIDRs
		}
	} else if len(role.SecretIDBoundCIDRs) > 0 && !engines.InCIDRs(host, role.SecretIDBoundCIDRs) {
		return nil, engines.BadRequest("source address %q unauthorized by CIDR restrictions on the role", host)
	}
	meta["role_name"] = role.Name

	mountPath := b.mountPath(r.Request)
	auth, created, warnings, err := enginetoken.Issue(enginetoken.IssueInput{
		Keyring:      b.keyring,
		Tokens:       b.tokens,
		Mount:        r.Mount,
		BackendMount: b.mount,
		Params:       role.Token,
		BoundCIDRs:   tokenCIDRs,
		Metadata:     meta,
		DisplayName:  displayName(mountPath, ""),
		Path:         mountPath + "login",
		Now:          r.now,
	})
	if err != nil {
		return nil, err
	}
	auth.Alias = &engines.Alias{Name: role.RoleID, Metadata: map[string]string{"role_name": role.Name}}
	events = append(events, stamp(r, created))
	return &engines.Response{Auth: auth, Warnings: warnings, Events: events}, nil
}

// displayName is Vault's for login tokens: the mount path without "auth/", dashes for slashes,
// then the method's own display name.
func displayName(mountPath, name string) string {
	source := strings.ReplaceAll(strings.TrimPrefix(mountPath, "auth/"), "/", "-")
	return strings.TrimSuffix(source+name, "-")
}
