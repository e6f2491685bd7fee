package acl

import (
	"reflect"
	"testing"
)

// FuzzParse checks that no document makes Parse, New, Allowed,
// Capabilities or Format panic, and that whatever Parse accepts Format
// turns into a document with the same rules.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		`path "secret/*" { capabilities = ["read"] }`,
		"path \"secret/+/config\" {\n  capabilities = [\"read\", \"sudo\"]\n  allowed_parameters = { \"*\" = [], \"a\" = [\"x*\", 1, true, null] }\n  denied_parameters = { \"b\" = [[1], {c = 2}] }\n  required_parameters = [\"a\"]\n  min_wrapping_ttl = \"1s\"\n  max_wrapping_ttl = 3600\n}",
		`path "a" { policy = "sudo" }`,
		`name = "x"` + "\n" + `path "+*" { capabilities = ["deny"] }`,
		`{"path": {"secret/*": {"capabilities": ["read"], "allowed_parameters": {"k": ["v", 1.5, null]}}}}`,
		`{"path": [{"a": {"policy": "write"}}]}`,
		"path \"x\" {\n  allowed_parameters = { m = [<<EOT\nhi\nEOT\n] }\n}",
		"# c\n/* d */ path \"a\" { capabilities = [] } // e",
		`path "a*b" {}`,
		`path "a" { capabilities = [var.x] }`,
		`path "a" "b" {}`,
		`{`,
		`path "a" { capabilities = ["${x}"] }`,
		`{"path": {"a\"${b}%{c}\u0001\\é": {"allowed_parameters": {"K\"ey": [1e400, -0, -1e400, 0.1, "\t$${", {"x y": [true]}]}, "required_parameters": ["Ä"]}}}`,
		`{"path": {"/x/": {"min_wrapping_ttl": "1.5s", "max_wrapping_ttl": "2d"}}, "name": null}`,
		`{}`,
		"path \"a\\r\\n\" {\r\n  capabilities = [\"read\"]\r\n}\r\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("fuzz", text)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and an error: %v", err)
			}
			return
		}
		a := New(p)
		for _, op := range []Operation{Create, Read, Update, Patch, Delete, List} {
			for _, path := range []string{"", "/", "secret/x", "a/b/c/", "+", "*"} {
				a.Allowed(op, path, map[string]any{"a": "x", "B": 1.0, "k": nil})
				a.Capabilities(path)
			}
		}
		out, err := Format(text)
		if err != nil {
			t.Fatalf("Format rejected a document Parse accepted: %v", err)
		}
		if out == "" {
			if len(p.Paths) != 0 {
				t.Fatalf("Format produced nothing for %d rules", len(p.Paths))
			}
			return
		}
		q, err := Parse("fuzz", out)
		if err != nil {
			t.Fatalf("formatted document does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(stripLines(p.Paths), stripLines(q.Paths)) {
			t.Fatalf("formatting changed the rules:\n%#v\n%#v\n%s", p.Paths, q.Paths, out)
		}
		again, err := Format(out)
		if err != nil || again != out {
			t.Fatalf("Format is not idempotent: %v\n%s\n---\n%s", err, out, again)
		}
	})
}
