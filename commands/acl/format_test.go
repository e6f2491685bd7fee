package acl

import (
	"errors"
	"reflect"
	"testing"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "already canonical",
			in:   "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n",
			want: "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n",
		},
		{
			name: "indentation, spacing and alignment",
			in: `  path   "auth/token/create"{
capabilities=["update","read"]
    allowed_parameters={
"policies"=["dev"]
        "ttl" = [ 300 ]
}
required_parameters  =   ["policies"]
}`,
			want: `path "auth/token/create" {
  capabilities       = ["update", "read"]
  allowed_parameters = {
    "policies" = ["dev"]
    "ttl"      = [300]
  }
  required_parameters = ["policies"]
}
`,
		},
		{
			name: "comments and blank lines kept, edges trimmed",
			in:   "\n\n# frontend team\npath \"a\" {   # trailing\n  capabilities = [] // none\n}\n\n/* old:\n   path \"b\" {} */\npath \"c\" { capabilities = [\"list\"] }\n\n\n",
			want: "# frontend team\npath \"a\" { # trailing\n  capabilities = [] // none\n}\n\n/* old:\n   path \"b\" {} */\npath \"c\" { capabilities = [\"list\"] }\n",
		},
		{
			name: "multi-line list",
			in:   "path \"x\" {\ncapabilities = [\n\"read\",\n  \"list\",\n]\n}",
			want: "path \"x\" {\n  capabilities = [\n    \"read\",\n    \"list\",\n  ]\n}\n",
		},
		{
			name: "heredoc bodies are left alone",
			in:   "path \"x\" {\nallowed_parameters = { \"motd\" = [<<EOT\n  keep   this\nEOT\n] }\n}",
			want: "path \"x\" {\n  allowed_parameters = { \"motd\" = [<<EOT\n  keep   this\nEOT\n  ] }\n}\n",
		},
		{
			name: "unary minus hugs its operand",
			in:   "path \"x\" {\n  allowed_parameters = { \"n\" = [ - 5, -1.5 ] }\n}",
			want: "path \"x\" {\n  allowed_parameters = { \"n\" = [-5, -1.5] }\n}\n",
		},
		{
			name: "JSON becomes HCL",
			in:   `{"path": {"secret/*": {"policy": "read"}, "auth/token/create": {"capabilities": ["update"], "allowed_parameters": {"ttl": ["1h", 60], "x": []}, "denied_parameters": {"a": ["${b}"]}, "max_wrapping_ttl": 300}}}`,
			want: `path "secret/*" {
  capabilities = ["list", "read"]
}

path "auth/token/create" {
  capabilities       = ["update"]
  allowed_parameters = {
    "ttl" = ["1h", 60]
    "x"   = []
  }
  denied_parameters = {
    "a" = ["$${b}"]
  }
  max_wrapping_ttl = "5m0s"
}
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Format(tc.in)
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			if got != tc.want {
				t.Errorf("Format =\n%s\nwant\n%s", got, tc.want)
			}
			again, err := Format(got)
			if err != nil || again != got {
				t.Errorf("Format is not idempotent: %v\n%s", err, again)
			}
			before, after := mustParse(t, "", tc.in), mustParse(t, "", got)
			if !reflect.DeepEqual(stripLines(before.Paths), stripLines(after.Paths)) {
				t.Errorf("formatting changed the rules:\n%#v\n%#v", before.Paths, after.Paths)
			}
		})
	}
}

func TestFormatRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: "empty policy"},
		{name: "unknown capability", in: "path \"a\" {\n  capabilities = [\"reed\"]\n}", want: `line 2: unknown capability "reed"`},
		{name: "syntax", in: "path \"a\" {", want: "line 1: Unclosed configuration block;"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Format(tc.in)
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			if got := err.Error(); len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("err = %q, want prefix %q", got, tc.want)
			}
		})
	}
}

// stripLines drops positions, which formatting is allowed to change.
func stripLines(rules []PathRule) []PathRule {
	out := append([]PathRule(nil), rules...)
	for i := range out {
		out[i].Line = 0
	}
	return out
}
