package ssh

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	sshview "github.com/ledger-secrets/ledger/projections/ssh"
)

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func roleData(r sshview.Role) map[string]any {
	m := func(x map[string]string) map[string]string {
		if x == nil {
			return map[string]string{}
		}
		return x
	}
	kl := map[string]any{}
	for k, v := range r.AllowedUserKeyLengths {
		kl[k] = v
	}
	d := map[string]any{
		"key_type": r.KeyType, "default_user": r.DefaultUser, "allowed_users": r.AllowedUsers,
		"port": r.Port, "cidr_list": r.CIDRList, "exclude_cidr_list": r.ExcludeCIDRList,
	}
	if r.KeyType == "ca" {
		d = map[string]any{
			"key_type": "ca", "allow_user_certificates": r.AllowUserCertificates,
			"allow_host_certificates": r.AllowHostCertificates, "allowed_users": r.AllowedUsers,
			"allowed_users_template": false, "default_user": r.DefaultUser, "default_user_template": false,
			"allowed_domains": r.AllowedDomains, "allowed_domains_template": false,
			"allow_bare_domains": r.AllowBareDomains, "allow_subdomains": r.AllowSubdomains,
			"allowed_extensions": r.AllowedExtensions, "default_extensions": m(r.DefaultExtensions),
			"default_extensions_template": false, "allowed_critical_options": r.AllowedCriticalOptions,
			"default_critical_options": m(r.DefaultCriticalOptions), "ttl": durString(r.TTL),
			"max_ttl": durString(r.MaxTTL), "allowed_user_key_lengths": kl, "algorithm_signer": r.AlgorithmSigner,
			"allow_user_key_ids": r.AllowUserKeyIDs, "key_id_format": r.KeyIDFormat,
			"not_before_duration": int64(r.NotBeforeDuration / time.Second),
		}
	}
	return d
}

func (b *Backend) roleOp(req *engines.Request, name string) (*engines.Response, error) {
	if !nameRE.MatchString(name) {
		return nil, engines.BadRequest("invalid role name %q", name)
	}
	cur, exists := b.view.Role(b.mount.UUID, name)
	switch req.Op {
	case engines.OpRead:
		if !exists {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: roleData(cur)}, nil
	case engines.OpDelete:
		if !exists {
			return nil, nil
		}
		ev, err := b.event(req, sshview.RoleDeleted, "role/"+name, sshview.DeletedPayload{Mount: b.mount.UUID, ID: name})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	case engines.OpCreate, engines.OpUpdate:
		r, err := readRole(req.Data, name)
		if err != nil {
			return nil, err
		}
		ev, err := b.event(req, sshview.RoleWritten, "role/"+name, sshview.RolePayload{Mount: b.mount.UUID, Role: r})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func readRole(d map[string]any, name string) (sshview.Role, error) {
	r := sshview.Role{Name: name, NotBeforeDuration: 30 * time.Second, AlgorithmSigner: "default"}
	var err error
	if r.KeyType, err = engines.String(d, "key_type", ""); err != nil {
		return r, err
	}
	switch r.KeyType {
	case "ca", "otp":
	case "":
		return r, engines.BadRequest("missing key_type")
	case "dynamic":
		return r, engines.BadRequest("dynamic key type roles are no longer supported (as in Vault); use ca or otp")
	default:
		return r, engines.BadRequest("invalid key_type %q: use ca or otp", r.KeyType)
	}
	strs := []struct {
		k   string
		dst *string
	}{{"allowed_users", &r.AllowedUsers}, {"default_user", &r.DefaultUser}, {"allowed_domains", &r.AllowedDomains},
		{"allowed_extensions", &r.AllowedExtensions}, {"allowed_critical_options", &r.AllowedCriticalOptions},
		{"algorithm_signer", &r.AlgorithmSigner}, {"key_id_format", &r.KeyIDFormat}, {"cidr_list", &r.CIDRList},
		{"exclude_cidr_list", &r.ExcludeCIDRList}}
	for _, f := range strs {
		if *f.dst, err = engines.String(d, f.k, *f.dst); err != nil {
			return r, err
		}
	}
	bools := []struct {
		k   string
		dst *bool
	}{{"allow_user_certificates", &r.AllowUserCertificates}, {"allow_host_certificates", &r.AllowHostCertificates},
		{"allow_bare_domains", &r.AllowBareDomains}, {"allow_subdomains", &r.AllowSubdomains},
		{"allow_user_key_ids", &r.AllowUserKeyIDs}}
	for _, f := range bools {
		if *f.dst, err = engines.Bool(d, f.k, false); err != nil {
			return r, err
		}
	}
	for _, f := range []struct {
		k   string
		dst *time.Duration
	}{{"ttl", &r.TTL}, {"max_ttl", &r.MaxTTL}, {"not_before_duration", &r.NotBeforeDuration}} {
		if engines.Negative(d[f.k]) {
			return r, engines.BadRequest("%q cannot be negative", f.k)
		}
		if *f.dst, err = engines.Duration(d, f.k, *f.dst); err != nil {
			return r, err
		}
	}
	if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
		return r, engines.BadRequest("ttl cannot be greater than max_ttl")
	}
	if r.DefaultExtensions, err = engines.StringMap(d, "default_extensions"); err != nil {
		return r, err
	}
	if r.DefaultCriticalOptions, err = engines.StringMap(d, "default_critical_options"); err != nil {
		return r, err
	}
	if r.Port, err = engines.Int(d, "port", 22); err != nil {
		return r, err
	}
	switch r.AlgorithmSigner {
	case "", "default":
		r.AlgorithmSigner = "default"
	case "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512":
	default:
		return r, engines.BadRequest("unknown algorithm_signer %q: use default, ssh-rsa, rsa-sha2-256 or rsa-sha2-512", r.AlgorithmSigner)
	}
	if r.AllowedUserKeyLengths, err = keyLengths(d["allowed_user_key_lengths"]); err != nil {
		return r, err
	}
	if r.KeyType == "otp" {
		if r.DefaultUser == "" {
			return r, engines.BadRequest("missing default user")
		}
		if r.CIDRList == "" {
			return r, engines.BadRequest("missing cidr_list")
		}
		for _, c := range strings.Split(r.CIDRList+","+r.ExcludeCIDRList, ",") {
			if c = strings.TrimSpace(c); c != "" {
				if err := engines.CheckCIDRs("invalid cidr entry "+strconv.Quote(c), []string{c}); err != nil {
					return r, err
				}
			}
		}
	}
	return r, nil
}

// keyLengths reads allowed_user_key_lengths: an object of key type to a length or a list of
// lengths (or its JSON text), as Vault takes it.
func keyLengths(v any) (map[string][]int, error) {
	if v == nil {
		return nil, nil
	}
	if s, ok := v.(string); ok {
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, engines.BadRequest("allowed_user_key_lengths: expected an object such as {\"rsa\": [2048, 4096]}")
		}
		v = m
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, engines.BadRequest("allowed_user_key_lengths: expected an object such as {\"rsa\": [2048, 4096]}")
	}
	out := map[string][]int{}
	for k, raw := range m {
		typ := keyFamily(k)
		if typ == "" {
			return nil, engines.BadRequest("allowed_user_key_lengths: unknown key type %q", k)
		}
		list, isList := raw.([]any)
		if !isList {
			list = []any{raw}
		}
		for _, e := range list {
			n, err := engines.Int(map[string]any{"n": e}, "n", 0)
			if err != nil {
				return nil, engines.BadRequest("allowed_user_key_lengths: %s: expected a number or a list of numbers", k)
			}
			out[typ] = append(out[typ], n)
		}
	}
	return out, nil
}

// keyFamily maps Vault's and OpenSSH's names of key types to rsa, ec or ed25519.
func keyFamily(s string) string {
	switch {
	case s == "rsa" || s == "ssh-rsa":
		return "rsa"
	case s == "ec" || s == "ecdsa" || strings.HasPrefix(s, "ecdsa-sha2-"):
		return "ec"
	case s == "ed25519" || s == "ssh-ed25519":
		return "ed25519"
	}
	return ""
}
