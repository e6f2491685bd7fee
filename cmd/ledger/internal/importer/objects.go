package importer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
)

// copySpec copies one configuration object (a role, a user, a connection) read from the
// source into Ledger. body turns what the source answered into what is written; fields the
// source answered but Ledger does not keep are dropped by the server (a warning, not an error).
// Compare checks the written fields only, so fields Ledger adds by itself are not conflicts.
type copySpec struct {
	kind, path       string // report kind and path
	srcPath, dstPath string
	body             func(src map[string]any) map[string]any
	// create adds what only a create needs (a password); nil: nothing.
	create func(body map[string]any)
	// after runs after a write (or when unchanged), e.g. set the role-id; it may return a
	// reason the item must be re-issued by hand.
	after func(ctx context.Context) (Status, string)
	// shape, when set, turns what Ledger answers into the form body has before they are
	// compared (fields nested differently on read than on write); nil: as read.
	shape func(have map[string]any) map[string]any
	// writeOnly are fields every write carries but no comparison sees: secrets neither server
	// returns (given on the command line).
	writeOnly map[string]any
}

func (im *importer) copyObject(ctx context.Context, c copySpec) Item {
	it := Item{Kind: c.kind, Path: c.path}
	src, err := read(ctx, im.src, c.srcPath)
	if err != nil || src == nil {
		it.Status, it.Reason = Unreadable, "gone from the source while importing"
		if err != nil {
			it.Reason = reason("read", err)
		}
		return it
	}
	body := c.body(src)
	have, err := read(ctx, im.dst, c.dstPath)
	if err != nil && !(im.opt.DryRun && status(err) == http.StatusNotFound) {
		it.Status, it.Reason = Failed, reason("read from Ledger", err)
		return it
	}
	same := false
	if have != nil {
		shaped := have
		if c.shape != nil {
			shaped = c.shape(have)
		}
		same = subsetEqual(body, shaped)
	}
	switch {
	case same:
		it.Status = Unchanged
	case have != nil && !im.opt.Overwrite:
		it.Status, it.Reason = Conflict, "Ledger holds another configuration here (-overwrite to replace it)"
		return it
	case im.opt.DryRun:
		it.Status = WouldImport
		return it
	default:
		if have == nil && c.create != nil {
			c.create(body)
		}
		if len(c.writeOnly) > 0 {
			body = maps.Clone(body)
			maps.Copy(body, c.writeOnly)
		}
		if _, err := write(ctx, im.dst, c.dstPath, body); err != nil {
			it.Status, it.Reason = Failed, reason("write", err)
			return it
		}
		it.Status = writtenStatus(have != nil)
	}
	if c.after != nil && !im.opt.DryRun {
		if st, r := c.after(ctx); st != "" {
			if st == Reissue && (it.Status == Unchanged) {
				// Still to be done by hand: say so again on every run.
				it.Status = Reissue
			} else if st != Reissue || it.Status != Unchanged {
				it.Status = st
			}
			it.Reason = r
		}
	}
	return it
}

// subsetEqual says whether every field of want has the same value in have.
func subsetEqual(want, have map[string]any) bool {
	for k, v := range want {
		if !equalJSON(v, have[k]) {
			return false
		}
	}
	return true
}

// without copies m without the named keys.
func without(m map[string]any, drop ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

// randomPassword is set on users whose password the source does not reveal: nobody knows it,
// so the user cannot log in until someone sets a new one. It is never printed.
func randomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// listed lists a path and reports a listing the token may not do.
func (im *importer) listed(ctx context.Context, kind, path string) []string {
	keys, err := list(ctx, im.src, path)
	if err != nil {
		if ctx.Err() == nil {
			im.add(Item{Kind: kind, Path: path, Status: Unreadable, Reason: reason("list", err)})
		}
		return nil
	}
	sort.Strings(keys)
	return keys
}

// --- policies ---

func (im *importer) importPolicies(ctx context.Context) {
	names, err := im.src.Sys().ListPoliciesWithContext(ctx)
	if err != nil {
		im.add(Item{Kind: KindPolicy, Path: "sys/policies/acl", Status: Unreadable, Reason: reason("list", err)})
		return
	}
	for _, name := range names {
		p := "sys/policies/acl/" + name
		if name == "root" || !im.wanted(p) {
			continue
		}
		it := Item{Kind: KindPolicy, Path: p}
		text, err := im.src.Sys().GetPolicyWithContext(ctx, name)
		if err != nil {
			it.Status, it.Reason = Unreadable, reason("read", err)
			im.add(it)
			continue
		}
		have, err := im.dst.Sys().GetPolicyWithContext(ctx, name)
		if err != nil && status(err) != http.StatusNotFound {
			it.Status, it.Reason = Failed, reason("read from Ledger", err)
			im.add(it)
			continue
		}
		switch {
		case have == text:
			it.Status = Unchanged
		case have != "" && !im.opt.Overwrite:
			it.Status, it.Reason = Conflict, "Ledger has another policy of this name (-overwrite to replace it)"
		case im.opt.DryRun:
			it.Status = WouldImport
		default:
			if err := im.dst.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
				it.Status, it.Reason = Failed, reason("write", err)
			} else if have != "" {
				it.Status = Updated
			} else {
				it.Status = Imported
			}
		}
		im.add(it)
	}
}

func (im *importer) importPasswordPolicies(ctx context.Context) {
	names := im.listed(ctx, KindPasswordPolicy, "sys/policies/password")
	for _, name := range names {
		p := "sys/policies/password/" + name
		if !im.wanted(p) {
			continue
		}
		im.add(im.copyObject(ctx, copySpec{kind: KindPasswordPolicy, path: p, srcPath: p, dstPath: p,
			body: func(s map[string]any) map[string]any { return map[string]any{"policy": s["policy"]} }}))
	}
}

// --- transit ---

func (im *importer) importTransit(ctx context.Context, m *mountInfo, spawn func(func())) {
	for _, name := range im.listed(ctx, KindTransit, m.Path+"keys") {
		p := m.Path + "keys/" + name
		if !im.wanted(p) {
			continue
		}
		spawn(func() { im.add(im.importTransitKey(ctx, m, name)) })
	}
}

func (im *importer) importTransitKey(ctx context.Context, m *mountInfo, name string) Item {
	p := m.Path + "keys/" + name
	it := Item{Kind: KindTransit, Path: p}
	src, err := read(ctx, im.src, p)
	if err != nil || src == nil {
		it.Status, it.Reason = Unreadable, "gone from the source while importing"
		if err != nil {
			it.Reason = reason("read", err)
		}
		return it
	}
	exportable, _ := src["exportable"].(bool)
	backup, _ := src["allow_plaintext_backup"].(bool)
	if !exportable || !backup {
		it.Status = NotMovable
		it.Reason = fmt.Sprintf("the source does not let this key leave it (exportable=%v, allow_plaintext_backup=%v): create a new key and re-encrypt (rewrap cannot cross servers)", exportable, backup)
		return it
	}
	have, err := read(ctx, im.dst, p)
	if err != nil && !(im.opt.DryRun && status(err) == http.StatusNotFound) {
		it.Status, it.Reason = Failed, reason("read from Ledger", err)
		return it
	}
	compare := []string{"type", "latest_version", "min_decryption_version", "min_encryption_version", "keys", "exportable", "allow_plaintext_backup", "deletion_allowed"}
	if have != nil {
		same := true
		for _, k := range compare {
			if !equalJSON(src[k], have[k]) {
				same = false
			}
		}
		switch {
		case same:
			it.Status = Unchanged
			return it
		case !im.opt.Overwrite:
			it.Status, it.Reason = Conflict, "Ledger has another key of this name (-overwrite to restore the source's over it)"
			return it
		}
	}
	if im.opt.DryRun {
		it.Status = WouldImport
		return it
	}
	b, err := read(ctx, im.src, m.Path+"backup/"+name)
	if err != nil || b == nil {
		it.Status, it.Reason = Unreadable, "backup: the source gave none"
		if err != nil {
			it.Reason = reason("backup", err)
		}
		return it
	}
	body := map[string]any{"backup": b["backup"], "name": name}
	if have != nil {
		body["force"] = true
	}
	if _, err := write(ctx, im.dst, m.Path+"restore", body); err != nil {
		it.Status, it.Reason = Failed, reason("restore", err)
		return it
	}
	it.Status = writtenStatus(have != nil)
	return it
}

// --- approle, userpass ---

// deprecatedTokenFields are the old names Vault still answers next to token_*; writing both
// is refused, so only the token_* ones are copied.
var deprecatedTokenFields = []string{"policies", "period", "bound_cidr_list", "num_uses", "ttl", "max_ttl", "bound_cidrs"}

func (im *importer) importAppRoles(ctx context.Context, m *mountInfo, spawn func(func())) {
	for _, name := range im.listed(ctx, KindAppRole, m.Path+"role") {
		p := m.Path + "role/" + name
		if !im.wanted(p) {
			continue
		}
		spawn(func() {
			im.add(im.copyObject(ctx, copySpec{kind: KindAppRole, path: p, srcPath: p, dstPath: p,
				body: func(s map[string]any) map[string]any { return without(s, deprecatedTokenFields...) },
				after: func(ctx context.Context) (Status, string) {
					rid, err := read(ctx, im.src, p+"/role-id")
					if err != nil || rid == nil {
						return Unreadable, "role_id: " + reasonOrGone(err)
					}
					have, _ := read(ctx, im.dst, p+"/role-id")
					if have == nil || !equalJSON(have["role_id"], rid["role_id"]) {
						if _, err := write(ctx, im.dst, p+"/role-id", map[string]any{"role_id": rid["role_id"]}); err != nil {
							return Failed, reason("set role_id", err)
						}
					}
					ids, err := list(ctx, im.src, p+"/secret-id")
					if err != nil {
						return Reissue, reason("list secret_id accessors", err) + "; secret_ids cannot be read: issue new ones"
					}
					if len(ids) > 0 {
						return Reissue, fmt.Sprintf("role_id kept; %d secret_id(s) cannot be read from the source: issue new ones (%swrite -f %s/secret-id)", len(ids), "ledger ", p)
					}
					return "", ""
				}}))
		})
	}
}

func reasonOrGone(err error) string {
	if err != nil {
		return reason("read", err)
	}
	return "gone from the source"
}

func (im *importer) importUsers(ctx context.Context, m *mountInfo, spawn func(func())) {
	for _, name := range im.listed(ctx, KindUser, m.Path+"users") {
		p := m.Path + "users/" + name
		if !im.wanted(p) {
			continue
		}
		spawn(func() {
			it := im.copyObject(ctx, copySpec{kind: KindUser, path: p, srcPath: p, dstPath: p,
				body:   func(s map[string]any) map[string]any { return without(s, deprecatedTokenFields...) },
				create: func(b map[string]any) { b["password"] = randomPassword() }})
			switch it.Status {
			case Imported, Unchanged, Updated:
				it.Status = Reissue
				it.Reason = fmt.Sprintf("the password cannot be read from the source: the user has a random one nobody knows; set it with `ledger write %s/password password=…`", p)
			}
			im.add(it)
		})
	}
}

// --- database ---

func (im *importer) importDatabase(ctx context.Context, m *mountInfo, spawn func(func())) {
	for _, name := range im.listed(ctx, KindDBConn, m.Path+"config") {
		p := m.Path + "config/" + name
		if !im.wanted(p) {
			continue
		}
		spawn(func() {
			var pw string
			var have bool
			if im.opt.DatabasePassword != nil {
				var err error
				if pw, have, err = im.opt.DatabasePassword(ctx, m.Path, name); err != nil {
					im.add(Item{Kind: KindDBConn, Path: p, Status: Failed, Reason: reason("password", err)})
					return
				}
			}
			it := im.copyObject(ctx, copySpec{kind: KindDBConn, path: p, srcPath: p, dstPath: p,
				// verify_connection says how to write, not what is stored: set by create only.
				body: func(s map[string]any) map[string]any { return without(flattenConnection(s), "verify_connection") },
				create: func(b map[string]any) {
					if have {
						b["password"] = pw // verified on write, as the source verifies by default
					} else {
						b["verify_connection"] = false
					}
				},
				// A connection reads back with its URL and user under connection_details.
				shape: flattenConnection})
			if !have && (it.Status == Imported || it.Status == Updated || it.Status == Unchanged) {
				it.Status = Reissue
				it.Reason = fmt.Sprintf("the connection password cannot be read from the source: imported without it (not verified); give it with -database-password=%s%s=… or `ledger write %s password=…`", m.Path, name, p)
			}
			im.add(it)
		})
	}
	for _, sub := range []string{"roles", "static-roles"} {
		for _, name := range im.listed(ctx, KindDBRole, m.Path+sub) {
			p := m.Path + sub + "/" + name
			if !im.wanted(p) {
				continue
			}
			spawn(func() {
				im.add(im.copyObject(ctx, copySpec{kind: KindDBRole, path: p, srcPath: p, dstPath: p,
					body: func(s map[string]any) map[string]any {
						return without(s, "last_vault_rotation", "last_password", "next_vault_rotation")
					}}))
			})
		}
	}
}

// flattenConnection is a database connection as read, its connection_details (but a password)
// moved up to where a write takes them.
func flattenConnection(s map[string]any) map[string]any {
	b := without(s, "connection_details", "password")
	if d, ok := s["connection_details"].(map[string]any); ok {
		for k, v := range d {
			if k != "password" {
				b[k] = v
			}
		}
	}
	return b
}

// --- kubernetes, jwt, oidc ---

// secretConfigFields are configuration fields a source never returns.
var secretConfigFields = map[string]string{
	"jwt":        "oidc_client_secret",
	"oidc":       "oidc_client_secret",
	"kubernetes": "token_reviewer_jwt",
}

func (im *importer) importAuthConfigAndRoles(ctx context.Context, m *mountInfo, spawn func(func())) {
	p := m.Path + "config"
	if im.wanted(p) {
		im.add(im.importAuthConfig(ctx, m, p))
	}
	for _, name := range im.listed(ctx, KindAuthRole, m.Path+"role") {
		rp := m.Path + "role/" + name
		if !im.wanted(rp) {
			continue
		}
		spawn(func() {
			im.add(im.copyObject(ctx, copySpec{kind: KindAuthRole, path: rp, srcPath: rp, dstPath: rp,
				body: func(s map[string]any) map[string]any { return without(s, deprecatedTokenFields...) }}))
		})
	}
}

// importAuthConfig copies an auth method's configuration. Its secret field (an OIDC client
// secret, a Kubernetes reviewer JWT) is never returned: it comes from AuthSecret when given;
// else the configuration is imported without it and listed for re-issue. An OIDC client ID
// is taken only together with its secret (Vault and Ledger refuse one without the other), so
// without the secret it stays behind too.
func (im *importer) importAuthConfig(ctx context.Context, m *mountInfo, p string) Item {
	field := secretConfigFields[m.Type]
	var secret string
	var given bool
	if im.opt.AuthSecret != nil && field != "" {
		var err error
		if secret, given, err = im.opt.AuthSecret(ctx, m.Path, field); err != nil {
			return Item{Kind: KindAuthConfig, Path: p, Status: Failed, Reason: reason(field, err)}
		}
	}
	var clientID string
	var srcSecretSet any // the source's <field>_set, where it reports one
	spec := copySpec{kind: KindAuthConfig, path: p, srcPath: p, dstPath: p,
		// The secret field and whether it is set (token_reviewer_jwt_set): neither is compared.
		body: func(s map[string]any) map[string]any {
			srcSecretSet = s[field+"_set"]
			b := without(s, field, field+"_set")
			if field == "oidc_client_secret" {
				clientID, _ = s["oidc_client_id"].(string)
				if clientID != "" && !given {
					delete(b, "oidc_client_id")
				}
			}
			return b
		}}
	if given {
		spec.writeOnly = map[string]any{field: secret}
	}
	it := im.copyObject(ctx, spec)
	if given || im.opt.DryRun {
		return it
	}
	switch it.Status {
	case Imported, Updated, Unchanged:
	default:
		return it
	}
	// setHere: an unchanged configuration may have had its secret set by hand since (one just
	// written here has not).
	setHere := func(key string, want any) bool {
		if it.Status != Unchanged {
			return false
		}
		have, err := read(ctx, im.dst, p)
		return err == nil && have != nil && have[key] == want
	}
	flag := fmt.Sprintf("-auth-secret=%s=…", trimSlash(m.Path))
	switch {
	case field == "oidc_client_secret" && clientID != "":
		if setHere("oidc_client_id", clientID) { // the client ID is here, so its secret is too
			return it
		}
		it.Status = Reissue
		it.Reason = fmt.Sprintf("oidc_client_secret is never returned by the source, and the client ID is taken only with it: imported without both; give %s, or write the configuration again with oidc_client_id and oidc_client_secret", flag)
	case field == "token_reviewer_jwt":
		if srcSecretSet == false {
			return it // the source has none either: it reviews with the client's own token
		}
		if setHere("token_reviewer_jwt_set", true) {
			return it
		}
		it.Status = Reissue
		it.Reason = fmt.Sprintf("token_reviewer_jwt is never returned by the source: give %s, or `ledger write %s token_reviewer_jwt=…`", flag, p)
	}
	return it
}

// trimSlash drops one trailing slash.
func trimSlash(s string) string { return strings.TrimSuffix(s, "/") }
