package importer

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Item kinds, in report order.
const (
	KindMount          = "mount"
	KindPolicy         = "acl policy"
	KindPasswordPolicy = "password policy"
	KindEntity         = "identity entity"
	KindEntityAlias    = "identity alias"
	KindGroup          = "identity group"
	KindGroupAlias     = "identity group alias"
	KindKV1            = "kv v1"
	KindKV2            = "kv v2"
	KindKVTree         = "kv tree"
	KindTransit        = "transit key"
	KindAppRole        = "approle role"
	KindUser           = "userpass user"
	KindDBConn         = "database connection"
	KindDBRole         = "database role"
	KindAuthConfig     = "auth config"
	KindAuthRole       = "auth role"
	KindPKI            = "pki"
)

var kinds = []string{KindMount, KindPolicy, KindPasswordPolicy, KindEntity, KindEntityAlias, KindGroup, KindGroupAlias,
	KindKVTree, KindKV1, KindKV2, KindTransit, KindAppRole, KindUser, KindDBConn, KindDBRole, KindAuthConfig, KindAuthRole, KindPKI}

func kindOrder(k string) int {
	if i := slices.Index(kinds, k); i >= 0 {
		return i
	}
	return len(kinds)
}

// mountInfo is one source mount, secret engine or auth method.
type mountInfo struct {
	Path string // as in the report: "secret/", "auth/approle/"
	Type string // Ledger's type (generic becomes kv)
	Auth bool
	KV2  bool
	// Skip: the mount itself could not be created here, so its contents are not imported.
	Skip bool
}

// Types Ledger serves; builtin are mounts every server has, never imported.
var (
	secretTypes  = map[string]bool{"kv": true, "transit": true, "pki": true, "ssh": true, "database": true}
	authTypes    = map[string]bool{"approle": true, "userpass": true, "jwt": true, "oidc": true, "kubernetes": true}
	builtinTypes = map[string]bool{"system": true, "identity": true, "cubbyhole": true, "token": true, "ns_system": true, "ns_identity": true, "ns_cubbyhole": true, "ns_token": true}
)

// importMounts creates the source's mounts in Ledger with their tuning. Unsupported types stop
// the run unless SkipUnsupported; a mount that exists here with another type (or another KV
// version) is a conflict and its contents are left alone.
func (im *importer) importMounts(ctx context.Context) ([]*mountInfo, error) {
	secrets, err := im.src.Sys().ListMountsWithContext(ctx)
	if err != nil {
		if status(err) == http.StatusForbidden {
			im.add(Item{Kind: KindMount, Path: "sys/mounts", Status: Unreadable, Reason: "the token may not list sys/mounts: no secret engine is imported"})
		} else {
			return nil, fmt.Errorf("list the source's secret engines (sys/mounts): %w", err)
		}
	}
	auths, err := im.src.Sys().ListAuthWithContext(ctx)
	if err != nil {
		if status(err) == http.StatusForbidden {
			im.add(Item{Kind: KindMount, Path: "sys/auth", Status: Unreadable, Reason: "the token may not list sys/auth: no auth method is imported"})
		} else {
			return nil, fmt.Errorf("list the source's auth methods (sys/auth): %w", err)
		}
	}
	type src struct {
		path string
		out  *api.MountOutput
		auth bool
	}
	var all []src
	for p, m := range secrets {
		all = append(all, src{path: p, out: m})
	}
	for p, m := range auths {
		im.srcAccessors[m.Accessor] = "auth/" + p
		all = append(all, src{path: "auth/" + p, out: &api.MountOutput{Type: m.Type, Description: m.Description, Accessor: m.Accessor,
			Options: m.Options, Local: m.Local, SealWrap: m.SealWrap, Config: api.MountConfigOutput{
				DefaultLeaseTTL: m.Config.DefaultLeaseTTL, MaxLeaseTTL: m.Config.MaxLeaseTTL, ListingVisibility: m.Config.ListingVisibility,
				AuditNonHMACRequestKeys: m.Config.AuditNonHMACRequestKeys, AuditNonHMACResponseKeys: m.Config.AuditNonHMACResponseKeys}}, auth: true})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].path < all[j].path })

	// Refuse unsupported types up front, before anything is written.
	var unsupported []string
	for _, s := range all {
		typ := ledgerType(s.out.Type)
		if builtinTypes[typ] || !im.mountWanted(s.path) {
			continue
		}
		if s.auth && !authTypes[typ] || !s.auth && !secretTypes[typ] {
			unsupported = append(unsupported, fmt.Sprintf("%s (%s)", s.path, s.out.Type))
		}
	}
	if len(unsupported) > 0 && !im.opt.SkipUnsupported {
		return nil, fmt.Errorf("%w: %s; leave them out with -exclude, or pass -skip-unsupported to import the rest", ErrUnsupportedMounts, strings.Join(unsupported, ", "))
	}

	dstSecrets, err := im.dst.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Ledger's secret engines: %w", err)
	}
	dstAuths, err := im.dst.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Ledger's auth methods: %w", err)
	}
	existing := map[string]*api.MountOutput{}
	for p, m := range dstSecrets {
		existing[p] = m
	}
	for p, m := range dstAuths {
		existing["auth/"+p] = &api.MountOutput{Type: m.Type, Description: m.Description, Accessor: m.Accessor, Options: m.Options,
			Config: api.MountConfigOutput{DefaultLeaseTTL: m.Config.DefaultLeaseTTL, MaxLeaseTTL: m.Config.MaxLeaseTTL,
				ListingVisibility: m.Config.ListingVisibility, AuditNonHMACRequestKeys: m.Config.AuditNonHMACRequestKeys,
				AuditNonHMACResponseKeys: m.Config.AuditNonHMACResponseKeys}}
		im.dstAccessors["auth/"+p] = m.Accessor
	}

	var out []*mountInfo
	for _, s := range all {
		typ := ledgerType(s.out.Type)
		if builtinTypes[typ] || !im.mountWanted(s.path) {
			continue
		}
		mi := &mountInfo{Path: s.path, Type: typ, Auth: s.auth, KV2: typ == "kv" && s.out.Options["version"] == "2"}
		if s.auth && !authTypes[typ] || !s.auth && !secretTypes[typ] {
			im.add(Item{Kind: KindMount, Path: s.path, Status: Unsupported, Reason: fmt.Sprintf("type %q is not served by Ledger (-skip-unsupported)", s.out.Type)})
			continue
		}
		out = append(out, mi)
		im.importMount(ctx, mi, s.out, existing[s.path])
	}
	return out, nil
}

// ledgerType maps a source type to Ledger's: Vault's "generic" is KV.
func ledgerType(t string) string {
	if t == "generic" {
		return "kv"
	}
	return t
}

// mountConfig is the part of a mount compared and copied: description, TTLs, options and the
// tunables.
func mountConfig(m *api.MountOutput) map[string]any {
	opts := map[string]string{}
	if v, ok := m.Options["version"]; ok && ledgerType(m.Type) == "kv" {
		opts["version"] = v
	}
	if ledgerType(m.Type) == "kv" && opts["version"] == "" {
		opts["version"] = "1"
	}
	return map[string]any{
		"description":                  m.Description,
		"default_lease_ttl":            m.Config.DefaultLeaseTTL,
		"max_lease_ttl":                m.Config.MaxLeaseTTL,
		"listing_visibility":           m.Config.ListingVisibility,
		"audit_non_hmac_request_keys":  sortedCopy(m.Config.AuditNonHMACRequestKeys),
		"audit_non_hmac_response_keys": sortedCopy(m.Config.AuditNonHMACResponseKeys),
		"options":                      opts,
	}
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func (im *importer) importMount(ctx context.Context, mi *mountInfo, src, dst *api.MountOutput) {
	it := Item{Kind: KindMount, Path: mi.Path}
	want := mountConfig(src)
	apiPath := "sys/mounts/" + strings.TrimSuffix(mi.Path, "/")
	if mi.Auth {
		apiPath = "sys/auth/" + strings.TrimSuffix(strings.TrimPrefix(mi.Path, "auth/"), "/")
	}
	if dst != nil {
		have := mountConfig(dst)
		if ledgerType(dst.Type) != mi.Type || (mi.Type == "kv" && !equalJSON(have["options"], want["options"])) {
			mi.Skip = true
			it.Status, it.Reason = Conflict, fmt.Sprintf("Ledger has a %s mount here (options %v); the source's is %s (options %v): its contents are not imported", dst.Type, have["options"], src.Type, want["options"])
			im.add(it)
			return
		}
		if equalJSON(have, want) {
			it.Status = Unchanged
			im.add(it)
			return
		}
		if !im.opt.Overwrite {
			it.Status, it.Reason = Conflict, "the mount exists here with other tuning (-overwrite to tune it as the source); its contents are imported"
			im.add(it)
			return
		}
		if im.opt.DryRun {
			it.Status, it.Reason = WouldImport, "would tune as the source"
			im.add(it)
			return
		}
		if _, err := write(ctx, im.dst, apiPath+"/tune", tuneBody(src)); err != nil {
			it.Status, it.Reason = Failed, reason("tune", err)
		} else {
			it.Status, it.Reason = Updated, "tuned as the source"
		}
		im.add(it)
		return
	}
	if im.opt.DryRun {
		it.Status = WouldImport
		im.add(it)
		return
	}
	cfg := tuneBody(src)
	delete(cfg, "description")
	body := map[string]any{"type": mi.Type, "description": src.Description, "config": cfg, "local": src.Local, "seal_wrap": src.SealWrap}
	if mi.Type == "kv" {
		body["options"] = want["options"]
	}
	if _, err := write(ctx, im.dst, apiPath, body); err != nil {
		mi.Skip = true
		it.Status, it.Reason = Failed, reason("enable", err)
		im.add(it)
		return
	}
	if mi.Auth {
		if a, err := im.dst.Sys().GetAuthWithContext(ctx, strings.TrimPrefix(mi.Path, "auth/")); err == nil && a != nil {
			im.mu.Lock()
			im.dstAccessors[mi.Path] = a.Accessor
			im.mu.Unlock()
		}
	}
	it.Status = Imported
	im.add(it)
}

// tuneBody is a tune request (and an enable's config) that makes a mount's tuning the source's.
func tuneBody(m *api.MountOutput) map[string]any {
	return map[string]any{
		"description":                  m.Description,
		"default_lease_ttl":            fmt.Sprintf("%ds", m.Config.DefaultLeaseTTL),
		"max_lease_ttl":                fmt.Sprintf("%ds", m.Config.MaxLeaseTTL),
		"listing_visibility":           m.Config.ListingVisibility,
		"audit_non_hmac_request_keys":  append([]string{}, m.Config.AuditNonHMACRequestKeys...),
		"audit_non_hmac_response_keys": append([]string{}, m.Config.AuditNonHMACResponseKeys...),
	}
}

// importMountContents enumerates what lives in a mount into the worker pool.
func (im *importer) importMountContents(ctx context.Context, m *mountInfo, spawn func(func())) {
	if m.Skip {
		return
	}
	switch m.Type {
	case "kv":
		im.walkKV(ctx, m, "", spawn)
	case "transit":
		im.importTransit(ctx, m, spawn)
	case "approle":
		im.importAppRoles(ctx, m, spawn)
	case "userpass":
		im.importUsers(ctx, m, spawn)
	case "database":
		im.importDatabase(ctx, m, spawn)
	case "jwt", "oidc", "kubernetes":
		im.importAuthConfigAndRoles(ctx, m, spawn)
	case "pki":
		im.add(Item{Kind: KindPKI, Path: m.Path, Status: Reissue, Reason: "the mount is created; its CA keys cannot be read through the API: import the issuers (pki/issuers/import/bundle) or generate new ones by hand"})
	case "ssh":
		im.add(Item{Kind: KindMount, Path: m.Path + "config/ca", Status: Reissue, Reason: "the SSH CA private key cannot be read through the API: configure the CA (config/ca) and roles by hand"})
	}
}
