package acl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func newACL(t testing.TB, texts ...string) *ACL {
	t.Helper()
	var ps []*Policy
	for i, text := range texts {
		ps = append(ps, mustParse(t, fmt.Sprintf("p%d", i), text))
	}
	return New(ps...)
}

var allOps = []Operation{Create, Read, Update, Patch, Delete, List}

// TestVaultLessonPolicy walks the policy from Vault's getting-started
// material and checks it grants exactly what it says and nothing more.
func TestVaultLessonPolicy(t *testing.T) {
	a := newACL(t, `
path "secret/data/frontend/*" { capabilities = ["read"] }
path "secret/metadata/frontend/*" { capabilities = ["list"] }
path "database/creds/frontend-readonly" { capabilities = ["read"] }
`)
	// Every (path, op) not listed here must be denied.
	granted := map[string]Operation{
		"secret/data/frontend/config":       Read,
		"secret/data/frontend/a/b/c":        Read,
		"secret/data/frontend/":             Read,
		"secret/metadata/frontend/":         List,
		"secret/metadata/frontend/app/":     List,
		"secret/metadata/frontend/config":   List,
		"database/creds/frontend-readonly":  Read,
		"/database/creds/frontend-readonly": Read,
	}
	denied := []string{
		"secret/data/frontend",
		"secret/data/frontendx/config",
		"secret/data/backend/config",
		"secret/data/",
		"secret/metadata/frontend",
		"secret/metadata/",
		"secret/frontend/config",
		"secret/config",
		"database/creds/frontend-readonly/",
		"database/creds/frontend-readonly2",
		"database/creds/frontend",
		"database/creds/",
		"sys/policies/acl/frontend",
		"auth/token/create",
		"",
	}
	for path, want := range granted {
		for _, op := range allOps {
			t.Run(op.String()+" "+path, func(t *testing.T) {
				d := a.Allowed(op, path, nil)
				if d.Allowed != (op == want) {
					t.Errorf("Allowed = %v (%s), want %v", d.Allowed, d.Reason, op == want)
				}
				if d.Sudo {
					t.Error("Sudo granted")
				}
			})
		}
	}
	for _, path := range denied {
		for _, op := range allOps {
			t.Run(op.String()+" "+path, func(t *testing.T) {
				if d := a.Allowed(op, path, nil); d.Allowed {
					t.Errorf("allowed by %s", d.Reason)
				}
			})
		}
	}
	caps := []struct {
		path string
		want []string
	}{
		{"secret/data/frontend/x", []string{"read"}},
		{"secret/metadata/frontend/x", []string{"list"}},
		{"database/creds/frontend-readonly", []string{"read"}},
		{"secret/data/backend/x", []string{"deny"}},
		{"database/creds/other", []string{"deny"}},
	}
	for _, c := range caps {
		t.Run("capabilities "+c.path, func(t *testing.T) {
			if got := a.Capabilities(c.path); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Capabilities = %q, want %q", got, c.want)
			}
		})
	}
}

// TestKVv1PatternDoesNotCoverKVv2 guards the most common Vault policy
// mistake: KV v2 puts data under data/ and metadata/, so a v1-style
// pattern must not leak into them.
func TestKVv1PatternDoesNotCoverKVv2(t *testing.T) {
	a := newACL(t, `path "secret/myapp/*" { capabilities = ["create", "read", "update", "delete", "list"] }`)
	tests := []struct {
		name string
		op   Operation
		path string
		want bool
	}{
		{name: "v1 path read", op: Read, path: "secret/myapp/x", want: true},
		{name: "v1 path write", op: Update, path: "secret/myapp/x", want: true},
		{name: "v2 data read", op: Read, path: "secret/data/myapp/x"},
		{name: "v2 data write", op: Create, path: "secret/data/myapp/x"},
		{name: "v2 metadata list", op: List, path: "secret/metadata/myapp/"},
		{name: "v2 delete", op: Update, path: "secret/delete/myapp/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := a.Allowed(tc.op, tc.path, nil); d.Allowed != tc.want {
				t.Errorf("Allowed = %v (%s), want %v", d.Allowed, d.Reason, tc.want)
			}
		})
	}
}

// TestPrecedence checks which rule governs a path. Every rule in a case
// grants a different single capability, so Capabilities names the winner.
func TestPrecedence(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		path   string
		want   string // the winning rule's capability, or "deny"
	}{
		{
			name:   "exact beats glob",
			policy: `path "secret/foo" { capabilities = ["read"] }` + "\n" + `path "secret/*" { capabilities = ["update"] }`,
			path:   "secret/foo",
			want:   "read",
		},
		{
			name:   "exact beats segment wildcard",
			policy: `path "secret/data/foo" { capabilities = ["read"] }` + "\n" + `path "secret/+/foo" { capabilities = ["update"] }`,
			path:   "secret/data/foo",
			want:   "read",
		},
		{
			name:   "exact only matches itself",
			policy: `path "secret/foo" { capabilities = ["read"] }`,
			path:   "secret/foo/bar",
			want:   "deny",
		},
		{
			name:   "longer glob beats shorter glob",
			policy: `path "secret/*" { capabilities = ["read"] }` + "\n" + `path "secret/data/*" { capabilities = ["update"] }`,
			path:   "secret/data/x",
			want:   "update",
		},
		{
			name:   "shorter glob still covers what the longer does not",
			policy: `path "secret/*" { capabilities = ["read"] }` + "\n" + `path "secret/data/*" { capabilities = ["update"] }`,
			path:   "secret/metadata/x",
			want:   "read",
		},
		{
			name:   "rule 1: later first wildcard wins (glob after + position)",
			policy: `path "secret/+/foo" { capabilities = ["read"] }` + "\n" + `path "secret/data/*" { capabilities = ["update"] }`,
			path:   "secret/data/foo",
			want:   "update",
		},
		{
			name:   "rule 1: later first wildcard wins (+ after + position)",
			policy: `path "foo/bar/+/baz" { capabilities = ["read"] }` + "\n" + `path "foo/+/x/baz" { capabilities = ["update"] }`,
			path:   "foo/bar/x/baz",
			want:   "read",
		},
		{
			name:   "rule 1: partial-segment glob beats + at the same segment",
			policy: `path "foo/a*" { capabilities = ["read"] }` + "\n" + `path "foo/+" { capabilities = ["update"] }`,
			path:   "foo/abc",
			want:   "read",
		},
		{
			name:   "rule 2: not ending in * beats ending in * (+ vs glob at same position)",
			policy: `path "secret/*" { capabilities = ["read"] }` + "\n" + `path "secret/+/foo" { capabilities = ["update"] }`,
			path:   "secret/data/foo",
			want:   "update",
		},
		{
			name:   "rule 2: foo/+/bar beats foo/+/ba*",
			policy: `path "foo/+/ba*" { capabilities = ["read"] }` + "\n" + `path "foo/+/bar" { capabilities = ["update"] }`,
			path:   "foo/x/bar",
			want:   "update",
		},
		{
			name:   "rule 3: fewer + segments win",
			policy: `path "foo/+/+/baz" { capabilities = ["read"] }` + "\n" + `path "foo/+/bar/baz" { capabilities = ["update"] }`,
			path:   "foo/x/bar/baz",
			want:   "update",
		},
		{
			name:   "rule 4: longer pattern wins",
			policy: `path "foo/+/bar/b*" { capabilities = ["read"] }` + "\n" + `path "foo/+/bar/ba*" { capabilities = ["update"] }`,
			path:   "foo/x/bar/baz",
			want:   "update",
		},
		{
			name:   "rule 5: lexicographically larger wins",
			policy: `path "foo/+/+/y" { capabilities = ["read"] }` + "\n" + `path "foo/+/x/+" { capabilities = ["update"] }`,
			path:   "foo/a/x/y",
			want:   "update",
		},
		{
			name:   "all four kinds together, exact present",
			policy: allKinds,
			path:   "secret/data/foo",
			want:   "sudo",
		},
		{
			name:   "all four kinds together, secret/data/* over secret/+/foo",
			policy: allKinds,
			path:   "secret/data/bar",
			want:   "update",
		},
		{
			name:   "all four kinds together, secret/+/foo over secret/*",
			policy: allKinds,
			path:   "secret/metadata/foo",
			want:   "list",
		},
		{
			name:   "all four kinds together, secret/* as the fallback",
			policy: allKinds,
			path:   "secret/metadata/bar",
			want:   "read",
		},
		{
			name:   "+ matches exactly one segment",
			policy: `path "secret/+/config" { capabilities = ["read"] }`,
			path:   "secret/a/b/config",
			want:   "deny",
		},
		{
			name:   "+ needs the segment to exist",
			policy: `path "secret/+/config" { capabilities = ["read"] }`,
			path:   "secret/config",
			want:   "deny",
		},
		{
			name:   "+ as the first segment",
			policy: `path "+/sys/mounts" { capabilities = ["read"] }`,
			path:   "ns1/sys/mounts",
			want:   "read",
		},
		{
			name:   "+ as the last segment does not extend",
			policy: `path "secret/+" { capabilities = ["read"] }`,
			path:   "secret/a/b",
			want:   "deny",
		},
		{
			name:   "+* extends past the segment",
			policy: `path "secret/+*" { capabilities = ["read"] }`,
			path:   "secret/a/b",
			want:   "read",
		},
		{
			name:   "+ with a partial glob after it",
			policy: `path "secret/+/conf*" { capabilities = ["read"] }`,
			path:   "secret/a/configs/x",
			want:   "read",
		},
		{
			name:   "glob matches within a segment",
			policy: `path "secret/fo*" { capabilities = ["read"] }`,
			path:   "secret/foo/bar",
			want:   "read",
		},
		{
			name:   "glob does not match the parent",
			policy: `path "secret/*" { capabilities = ["read"] }`,
			path:   "secret",
			want:   "deny",
		},
		{
			name:   "bare * matches everything",
			policy: `path "*" { capabilities = ["read"] }`,
			path:   "sys/anything/at/all",
			want:   "read",
		},
		{
			name:   "+ inside a segment is a literal, as in Vault",
			policy: `path "secret/a+b" { capabilities = ["read"] }`,
			path:   "secret/a+b",
			want:   "read",
		},
		{
			name:   "a matching rule without the capability still wins",
			policy: `path "secret/*" { capabilities = ["read"] }` + "\n" + `path "secret/data/*" { capabilities = [] }`,
			path:   "secret/data/x",
			want:   "deny",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newACL(t, tc.policy)
			if got := a.Capabilities(tc.path); !reflect.DeepEqual(got, []string{tc.want}) {
				t.Errorf("Capabilities(%q) = %q, want [%s]", tc.path, got, tc.want)
			}
		})
	}
}

const allKinds = `
path "secret/data/foo" { capabilities = ["sudo"] }
path "secret/data/*"   { capabilities = ["update"] }
path "secret/+/foo"    { capabilities = ["list"] }
path "secret/*"        { capabilities = ["read"] }
`

// TestPriorityOrderIsTotal checks New's sort against lowerPriority pairwise,
// so the first matching rule is always the one Vault's sort would pick.
func TestPriorityOrderIsTotal(t *testing.T) {
	a := newACL(t, `
path "a/*" {}
path "a/b/*" {}
path "a/+/c" {}
path "a/+/c*" {}
path "+/b/c" {}
path "+*" {}
path "a/+/+/d" {}
path "a/+/x/+" {}
path "*" {}
`)
	for i := range a.wild {
		for j := i + 1; j < len(a.wild); j++ {
			if lowerPriority(a.wild[i], a.wild[j]) || !lowerPriority(a.wild[j], a.wild[i]) {
				t.Errorf("%q sorted before %q", a.wild[i].pattern, a.wild[j].pattern)
			}
		}
	}
}

func TestListTrailingSlash(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		op     Operation
		path   string
		want   bool
	}{
		{name: "exact rule without slash lists the directory", policy: `path "secret/metadata/app" { capabilities = ["list"] }`, op: List, path: "secret/metadata/app/", want: true},
		{name: "exact rule with slash lists the directory", policy: `path "secret/metadata/app/" { capabilities = ["list"] }`, op: List, path: "secret/metadata/app/", want: true},
		{name: "the trim applies to list only", policy: `path "secret/metadata/app" { capabilities = ["read", "list"] }`, op: Read, path: "secret/metadata/app/"},
		{name: "wildcard rule without slash lists the directory", policy: `path "+/sys/policies/acl" { capabilities = ["list"] }`, op: List, path: "ns1/sys/policies/acl/", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newACL(t, tc.policy)
			if d := a.Allowed(tc.op, tc.path, nil); d.Allowed != tc.want {
				t.Errorf("Allowed = %v (%s), want %v", d.Allowed, d.Reason, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name     string
		policies []string
		path     string
		want     []string
	}{
		{
			name:     "capabilities union across policies",
			policies: []string{`path "secret/*" { capabilities = ["read"] }`, `path "secret/*" { capabilities = ["list", "update"] }`},
			path:     "secret/x",
			want:     []string{"list", "read", "update"},
		},
		{
			name:     "capabilities union within one policy",
			policies: []string{"path \"secret/*\" { capabilities = [\"read\"] }\npath \"secret/*\" { capabilities = [\"sudo\"] }"},
			path:     "secret/x",
			want:     []string{"read", "sudo"},
		},
		{
			name:     "deny wins when it comes last",
			policies: []string{`path "secret/*" { capabilities = ["read", "sudo"] }`, `path "secret/*" { capabilities = ["deny"] }`},
			path:     "secret/x",
			want:     []string{"deny"},
		},
		{
			name:     "deny wins when it comes first",
			policies: []string{`path "secret/*" { capabilities = ["deny"] }`, `path "secret/*" { capabilities = ["read"] }`, `path "secret/*" { policy = "write" }`},
			path:     "secret/x",
			want:     []string{"deny"},
		},
		{
			name:     "legacy deny wins too",
			policies: []string{`path "secret/x" { capabilities = ["read"] }`, `path "secret/x" { policy = "deny" }`},
			path:     "secret/x",
			want:     []string{"deny"},
		},
		{
			name:     "deny on one pattern leaves a more specific one alone",
			policies: []string{`path "secret/*" { capabilities = ["deny"] }`, `path "secret/open" { capabilities = ["read"] }`},
			path:     "secret/open",
			want:     []string{"read"},
		},
		{
			name:     "deny on a more specific pattern beats a broader grant",
			policies: []string{`path "secret/*" { capabilities = ["read"] }`, `path "secret/closed/*" { capabilities = ["deny"] }`},
			path:     "secret/closed/x",
			want:     []string{"deny"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newACL(t, tc.policies...)
			if got := a.Capabilities(tc.path); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Capabilities = %q, want %q", got, tc.want)
			}
			if tc.want[0] == "deny" {
				for _, op := range allOps {
					if d := a.Allowed(op, tc.path, nil); d.Allowed || d.Sudo {
						t.Errorf("%s allowed=%v sudo=%v after deny", op, d.Allowed, d.Sudo)
					}
				}
			}
		})
	}
}

func TestSudo(t *testing.T) {
	a := newACL(t, `
path "sys/audit/*" { capabilities = ["create", "read", "sudo"] }
path "sys/mounts/*" { capabilities = ["create", "read"] }
path "sys/raw/*" { capabilities = ["sudo"] }
`)
	tests := []struct {
		name        string
		op          Operation
		path        string
		wantAllowed bool
		wantSudo    bool
	}{
		{name: "granted with sudo", op: Create, path: "sys/audit/file", wantAllowed: true, wantSudo: true},
		{name: "granted without sudo", op: Create, path: "sys/mounts/kv", wantAllowed: true},
		{name: "sudo alone grants no operation", op: Read, path: "sys/raw/x", wantSudo: true},
		{name: "sudo reported even when the op is not granted", op: Delete, path: "sys/audit/file", wantSudo: true},
		{name: "no match, no sudo", op: Read, path: "sys/other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Allowed(tc.op, tc.path, nil)
			if d.Allowed != tc.wantAllowed || d.Sudo != tc.wantSudo {
				t.Errorf("Allowed, Sudo = %v, %v (%s); want %v, %v", d.Allowed, d.Sudo, d.Reason, tc.wantAllowed, tc.wantSudo)
			}
			if d.Reason == "" {
				t.Error("empty Reason")
			}
		})
	}
}

func TestParameters(t *testing.T) {
	const tokenPolicy = `
path "auth/token/create" {
  capabilities       = ["create", "update", "patch", "read"]
  allowed_parameters = {
    "policies"     = ["dev", "ops-*", "*-ro", "*mid*"]
    "ttl"          = [300, "1h"]
    "renewable"    = [true]
    "display_name" = []
    "meta"         = ["*"]
  }
  denied_parameters = {
    "policies" = ["ops-root"]
    "no_parent" = []
  }
}
`
	const requiredPolicy = `
path "secret/data/*" {
  capabilities        = ["create", "update", "read"]
  required_parameters = ["data", "Options"]
}
`
	const starAllowed = `
path "kv/*" {
  capabilities       = ["update"]
  allowed_parameters = {
    "*"    = []
    "mode" = ["strict"]
  }
}
`
	const starDenied = `
path "kv/*" {
  capabilities      = ["update", "delete"]
  denied_parameters = { "*" = [] }
}
`
	const onlyStarAllowed = `
path "kv/*" {
  capabilities       = ["update"]
  allowed_parameters = { "*" = [] }
}
`
	tests := []struct {
		name     string
		policies []string
		op       Operation
		path     string
		params   map[string]any
		want     bool
		reason   string // substring of the denial reason
	}{
		{name: "no parameters", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", want: true},
		{name: "exact allowed value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "dev"}, want: true},
		{name: "suffix glob value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "ops-web"}, want: true},
		{name: "prefix glob value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "kv-ro"}, want: true},
		{name: "contains glob value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "amidb"}, want: true},
		{name: "value not allowed", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "admin"}, reason: `parameter "policies" not allowed`},
		{name: "denied value beats allowed glob", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": "ops-root"}, reason: `parameter "policies" denied`},
		{name: "denied key with any value", policies: []string{tokenPolicy}, op: Create, path: "auth/token/create", params: map[string]any{"no_parent": false}, reason: `parameter "no_parent" denied`},
		{name: "key not in allowed list", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"period": "1h"}, reason: `parameter "period" not allowed`},
		{name: "keys compare case-insensitively", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"Policies": "dev", "DISPLAY_NAME": "x"}, want: true},
		{name: "number value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"ttl": 300}, want: true},
		{name: "json.Number value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"ttl": json.Number("300")}, want: true},
		{name: "wrong number", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"ttl": 301.0}, reason: "not allowed"},
		{name: "number is not its string", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"ttl": "300"}, reason: "not allowed"},
		{name: "string value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"ttl": "1h"}, want: true},
		{name: "bool value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"renewable": true}, want: true},
		{name: "wrong bool", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"renewable": false}, reason: "not allowed"},
		{name: "nil matches nothing but nil", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"renewable": nil}, reason: "not allowed"},
		{name: "empty list allows any value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"display_name": []any{"x", 1}}, want: true},
		{name: "star value allows any value", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"meta": map[string]any{"a": "b"}}, want: true},
		{name: "list value compared whole, as Vault does", policies: []string{tokenPolicy}, op: Update, path: "auth/token/create", params: map[string]any{"policies": []any{"dev"}}, reason: "not allowed"},
		{name: "parameters ignored for read", policies: []string{tokenPolicy}, op: Read, path: "auth/token/create", params: map[string]any{"policies": "admin", "no_parent": true}, want: true},
		{name: "parameters apply to patch", policies: []string{tokenPolicy}, op: Patch, path: "auth/token/create", params: map[string]any{"no_parent": true}, reason: "denied"},
		{name: "required present", policies: []string{requiredPolicy}, op: Create, path: "secret/data/x", params: map[string]any{"data": map[string]any{}, "options": map[string]any{}}, want: true},
		{name: "required present, other case", policies: []string{requiredPolicy}, op: Create, path: "secret/data/x", params: map[string]any{"Data": 1, "OPTIONS": 1}, want: true},
		{name: "required missing", policies: []string{requiredPolicy}, op: Update, path: "secret/data/x", params: map[string]any{"data": 1}, reason: `missing required parameter "options"`},
		{name: "required missing with no parameters", policies: []string{requiredPolicy}, op: Create, path: "secret/data/x", reason: "missing required"},
		{name: "required ignored for read", policies: []string{requiredPolicy}, op: Read, path: "secret/data/x", want: true},
		{name: "star key allows unlisted keys", policies: []string{starAllowed}, op: Update, path: "kv/x", params: map[string]any{"anything": 1}, want: true},
		{name: "listed key keeps its own values under star", policies: []string{starAllowed}, op: Update, path: "kv/x", params: map[string]any{"mode": "loose"}, reason: `parameter "mode" not allowed`},
		{name: "only star allows everything", policies: []string{onlyStarAllowed}, op: Update, path: "kv/x", params: map[string]any{"a": 1, "b": "c"}, want: true},
		{name: "star denied refuses any parameter", policies: []string{starDenied}, op: Update, path: "kv/x", params: map[string]any{"a": 1}, reason: "denied"},
		{name: "star denied allows an empty body", policies: []string{starDenied}, op: Update, path: "kv/x", want: true},
		{name: "star denied does not touch delete", policies: []string{starDenied}, op: Delete, path: "kv/x", params: map[string]any{"a": 1}, want: true},
		{
			name: "allowed values union across policies",
			policies: []string{
				`path "p" { 
  capabilities = ["update"]
  allowed_parameters = { "x" = ["a"] } 
}`,
				`path "p" { 
  capabilities = ["update"]
  allowed_parameters = { "x" = ["b"], "y" = ["c"] } 
}`,
			},
			op: Update, path: "p", params: map[string]any{"x": "b", "y": "c"}, want: true,
		},
		{
			name: "empty list in one policy absorbs the other's values",
			policies: []string{
				`path "p" { 
  capabilities = ["update"]
  allowed_parameters = { "x" = ["a"] } 
}`,
				`path "p" { 
  capabilities = ["update"]
  allowed_parameters = { "x" = [] } 
}`,
			},
			op: Update, path: "p", params: map[string]any{"x": "zzz"}, want: true,
		},
		{
			name: "a policy without restrictions does not lift another's, as in Vault",
			policies: []string{
				`path "p" { 
  capabilities = ["update"]
  allowed_parameters = { "x" = ["a"] } 
}`,
				`path "p" { capabilities = ["update"] }`,
			},
			op: Update, path: "p", params: map[string]any{"x": "b"}, reason: "not allowed",
		},
		{
			name: "denied values union across policies",
			policies: []string{
				`path "p" { 
  capabilities = ["update"]
  denied_parameters = { "x" = ["a"] } 
}`,
				`path "p" { 
  capabilities = ["update"]
  denied_parameters = { "x" = ["b"] } 
}`,
			},
			op: Update, path: "p", params: map[string]any{"x": "a"}, reason: "denied",
		},
		{
			name: "required parameters union across policies",
			policies: []string{
				`path "p" { 
  capabilities = ["update"]
  required_parameters = ["a"]
}`,
				`path "p" { 
  capabilities = ["update"]
  required_parameters = ["b", "a"]
}`,
			},
			op: Update, path: "p", params: map[string]any{"a": 1}, reason: `missing required parameter "b"`,
		},
		{
			name: "parameters come from the winning rule only",
			policies: []string{
				`path "p/*" { 
  capabilities = ["update"]
  denied_parameters = { "x" = [] }
}`,
				`path "p/q" { capabilities = ["update"] }`,
			},
			op: Update, path: "p/q", params: map[string]any{"x": 1}, want: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newACL(t, tc.policies...)
			d := a.Allowed(tc.op, tc.path, tc.params)
			if d.Allowed != tc.want {
				t.Fatalf("Allowed = %v (%s), want %v", d.Allowed, d.Reason, tc.want)
			}
			if !tc.want && !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestWrappingTTLConflictFromMerge(t *testing.T) {
	// Each block is valid alone; merged, Vault keeps the smaller of each
	// bound, which leaves max below min and the rule unusable.
	a := newACL(t,
		`path "p" { 
  capabilities = ["read"]
  min_wrapping_ttl = "1h"
}`,
		`path "p" { 
  capabilities = ["read"]
  max_wrapping_ttl = "10m"
}`)
	if d := a.Allowed(Read, "p", nil); d.Allowed {
		t.Errorf("allowed despite conflicting TTL bounds (%s)", d.Reason)
	}
}

func TestRoot(t *testing.T) {
	root := &Policy{Name: "root"}
	tests := []struct {
		name     string
		policies []*Policy
		wantRoot bool
	}{
		{name: "root alone", policies: []*Policy{root}, wantRoot: true},
		{name: "root with a deny policy", policies: []*Policy{mustParse(t, "no", `path "*" { capabilities = ["deny"] }`), root}, wantRoot: true},
		{name: "default is not root", policies: []*Policy{mustParse(t, "default", `path "auth/token/lookup-self" { capabilities = ["read"] }`)}},
		{name: "no policies", policies: nil},
		{name: "nil policy ignored", policies: []*Policy{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.policies...)
			if a.IsRoot() != tc.wantRoot {
				t.Fatalf("IsRoot = %v, want %v", a.IsRoot(), tc.wantRoot)
			}
			for _, op := range allOps {
				d := a.Allowed(op, "sys/raw/anything", map[string]any{"x": 1})
				if d.Allowed != tc.wantRoot || d.Sudo != tc.wantRoot {
					t.Errorf("%s: Allowed, Sudo = %v, %v; want %v", op, d.Allowed, d.Sudo, tc.wantRoot)
				}
			}
			want := []string{"deny"}
			if tc.wantRoot {
				want = []string{"root"}
			}
			if got := a.Capabilities("sys/raw/anything"); !reflect.DeepEqual(got, want) {
				t.Errorf("Capabilities = %q, want %q", got, want)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	a := newACL(t, `
path "a/*" { capabilities = ["update", "create", "read", "sudo", "list", "delete", "patch", "subscribe", "recover"] }
path "b" { capabilities = [] }
path "c" { capabilities = ["deny"] }
path "d" { policy = "write" }
`)
	tests := []struct {
		path string
		want []string
	}{
		{path: "a/x", want: []string{"create", "delete", "list", "patch", "read", "recover", "subscribe", "sudo", "update"}},
		{path: "/a/x", want: []string{"create", "delete", "list", "patch", "read", "recover", "subscribe", "sudo", "update"}},
		{path: "b", want: []string{"deny"}},
		{path: "c", want: []string{"deny"}},
		{path: "d", want: []string{"create", "delete", "list", "read", "update"}},
		{path: "e", want: []string{"deny"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := a.Capabilities(tc.path); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Capabilities = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInvalidInputsDeny(t *testing.T) {
	var nilACL *ACL
	a := newACL(t, `path "*" { capabilities = ["read"] }`)
	tests := []struct {
		name string
		acl  *ACL
		op   Operation
	}{
		{name: "nil ACL", acl: nilACL, op: Read},
		{name: "zero operation", acl: a, op: 0},
		{name: "unknown operation", acl: a, op: List + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := tc.acl.Allowed(tc.op, "x", nil); d.Allowed {
				t.Errorf("allowed: %s", d.Reason)
			}
		})
	}
	if got := nilACL.Capabilities("x"); !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("nil ACL Capabilities = %q", got)
	}
}

// TestAllowedDoesNotAllocate pins the hot path: granting a request,
// parameters included, must not allocate.
func TestAllowedDoesNotAllocate(t *testing.T) {
	a := benchACL(t)
	params := map[string]any{"policies": "ops-web", "ttl": json.Number("300")}
	tests := []struct {
		name   string
		op     Operation
		path   string
		params map[string]any
	}{
		{name: "exact", op: Read, path: "database/creds/app-17"},
		{name: "glob", op: Read, path: "secret/data/team-3/app/config"},
		{name: "segment wildcard", op: Read, path: "ns7/sys/mounts/kv"},
		{name: "parameters", op: Update, path: "auth/token/create", params: params},
		{name: "no match", op: Read, path: "nothing/here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { a.Allowed(tc.op, tc.path, tc.params) }); n != 0 {
				t.Errorf("%v allocations per call", n)
			}
		})
	}
}

// benchACL builds a realistic token: about fifty rules over several
// policies, mixing exact paths, globs and segment wildcards.
func benchACL(t testing.TB) *ACL {
	t.Helper()
	var policies []*Policy
	for team := 0; team < 10; team++ {
		text := fmt.Sprintf(`
path "secret/data/team-%[1]d/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/team-%[1]d/*" { capabilities = ["list", "read"] }
path "database/creds/app-%[1]d%[1]d" { capabilities = ["read"] }
path "transit/encrypt/team-%[1]d" { capabilities = ["update"] }
`, team)
		policies = append(policies, mustParse(t, fmt.Sprintf("team-%d", team), text))
	}
	policies = append(policies, mustParse(t, "platform", `
path "+/sys/mounts/*" { capabilities = ["read"] }
path "+/sys/policies/acl/+" { capabilities = ["read"] }
path "sys/leases/lookup/+/*" { capabilities = ["update"] }
path "secret/+/shared/*" { capabilities = ["read"] }
path "secret/data/team-0/restricted/*" { capabilities = ["deny"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "auth/token/create" {
  capabilities       = ["update"]
  allowed_parameters = {
    "policies" = ["dev", "ops-*"]
    "ttl"      = [300, "1h"]
  }
  denied_parameters = { "no_parent" = [] }
}
path "database/creds/app-17" { capabilities = ["read"] }
path "pki/issue/+" { capabilities = ["update"] }
path "sys/*" { capabilities = ["deny"] }
`))
	a := New(policies...)
	if n := len(a.exact) + len(a.wild); n < 50 {
		t.Fatalf("benchmark ACL has %d rules, want ~50", n)
	}
	return a
}

func BenchmarkAllowed(b *testing.B) {
	a := benchACL(b)
	params := map[string]any{"policies": "ops-web", "ttl": json.Number("300")}
	cases := []struct {
		name   string
		op     Operation
		path   string
		params map[string]any
	}{
		{name: "exact", op: Read, path: "database/creds/app-17"},
		{name: "glob", op: Read, path: "secret/data/team-3/app/config"},
		{name: "segment", op: Read, path: "ns7/sys/policies/acl/default"},
		{name: "params", op: Update, path: "auth/token/create", params: params},
		{name: "miss", op: Read, path: "kv/nothing/here"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Allowed(c.op, c.path, c.params)
			}
		})
	}
}

func TestHasAccessUnder(t *testing.T) {
	p, err := Parse("p", `
path "secret/data/frontend/*" { capabilities = ["read"] }
path "kv/exact" { capabilities = ["list"] }
path "deny/*" { capabilities = ["deny"] }
`)
	if err != nil {
		t.Fatal(err)
	}
	a := New(p)
	for prefix, want := range map[string]bool{"secret/": true, "kv/": true, "deny/": false, "other/": false} {
		if got := a.HasAccessUnder(prefix); got != want {
			t.Errorf("HasAccessUnder(%q) = %v, want %v", prefix, got, want)
		}
	}
	plus, _ := Parse("plus", `path "+/x" { capabilities = ["read"] }`)
	if !New(plus).HasAccessUnder("anything/") {
		t.Error("a rule with + in the first segment reaches under every mount")
	}
	if New().HasAccessUnder("secret/") {
		t.Error("an empty ACL has access")
	}
}
