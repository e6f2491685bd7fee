package userpass

import (
	"math"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
)

// errInvalid is the one answer for an unknown user and a wrong password.
var errInvalid = engines.BadRequest("invalid username or password")

// login is POST login/<name>.
func (b *Backend) login(r *request, name string) (*engines.Response, error) {
	pw, err := engines.String(r.data, "password", "")
	if err != nil {
		return nil, err
	}
	if pw == "" {
		return nil, engines.BadRequest("missing password")
	}
	dummy := b.dummyHash() // before the budget: the first login pays for it whoever it is for

	// One attempt is reserved from the source's and the user's budgets before anything is
	// checked, and given back on success: only failures stay spent, and concurrent guesses
	// cannot overrun the budget while the first is being verified. Unknown users have budgets
	// too, so the limiter does not tell which users exist.
	host := engines.HostOf(r.RemoteAddr)
	keys := []string{"addr\x00" + host, "user\x00" + name}
	if ok, wait := b.limiter.Take(r.now, keys...); !ok {
		return nil, engines.Errorf(engines.ErrRateLimited, "too many failed login attempts for this user or source; retry after %ds", int64(math.Ceil(wait.Seconds())))
	}
	resp, err := b.verifyLogin(r, name, pw, host, dummy)
	if err != nil {
		return nil, err // the failure stays counted; the pipeline audits it like any error
	}
	b.limiter.Refund(r.now, keys...)
	return resp, nil
}

// verifyLogin is Vault's userpass pathLogin.
func (b *Backend) verifyLogin(r *request, name, pw, host, dummy string) (*engines.Response, error) {
	u, found := b.view.User(b.mount.UUID, name)
	stored := dummy
	if found {
		stored = u.PasswordHash
	}
	release, err := b.hashSlot(r.ctx)
	if err != nil {
		return nil, err
	}
	buf := []byte(pw)
	match := verify(stored, buf)
	clear(buf)
	release()
	if !found || !match {
		return nil, errInvalid
	}
	if len(u.Token.BoundCIDRs) > 0 && !engines.InCIDRs(host, u.Token.BoundCIDRs) {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	mountPath := b.mountPath(r.Request)
	auth, created, warnings, err := enginetoken.Issue(enginetoken.IssueInput{
		Keyring:      b.keyring,
		Mount:        r.Mount,
		BackendMount: b.mount,
		Params:       u.Token,
		BoundCIDRs:   u.Token.BoundCIDRs,
		Metadata:     map[string]string{"username": name},
		DisplayName:  displayName(mountPath, name),
		Path:         mountPath + "login/" + name,
		Now:          r.now,
	})
	if err != nil {
		return nil, err
	}
	auth.Alias = &engines.Alias{Name: name}
	return &engines.Response{Auth: auth, Warnings: warnings, Events: []ledger.Event{stamp(r, created)}}, nil
}

// displayName is Vault's for login tokens: the mount path without "auth/", dashes for slashes,
// then the user's name: "userpass-alice".
func displayName(mountPath, name string) string {
	source := strings.ReplaceAll(strings.TrimPrefix(mountPath, "auth/"), "/", "-")
	return strings.TrimSuffix(source+name, "-")
}
