package commands

import (
	"context"
	"encoding/json"

	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	enginekv "github.com/ledger-secrets/ledger/engines/kv"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/policy"
)

// sysBackend serves the authenticated sys/ paths. The unauthenticated ones (init, unseal,
// seal-status, health) are served by httpapi straight from Core, since they work sealed.
type sysBackend struct {
	c     *Core
	st    *unsealed
	after func() // lifecycle action to run once the request released the state (seal)
}

var _ engines.PathsSpecial = (*sysBackend)(nil)

// Unauthenticated implements engines.PathsSpecial.
func (s *sysBackend) Unauthenticated() []string {
	// The key holders' shares authorise these, as in Vault (rekey.go, generateroot.go).
	return []string{"rekey/init", "rekey/update", "rekey/verify", "rekey-recovery-key/init", "rekey-recovery-key/update",
		"rekey-recovery-key/verify", "generate-root/attempt", "generate-root/update"}
}

// Sudo implements engines.PathsSpecial: Vault's root-protected sys paths.
func (s *sysBackend) Sudo() []string {
	return []string{"rotate", "seal", "step-down", "audit", "audit/*", "raw/*", "leases/revoke-force/*",
		"leases/revoke-prefix/*", "leases/lookup/*", "revoke-force/*", "revoke-prefix/*", "storage/raft/snapshot", "storage/raft/snapshot-force", "storage/raft/remove-peer",
		"mounts/auth/*", "config/auditing/*", "config/cors", "plugins/catalog/*", "pprof", "pprof/*",
		"remount", "rekey/backup", "rekey/recovery-key-backup"}
}

// HandleRequest implements engines.Backend.
func (s *sysBackend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	p := strings.TrimSuffix(req.Path, "/")
	if strings.HasPrefix(p, "ledger/") {
		// Fingerprints, incidents, history and replay read the views loaded after unseal.
		if err := s.st.runner.WaitReady(ctx); err != nil {
			return nil, err
		}
	}
	switch {
	case p == "mounts" && req.Op == engines.OpRead:
		return s.listMounts(false), nil
	case p == "auth" && req.Op == engines.OpRead:
		return s.listMounts(true), nil
	case strings.HasPrefix(p, "mounts/"):
		return s.mountPath(req, strings.TrimPrefix(p, "mounts/"), false)
	case strings.HasPrefix(p, "auth/"):
		return s.mountPath(req, strings.TrimPrefix(p, "auth/"), true)
	case p == "policies/acl" || p == "policy":
		if req.Op != engines.OpList && req.Op != engines.OpRead {
			return nil, engines.ErrUnsupported
		}
		names := s.st.policies.Names()
		if p == "policy" {
			return &engines.Response{Data: map[string]any{"policies": names, "keys": names}}, nil
		}
		return &engines.Response{Data: map[string]any{"keys": names}}, nil
	case strings.HasPrefix(p, "policies/acl/"):
		return s.policyPath(req, strings.TrimPrefix(p, "policies/acl/"), false)
	case strings.HasPrefix(p, "policy/"):
		return s.policyPath(req, strings.TrimPrefix(p, "policy/"), true)
	case p == "capabilities" || p == "capabilities-self" || p == "capabilities-accessor":
		return s.capabilities(req, p)
	case p == "internal/specs/openapi":
		return s.openAPI(req)
	case p == "internal/ui/mounts":
		return s.uiMounts(req)
	case strings.HasPrefix(p, "internal/ui/mounts/"):
		return s.uiMount(req, strings.TrimPrefix(p, "internal/ui/mounts/"))
	case p == "key-status" && req.Op == engines.OpRead:
		ks, err := s.c.KeyStatus()
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"term": ks.Term, "install_time": ks.InstallTime.Format(time.RFC3339Nano), "encryptions": ks.Encryptions}}, nil
	case strings.HasPrefix(p, "leases/") || p == "renew" || p == "revoke" || strings.HasPrefix(p, "renew/") ||
		strings.HasPrefix(p, "revoke/") || strings.HasPrefix(p, "revoke-prefix/") || strings.HasPrefix(p, "revoke-force/") ||
		p == "revoke-prefix" || p == "revoke-force": // empty prefixes: refused there
		return s.leasePaths(ctx, req, p)
	case p == "audit" || strings.HasPrefix(p, "audit/") || strings.HasPrefix(p, "audit-hash/"):
		return s.auditPaths(ctx, req, p)
	case strings.HasPrefix(p, "storage/raft/snapshot"):
		return s.snapshotPaths(ctx, req, p)
	case p == "storage/raft/configuration" && req.Op == engines.OpRead:
		return s.raftConfigurationPath(ctx)
	case p == "storage/raft/autopilot/state" && req.Op == engines.OpRead:
		return s.raftAutopilotStatePath(ctx)
	case p == "storage/raft/remove-peer":
		return s.raftRemovePeerPath(ctx, req)
	case p == "storage/raft/autopilot/configuration":
		return s.raftAutopilotConfigPath(req)
	case strings.HasPrefix(p, "ledger/audit/") || p == "ledger/audit":
		return s.auditLedgerPaths(ctx, req, strings.TrimPrefix(strings.TrimPrefix(p, "ledger/audit"), "/"))
	case strings.HasPrefix(p, "ledger/replay/") || p == "ledger/replay":
		return s.replayPaths(ctx, req, strings.TrimPrefix(strings.TrimPrefix(p, "ledger/replay"), "/"))
	case strings.HasPrefix(p, "ledger/fingerprints/"):
		return s.fingerprintPaths(req, strings.TrimPrefix(p, "ledger/fingerprints/"))
	case p == "ledger/incident":
		return s.incident(ctx, req)
	case strings.HasPrefix(p, "ledger/"):
		return s.ledgerPaths(ctx, req, strings.TrimPrefix(p, "ledger/"))
	case p == "remount" || strings.HasPrefix(p, "remount/"):
		return s.remountPaths(req, p)
	case p == "wrapping/wrap":
		return wrapData(req)
	case p == "rotate" && isWrite(req.Op):
		// Rotation appends a seal event and swaps the keyring: it runs after this request let go
		// of the unsealed state.
		s.after = func() {
			if _, err := s.c.Rotate(context.Background()); err != nil {
				s.c.logger.Error("rotate", "err", err)
			}
		}
		return nil, nil
	case p == "rekey" || strings.HasPrefix(p, "rekey/") || p == "rekey-recovery-key" || strings.HasPrefix(p, "rekey-recovery-key/"):
		return s.rekeyPaths(ctx, req, p)
	case strings.HasPrefix(p, "generate-root/"):
		return s.generateRootPaths(ctx, req, p)
	case p == "metrics":
		return s.metricsPath(req)
	case p == "pprof" || strings.HasPrefix(p, "pprof/"):
		return s.pprofPath(ctx, req, strings.TrimPrefix(strings.TrimPrefix(p, "pprof"), "/"))
	case p == "seal" && isWrite(req.Op):
		s.after = s.c.Seal
		return nil, nil
	case p == "step-down" && isWrite(req.Op):
		s.after = func() {
			if err := s.c.StepDown(context.Background()); err != nil {
				s.c.logger.Error("step-down", "err", err)
			}
		}
		return nil, nil
	case p == "ha-status" && req.Op == engines.OpRead:
		return s.haStatusPath(ctx)
	}
	if resp, ok, err := s.miscPaths(ctx, req, p); ok {
		return resp, err
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/"+p)
}

func isWrite(op engines.Operation) bool { return op == engines.OpCreate || op == engines.OpUpdate }

func mountJSON(e mount.Entry) map[string]any {
	opts := map[string]any{}
	for k, v := range e.Options {
		opts[k] = v
	}
	var options any = opts
	if len(opts) == 0 {
		options = nil
	}
	cfg := map[string]any{
		"default_lease_ttl": int64(e.DefaultLeaseTTL / time.Second),
		"max_lease_ttl":     int64(e.MaxLeaseTTL / time.Second),
		"force_no_cache":    false,
	}
	addTunables(cfg, e)
	return map[string]any{
		"type": e.Type, "description": e.Description, "uuid": e.UUID, "accessor": e.Accessor,
		"config":  cfg,
		"options": options, "local": e.Local, "seal_wrap": e.SealWrap, "external_entropy_access": false,
		"plugin_version": "", "running_plugin_version": "", "running_sha256": "",
		"deprecation_status": "supported",
	}
}

func (s *sysBackend) listMounts(auth bool) *engines.Response {
	data := map[string]any{}
	for _, e := range s.st.mounts.List() {
		if e.IsAuth() != auth {
			continue
		}
		data[strings.TrimPrefix(e.Path, "auth/")] = mountJSON(e)
	}
	if !auth {
		data[cubbyholeMount.Path] = mountJSON(cubbyholeMount)
		data[identityMount.Path] = mountJSON(identityMount)
		data["sys/"] = mountJSON(mount.Entry{Path: "sys/", Type: "system", Description: "system endpoints used for control, policy and debugging", UUID: "system", Accessor: "system"})
	}
	return &engines.Response{Data: data}
}

var mountPathRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*/?$`)

// Secret engine and auth method types this build can mount.
var (
	secretTypes = map[string]bool{"kv": true, "database": true, "transit": true, "pki": true, "ssh": true}
	authTypes   = map[string]bool{"token": true, "approle": true, "userpass": true, "kubernetes": true, "jwt": true, "oidc": true}
)

func (s *sysBackend) mountPath(req *engines.Request, rest string, auth bool) (*engines.Response, error) {
	tune := false
	if r, ok := strings.CutSuffix(rest, "/tune"); ok {
		rest, tune = r, true
	}
	if rest == "" || !mountPathRE.MatchString(rest) {
		return nil, engines.BadRequest("invalid mount path %q: use letters, digits, '-', '_', '.' and '/' between segments", rest)
	}
	path := strings.TrimSuffix(rest, "/") + "/"
	if auth {
		path = "auth/" + path
	}
	existing, exists := s.st.mounts.Get(path)
	if tune {
		if !exists {
			return nil, engines.BadRequest("cannot tune %q: no mount at this path", path)
		}
		switch req.Op {
		case engines.OpRead:
			data := map[string]any{
				"default_lease_ttl": int64(s.c.engineMount(existing).DefaultLeaseTTL / time.Second),
				"max_lease_ttl":     int64(s.c.engineMount(existing).MaxLeaseTTL / time.Second),
				"force_no_cache":    false, "description": existing.Description, "options": existing.Options,
			}
			addTunables(data, existing)
			return &engines.Response{Data: data}, nil
		case engines.OpCreate, engines.OpUpdate:
			return s.tune(req, existing)
		}
		return nil, engines.ErrUnsupported
	}
	switch req.Op {
	case engines.OpRead:
		if !exists {
			return nil, engines.Errorf(engines.ErrNotFound, "no mount at %q", path)
		}
		return &engines.Response{Data: mountJSON(existing)}, nil
	case engines.OpCreate, engines.OpUpdate:
		if err := ReservedMountPath("mount at", path); err != nil {
			return nil, err
		}
		return s.enable(req, path, auth, exists)
	case engines.OpDelete:
		if err := ReservedMountPath("disable", path); err != nil {
			return nil, err
		}
		if !exists {
			return nil, nil // Vault: disabling an absent mount succeeds
		}
		if path == "auth/token/" {
			return nil, engines.BadRequest("the token auth method cannot be disabled")
		}
		// Vault revokes a mount's leases before it goes; a credential never outlives its engine.
		if err := s.revokePrefix(context.Background(), path, "mount disabled"); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(mount.DisabledPayload{Path: path, UUID: existing.UUID})
		s.st.dropBackend(existing.UUID)
		if existing.Type == "kv" {
			// The views drop the mount's data when the event applies; its data keys go next, so
			// the ciphertext left in the log opens for no one. Reconcile catches a crash here.
			st, uuid := s.st, existing.UUID
			s.after = func() {
				if _, err := enginekv.ShredMount(context.Background(), st.datakeys, uuid); err != nil {
					s.c.logger.Error("shred data keys of disabled mount", "mount", path, "err", err)
				}
			}
		}
		return &engines.Response{Events: []ledger.Event{{Type: mount.Disabled, Subject: ledger.SubjectFor("mount", path), Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

func (s *sysBackend) enable(req *engines.Request, path string, auth, exists bool) (*engines.Response, error) {
	typ, err := engines.String(req.Data, "type", "")
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, engines.BadRequest("field \"type\" is required")
	}
	options, err := engines.StringMap(req.Data, "options")
	if err != nil {
		return nil, err
	}
	if options == nil {
		options = map[string]string{}
	}
	if typ == "kv-v2" || typ == "kv-v1" {
		options["version"] = strings.TrimPrefix(typ, "kv-v")
		typ = "kv"
	}
	if typ == "kv" && options["version"] == "" {
		options["version"] = "1"
	}
	if typ == "kv" && options["version"] != "1" && options["version"] != "2" {
		return nil, engines.BadRequest("options.version for kv must be \"1\" or \"2\"")
	}
	if auth && typ == "token" {
		return nil, engines.BadRequest("token credential backend cannot be instantiated")
	}
	if auth && !authTypes[typ] || !auth && !secretTypes[typ] {
		return nil, engines.BadRequest("plugin not found in the catalog: %s", typ)
	}
	if path == "sys/" || strings.HasPrefix(path, "sys/") || (!auth && strings.HasPrefix(path, "auth/")) {
		return nil, engines.BadRequest("cannot mount at %q: reserved path", path)
	}
	if exists {
		return nil, engines.BadRequest("path is already in use at %s", path)
	}
	for _, m := range s.st.mounts.List() {
		if strings.HasPrefix(m.Path, path) || strings.HasPrefix(path, m.Path) {
			return nil, engines.BadRequest("path is already in use at %s", m.Path)
		}
	}
	desc, err := engines.String(req.Data, "description", "")
	if err != nil {
		return nil, err
	}
	e := mount.Entry{Path: path, Type: typ, Description: desc, UUID: newUUID(), Options: options, CreatedAt: req.Now}
	prefix := typ
	if auth {
		prefix = "auth_" + typ
	}
	e.Accessor = prefix + "_" + newUUID()[:8]
	if cfg, ok := req.Data["config"].(map[string]any); ok {
		if e.DefaultLeaseTTL, err = engines.Duration(cfg, "default_lease_ttl", 0); err != nil {
			return nil, err
		}
		if e.MaxLeaseTTL, err = engines.Duration(cfg, "max_lease_ttl", 0); err != nil {
			return nil, err
		}
		var t mount.TunedPayload
		if err := readTunables(cfg, &t); err != nil {
			return nil, err
		}
		e.ListingVisibility = deref(t.ListingVisibility)
		e.AuditNonHMACRequestKeys, e.AuditNonHMACResponseKeys = derefs(t.AuditNonHMACRequestKeys), derefs(t.AuditNonHMACResponseKeys)
	} else if req.Data["config"] != nil {
		return nil, engines.BadRequest("field \"config\": expected an object")
	}
	if e.MaxLeaseTTL > 0 && e.DefaultLeaseTTL > e.MaxLeaseTTL {
		return nil, engines.BadRequest("default_lease_ttl (%s) cannot exceed max_lease_ttl (%s)", e.DefaultLeaseTTL, e.MaxLeaseTTL)
	}
	b, _ := json.Marshal(e)
	return &engines.Response{Events: []ledger.Event{{Type: mount.Enabled, Subject: ledger.SubjectFor("mount", path), Payload: b}}}, nil
}

func (s *sysBackend) tune(req *engines.Request, e mount.Entry) (*engines.Response, error) {
	p := mount.TunedPayload{Path: e.Path}
	// The official client sends "" for every TTL it does not set; "" means "keep", as in Vault.
	for _, k := range []string{"default_lease_ttl", "max_lease_ttl"} {
		if v, ok := req.Data[k].(string); ok && v == "" {
			delete(req.Data, k)
		}
	}
	if engines.Has(req.Data, "default_lease_ttl") {
		d, err := engines.Duration(req.Data, "default_lease_ttl", 0)
		if err != nil {
			return nil, err
		}
		p.DefaultLeaseTTL = &d
	}
	if engines.Has(req.Data, "max_lease_ttl") {
		d, err := engines.Duration(req.Data, "max_lease_ttl", 0)
		if err != nil {
			return nil, err
		}
		p.MaxLeaseTTL = &d
	}
	if engines.Has(req.Data, "description") {
		d, err := engines.String(req.Data, "description", "")
		if err != nil {
			return nil, err
		}
		p.Description = &d
	}
	if err := readTunables(req.Data, &p); err != nil {
		return nil, err
	}
	opts, err := engines.StringMap(req.Data, "options")
	if err != nil {
		return nil, err
	}
	if v, ok := opts["version"]; ok && e.Type == "kv" && v != e.Options["version"] {
		if v != "2" || e.Options["version"] != "1" {
			return nil, engines.BadRequest("options.version can only be upgraded from 1 to 2")
		}
		return nil, engines.BadRequest("upgrading a kv mount from version 1 to 2 is not supported yet; mount a new kv-v2 engine and copy the secrets")
	}
	p.Options = opts
	def, mx := e.DefaultLeaseTTL, e.MaxLeaseTTL
	if p.DefaultLeaseTTL != nil {
		def = *p.DefaultLeaseTTL
	}
	if p.MaxLeaseTTL != nil {
		mx = *p.MaxLeaseTTL
	}
	if mx > 0 && def > mx {
		return nil, engines.BadRequest("default_lease_ttl (%s) cannot exceed max_lease_ttl (%s)", def, mx)
	}
	b, _ := json.Marshal(p)
	return &engines.Response{Events: []ledger.Event{{Type: mount.Tuned, Subject: ledger.SubjectFor("mount", e.Path), Payload: b}}}, nil
}

var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-@]+$`)

func (s *sysBackend) policyPath(req *engines.Request, name string, legacy bool) (*engines.Response, error) {
	name = strings.ToLower(name)
	if !policyNameRE.MatchString(name) || len(name) > 128 {
		return nil, engines.BadRequest("invalid policy name %q: use letters, digits, '-', '_', '.' and '@'", name)
	}
	switch req.Op {
	case engines.OpRead:
		if name == "root" {
			return nil, engines.Errorf(engines.ErrNotFound, "policy %q is built in and has no text", name)
		}
		e, ok := s.st.policies.Get(name)
		if !ok {
			return nil, engines.Errorf(engines.ErrNotFound, "policy %q not found", name)
		}
		if legacy {
			return &engines.Response{Data: map[string]any{"name": name, "rules": e.Text}}, nil
		}
		return &engines.Response{Data: map[string]any{"name": name, "policy": e.Text}}, nil
	case engines.OpCreate, engines.OpUpdate:
		if name == "root" {
			return nil, engines.BadRequest("cannot update the root policy")
		}
		text, err := engines.String(req.Data, "policy", "")
		if err != nil {
			return nil, err
		}
		if text == "" {
			if text, err = engines.String(req.Data, "rules", ""); err != nil {
				return nil, err
			}
		}
		if strings.TrimSpace(text) == "" {
			return nil, engines.BadRequest("field \"policy\" is required: the policy document in HCL or JSON")
		}
		if _, err := acl.Parse(name, text); err != nil {
			return nil, engines.BadRequest("failed to parse policy: %s", err.Error())
		}
		b, _ := json.Marshal(policy.WrittenPayload{Name: name, Text: text})
		return &engines.Response{Events: []ledger.Event{{Type: policy.Written, Subject: ledger.SubjectFor("policy", name), Payload: b}}}, nil
	case engines.OpDelete:
		if name == "root" || name == "default" {
			return nil, engines.BadRequest("cannot delete the %s policy", name)
		}
		if _, ok := s.st.policies.Get(name); !ok {
			return nil, nil
		}
		b, _ := json.Marshal(policy.DeletedPayload{Name: name})
		return &engines.Response{Events: []ledger.Event{{Type: policy.Deleted, Subject: ledger.SubjectFor("policy", name), Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

func (s *sysBackend) capabilities(req *engines.Request, which string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	paths, err := engines.Strings(req.Data, "paths")
	if err != nil {
		return nil, err
	}
	if p, err := engines.String(req.Data, "path", ""); err != nil {
		return nil, err
	} else if p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, engines.BadRequest("field \"paths\" is required")
	}
	var (
		policies []string
		entity   string
	)
	switch which {
	case "capabilities-self":
		policies, entity = req.Caller.Policies, req.Caller.EntityID
	case "capabilities":
		tok, err := engines.String(req.Data, "token", "")
		if err != nil {
			return nil, err
		}
		e, err := s.st.authenticate(tok, "", req.Now)
		if err != nil {
			return nil, engines.BadRequest("invalid token")
		}
		policies, entity = e.Policies, e.EntityID
	case "capabilities-accessor":
		acc, err := engines.String(req.Data, "accessor", "")
		if err != nil {
			return nil, err
		}
		e, ok := s.st.tokens.ByAccessor(acc)
		if !ok || (!e.ExpireTime.IsZero() && !req.Now.Before(e.ExpireTime)) {
			return nil, engines.BadRequest("invalid accessor")
		}
		policies, entity = e.Policies, e.EntityID
	}
	a := s.c.aclForIdentity(s.st, policies, entity)
	data := map[string]any{}
	var all []string
	for _, p := range paths {
		caps := a.Capabilities(strings.TrimPrefix(p, "/"))
		data[p] = caps
		all = append(all, caps...)
	}
	if len(paths) == 1 {
		data["capabilities"] = data[paths[0]]
	} else {
		sort.Strings(all)
		data["capabilities"] = compactStrings(all)
	}
	return &engines.Response{Data: data}, nil
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// uiMounts lists the mounts the caller can see, as the UI and CLIs ask.
func (s *sysBackend) uiMounts(req *engines.Request) (*engines.Response, error) {
	secret, auth := map[string]any{}, map[string]any{}
	a := s.c.aclForCaller(s.st, req.Caller)
	for _, e := range s.st.mounts.List() {
		if !a.HasAccessUnder(e.Path) {
			continue // as Vault: only the mounts the token can touch something under
		}
		if e.IsAuth() {
			auth[strings.TrimPrefix(e.Path, "auth/")] = mountJSON(e)
		} else {
			secret[e.Path] = mountJSON(e)
		}
	}
	return &engines.Response{Data: map[string]any{"secret": secret, "auth": auth}}, nil
}

// uiMount answers which mount holds path; the vault and ledger CLIs use it to find KV mounts
// and their version, and read a 404 as "KV v1 or nothing".
func (s *sysBackend) uiMount(req *engines.Request, path string) (*engines.Response, error) {
	m, ok := s.st.mounts.Match(path)
	// As Vault: a token that can touch nothing under the mount (or there is no mount) learns
	// nothing, not even whether the mount exists.
	if !ok || !s.c.aclForCaller(s.st, req.Caller).HasAccessUnder(m.Path) {
		return nil, engines.Errorf(engines.ErrPermissionDenied,
			"preflight capability check returned 403, please ensure client's policies grant access to path %q", strings.TrimSuffix(path, "/")+"/")
	}
	d := mountJSON(m)
	d["path"] = m.Path
	opts := map[string]any{}
	for k, v := range m.Options {
		opts[k] = v
	}
	d["options"] = opts
	return &engines.Response{Data: d}, nil
}

// addTunables adds the tunables that are set to a mount's config (or tune) answer, as Vault
// does: an unset one is absent.
func addTunables(cfg map[string]any, e mount.Entry) {
	if e.ListingVisibility != "" {
		cfg["listing_visibility"] = e.ListingVisibility
	}
	if len(e.AuditNonHMACRequestKeys) > 0 {
		cfg["audit_non_hmac_request_keys"] = e.AuditNonHMACRequestKeys
	}
	if len(e.AuditNonHMACResponseKeys) > 0 {
		cfg["audit_non_hmac_response_keys"] = e.AuditNonHMACResponseKeys
	}
}

// readTunables reads listing_visibility and audit_non_hmac_{request,response}_keys from a
// mount's config (enable) or a tune request into p; absent fields stay nil (unchanged).
func readTunables(data map[string]any, p *mount.TunedPayload) error {
	if engines.Has(data, "listing_visibility") {
		v, err := engines.String(data, "listing_visibility", "")
		if err != nil {
			return err
		}
		switch v {
		case "", "unauth", "hidden":
		default:
			return engines.BadRequest("invalid listing_visibility %q: use \"unauth\", \"hidden\" or \"\"", v)
		}
		p.ListingVisibility = &v
	}
	for _, f := range []struct {
		name string
		dst  **[]string
	}{{"audit_non_hmac_request_keys", &p.AuditNonHMACRequestKeys}, {"audit_non_hmac_response_keys", &p.AuditNonHMACResponseKeys}} {
		if !engines.Has(data, f.name) {
			continue
		}
		keys, err := engines.Strings(data, f.name)
		if err != nil {
			return err
		}
		keys = slices.DeleteFunc(keys, func(k string) bool { return strings.TrimSpace(k) == "" })
		*f.dst = &keys
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefs(s *[]string) []string {
	if s == nil || len(*s) == 0 {
		return nil
	}
	return *s
}
