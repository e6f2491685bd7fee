package acl

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, name, text string) *Policy {
	t.Helper()
	p, err := Parse(name, text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", name, err)
	}
	return p
}

func TestParseGrammar(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []PathRule
	}{
		{
			name: "capabilities, every known name",
			text: `path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo", "subscribe", "recover"]
}`,
			want: []PathRule{{
				Pattern:      "secret/*",
				Capabilities: CapCreate | CapRead | CapUpdate | CapPatch | CapDelete | CapList | CapSudo | CapSubscribe | CapRecover,
				Line:         1,
			}},
		},
		{
			name: "empty capabilities still make a rule",
			text: `path "secret/x" { capabilities = [] }`,
			want: []PathRule{{Pattern: "secret/x", Line: 1}},
		},
		{
			name: "deny discards everything else in the block",
			text: `path "secret/x" {
  capabilities       = ["read", "deny"]
  allowed_parameters = { "a" = [] }
  min_wrapping_ttl   = "1m"
}`,
			want: []PathRule{{Pattern: "secret/x", Capabilities: CapDeny, Line: 1}},
		},
		{
			name: "parameters, lower-cased, with typed values",
			text: `path "auth/token/create" {
  capabilities        = ["update"]
  allowed_parameters  = {
    "Policies" = ["dev", "ops*"]
    ttl        = [300, true, null]
    "*"        = []
  }
  denied_parameters   = { "no_parent" = [] }
  required_parameters = ["Display_Name", "ttl"]
}`,
			want: []PathRule{{
				Pattern:      "auth/token/create",
				Capabilities: CapUpdate,
				AllowedParameters: map[string][]any{
					"policies": {"dev", "ops*"},
					"ttl":      {300.0, true, nil},
					"*":        {},
				},
				DeniedParameters:   map[string][]any{"no_parent": {}},
				RequiredParameters: []string{"display_name", "ttl"},
				Line:               1,
			}},
		},
		{
			name: "wrapping TTLs as strings, seconds and days",
			text: `path "a" {
  min_wrapping_ttl = 300
  max_wrapping_ttl = "2d"
}
path "b" {
  min_wrapping_ttl = "90"
  max_wrapping_ttl = "1h30m"
}`,
			want: []PathRule{
				{Pattern: "a", MinWrappingTTL: 5 * time.Minute, MaxWrappingTTL: 48 * time.Hour, Line: 1},
				{Pattern: "b", MinWrappingTTL: 90 * time.Second, MaxWrappingTTL: 90 * time.Minute, Line: 5},
			},
		},
		{
			name: "legacy policy field",
			text: `path "r" { policy = "read" }
path "w" { policy = "write" }
path "s" { policy = "sudo" }
path "d" { policy = "deny" }
path "u" {
  policy       = "read"
  capabilities = ["update"]
}`,
			want: []PathRule{
				{Pattern: "r", Capabilities: CapRead | CapList, Line: 1},
				{Pattern: "w", Capabilities: CapCreate | CapRead | CapUpdate | CapDelete | CapList, Line: 2},
				{Pattern: "s", Capabilities: CapCreate | CapRead | CapUpdate | CapDelete | CapList | CapSudo, Line: 3},
				{Pattern: "d", Capabilities: CapDeny, Line: 4},
				{Pattern: "u", Capabilities: CapRead | CapList | CapUpdate, Line: 5},
			},
		},
		{
			name: "patterns: leading slash trimmed, globs and segment wildcards kept",
			text: `# comment
// another
/* and a block */
path "/secret/data/*" { capabilities = ["read"] }
path "secret/+/config" { capabilities = ["read"] }
path "+/sys/*" { capabilities = ["read"] }`,
			want: []PathRule{
				{Pattern: "secret/data/*", Capabilities: CapRead, Line: 4},
				{Pattern: "secret/+/config", Capabilities: CapRead, Line: 5},
				{Pattern: "+/sys/*", Capabilities: CapRead, Line: 6},
			},
		},
		{
			name: "top-level name is accepted and ignored",
			text: `name = "ignored"
path "a" { capabilities = ["list"] }`,
			want: []PathRule{{Pattern: "a", Capabilities: CapList, Line: 2}},
		},
		{
			name: "repeated patterns stay separate until New merges them",
			text: `path "a" { capabilities = ["read"] }
path "a" { capabilities = ["list"] }`,
			want: []PathRule{
				{Pattern: "a", Capabilities: CapRead, Line: 1},
				{Pattern: "a", Capabilities: CapList, Line: 2},
			},
		},
		{
			name: "comment-only policy has no rules",
			text: "# nothing yet\n",
		},
		{
			name: "JSON",
			text: `{
  "path": {
    "secret/*": {"capabilities": ["read", "list"]},
    "auth/token/create": {
      "capabilities": ["update"],
      "allowed_parameters": {"ttl": ["1h", 60]},
      "required_parameters": ["ttl"],
      "max_wrapping_ttl": 300
    }
  }
}`,
			want: []PathRule{
				{Pattern: "secret/*", Capabilities: CapRead | CapList, Line: 3},
				{
					Pattern:            "auth/token/create",
					Capabilities:       CapUpdate,
					AllowedParameters:  map[string][]any{"ttl": {"1h", 60.0}},
					RequiredParameters: []string{"ttl"},
					MaxWrappingTTL:     5 * time.Minute,
					Line:               4,
				},
			},
		},
		{
			name: "JSON with nulls, legacy policy and a name",
			text: ` {"name": "x", "path": {"a": {"policy": "read", "allowed_parameters": null}}}`,
			want: []PathRule{{Pattern: "a", Capabilities: CapRead | CapList, Line: 1}},
		},
		{
			name: "JSON array of path objects",
			text: `{"path": [{"a": {"capabilities": ["read"]}}, {"b": {"capabilities": ["list"]}}]}`,
			want: []PathRule{
				{Pattern: "a", Capabilities: CapRead, Line: 1},
				{Pattern: "b", Capabilities: CapList, Line: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, "web", tc.text)
			if p.Name != "web" || p.Raw != tc.text {
				t.Errorf("Name, Raw = %q, %q; want web and the input", p.Name, p.Raw)
			}
			if !reflect.DeepEqual(p.Paths, tc.want) {
				t.Errorf("Paths =\n%#v\nwant\n%#v", p.Paths, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		// want is the error text. Messages from HCL itself are matched by
		// prefix, so a reworded hint in a later HCL release does not fail.
		want string
	}{
		{
			name: "empty",
			text: "",
			want: `policy "web": empty policy`,
		},
		{
			name: "blank",
			text: " \n\t\n",
			want: `policy "web": empty policy`,
		},
		{
			name: "unknown capability names its own line",
			text: "# web policy\npath \"secret/*\" {\n  capabilities = [\"read\",\n    \"reed\"]\n}\n",
			want: `policy "web": line 4: unknown capability "reed"`,
		},
		{
			name: "unknown capability on the attribute line",
			text: "\n\npath \"secret/*\" { capabilities = [\"reed\"] }",
			want: `policy "web": line 3: unknown capability "reed"`,
		},
		{
			name: "capability names are case-sensitive as in Vault",
			text: `path "a" { capabilities = ["READ"] }`,
			want: `policy "web": line 1: unknown capability "READ"`,
		},
		{
			name: "unknown key in a path block",
			text: "path \"a\" {\n  capabilities = []\n  capabilites = [\"read\"]\n}",
			want: `policy "web": line 3: Unsupported argument; An argument named "capabilites" is not expected here.`,
		},
		{
			name: "nested block in a path block",
			text: "path \"a\" {\n  allowed_parameters {\n  }\n}",
			want: `policy "web": line 2: Unsupported block type; Blocks of type "allowed_parameters" are not expected here. `,
		},
		{
			name: "top-level block other than path",
			text: "path \"a\" {}\nkey \"b\" {}",
			want: `policy "web": line 2: Unsupported block type; Blocks of type "key" are not expected here.`,
		},
		{
			name: "top-level attribute other than name",
			text: "path \"a\" {}\n\ncapabilities = []",
			want: `policy "web": line 3: Unsupported argument; An argument named "capabilities" is not expected here.`,
		},
		{
			name: "earliest of several errors is reported",
			text: "path \"a\" {\n  zzz = 1\n  aaa = 1\n}",
			want: `policy "web": line 2: Unsupported argument; An argument named "zzz" is not expected here.`,
		},
		{
			name: "unclosed block",
			text: "path \"a\" {\n  capabilities = [\"read\"]\n",
			want: `policy "web": line 1: Unclosed configuration block;`,
		},
		{
			name: "path without pattern",
			text: "\npath {}",
			want: `policy "web": line 2: Missing pattern for path; All path blocks must have 1 labels (pattern).`,
		},
		{
			name: "glob in the middle",
			text: "\npath \"secret/*/x\" {}",
			want: `policy "web": line 2: path "secret/*/x": glob "*" is only allowed as the last character`,
		},
		{
			name: "legacy policy unknown",
			text: "path \"a\" {\n  policy = \"admin\"\n}",
			want: `policy "web": line 2: unknown policy "admin" (want read, write, deny or sudo)`,
		},
		{
			name: "capabilities not a list",
			text: "path \"a\" {\n  capabilities = \"read\"\n}",
			want: `policy "web": line 2: capabilities must be a list of strings`,
		},
		{
			name: "capability not a string",
			text: "path \"a\" {\n  capabilities = [\n    1]\n}",
			want: `policy "web": line 3: capabilities must be a list of strings`,
		},
		{
			name: "variables are not allowed",
			text: "path \"a\" {\n  capabilities = [var.x]\n}",
			want: `policy "web": line 2: Variables not allowed; Variables may not be used here.`,
		},
		{
			name: "parameters not a map",
			text: "path \"a\" {\n  allowed_parameters = [\"x\"]\n}",
			want: `policy "web": line 2: allowed_parameters must be a map of parameter names to lists of values`,
		},
		{
			name: "parameter values not a list",
			text: "path \"a\" {\n  denied_parameters = {\n    \"x\" = \"y\"\n  }\n}",
			want: `policy "web": line 3: denied_parameters: value for "x" must be a list`,
		},
		{
			name: "bad duration",
			text: "path \"a\" {\n  max_wrapping_ttl = \"soon\"\n}",
			want: `policy "web": line 2: max_wrapping_ttl: invalid duration "soon"`,
		},
		{
			name: "negative duration",
			text: "path \"a\" {\n  min_wrapping_ttl = -5\n}",
			want: `policy "web": line 2: min_wrapping_ttl: duration must not be negative`,
		},
		{
			name: "max wrapping below min",
			text: "\npath \"a\" {\n  min_wrapping_ttl = \"1h\"\n  max_wrapping_ttl = \"1m\"\n}",
			want: `policy "web": line 2: path "a": max_wrapping_ttl cannot be less than min_wrapping_ttl`,
		},
		{
			name: "JSON syntax error",
			text: "{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\",]}\n  }\n}",
			want: `policy "web": line 3: Trailing comma in array;`,
		},
		{
			name: "JSON unknown capability",
			text: "{\"path\": {\n  \"a\": {\"capabilities\": [\n    \"read\", \"reed\"]}}}",
			want: `policy "web": line 3: unknown capability "reed"`,
		},
		{
			name: "JSON unknown key",
			text: "{\"path\": {\"a\": {\n  \"capabilities\": [],\n  \"mfa_methods\": []}}}",
			want: `policy "web": line 3: Extraneous JSON object property; No argument or block type is named "mfa_methods".`,
		},
		{
			name: "JSON capabilities as a string",
			text: `{"path": {"a": {"capabilities": "read"}}}`,
			want: `policy "web": line 1: capabilities must be a list of strings`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("web", tc.text)
			if err == nil {
				t.Fatalf("Parse succeeded with %d rules; want error %q", len(p.Paths), tc.want)
			}
			if got := err.Error(); !strings.HasPrefix(got, tc.want) || (!strings.Contains(tc.want, ";") && got != tc.want) {
				t.Errorf("error =\n  %s\nwant\n  %s", got, tc.want)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error does not wrap ErrInvalidPolicy")
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Policy != "web" {
				t.Errorf("error is not a *ParseError for policy web: %#v", err)
			}
		})
	}
}

func TestCapabilityNames(t *testing.T) {
	tests := []struct {
		name string
		caps Capability
		want []string
	}{
		{name: "none", caps: 0, want: nil},
		{name: "sorted regardless of bit order", caps: CapUpdate | CapCreate | CapSudo | CapRead, want: []string{"create", "read", "sudo", "update"}},
		{name: "all", caps: 1<<10 - 1, want: []string{"create", "delete", "deny", "list", "patch", "read", "recover", "subscribe", "sudo", "update"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.caps.Names(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Names() = %q, want %q", got, tc.want)
			}
			for _, n := range tc.want {
				if c, ok := ParseCapability(n); !ok || tc.caps&c == 0 {
					t.Errorf("ParseCapability(%q) = %v, %v", n, c, ok)
				}
			}
		})
	}
}
