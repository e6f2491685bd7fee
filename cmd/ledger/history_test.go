package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// End-to-end: `ledger history`, `kv get -at|-at-seq`, `kv metadata get -at`, `policy read -at`
// and the server-side `kv rollback`, run in-process against a real dev server.

func TestHistoryCLI(t *testing.T) {
	c := newCLI(t)
	const path = "secret/app/db"
	rootAccessor := stringOf(mapOf(decodeJSON(t, c.ok("token", "lookup", "-format=json"))["data"])["accessor"])

	c.ok("kv", "put", path, "pass=marker-one")
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(5 * time.Millisecond)
	c.ok("kv", "put", path, "pass=marker-two")

	t.Run("history table", func(t *testing.T) {
		for _, args := range [][]string{{path}, {"secret/data/app/db"}, {"-mount=secret", "app/db"}} {
			out := c.ok(append([]string{"history"}, args...)...)
			if strings.Contains(out, "marker-") {
				t.Fatalf("history %v prints a value:\n%s", args, out)
			}
			if !strings.HasPrefix(out, "History of secret/data/app/db\n") {
				t.Fatalf("history %v:\n%s", args, out)
			}
			for _, v := range []string{"1", "2"} {
				row := regexp.MustCompile(`(?m)^\d+\s+\d{4}-\d\d-\d\dT[^ ]+Z\s+version written\s+` + v + `\s+` + regexp.QuoteMeta(rootAccessor) + `\s+[0-9a-f-]{36}$`)
				if !row.MatchString(out) {
					t.Errorf("history %v: no row for version %s by %s:\n%s", args, v, rootAccessor, out)
				}
			}
		}
	})

	events := mapOf(decodeJSON(t, c.ok("history", "-format=json", path))["data"])["events"].([]any)
	if len(events) != 2 {
		t.Fatalf("history -format=json: %d events", len(events))
	}
	firstSeq := fmt.Sprint(intOf(mapOf(events[0])["sequence"]))

	t.Run("point in time", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"-at between the writes", []string{"kv", "get", "-at=" + between, "-field=pass", path}, "marker-one\n"},
			{"-at-seq of the first write", []string{"kv", "get", "-at-seq=" + firstSeq, "-field=pass", path}, "marker-one\n"},
			{"-at now", []string{"kv", "get", "-at=" + time.Now().UTC().Format(time.RFC3339Nano), "-field=pass", path}, "marker-two\n"},
			{"-at with -version", []string{"kv", "get", "-at=" + time.Now().UTC().Format(time.RFC3339Nano), "-version=1", "-field=pass", path}, "marker-one\n"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := c.ok(tt.args...); got != tt.want {
					t.Fatalf("%v = %q, want %q", tt.args, got, tt.want)
				}
			})
		}
		md := mapOf(decodeJSON(t, c.ok("kv", "metadata", "get", "-format=json", "-at="+between, path))["data"])
		if intOf(md["current_version"]) != 1 {
			t.Fatalf("metadata as of then: current_version %v", md["current_version"])
		}
		if out := c.ok("kv", "get", "-at="+between, path); !hasRow(out, "pass", "marker-one") || !hasRow(out, "version", "1") {
			t.Fatalf("kv get -at table:\n%s", out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		tests := []struct {
			name string
			args []string
			code int
			want string
		}{
			{"before genesis", []string{"kv", "get", "-at=2001-01-01T00:00:00Z", path}, 2, "before the log's first event"},
			{"in the future", []string{"kv", "get", "-at=" + future, path}, 2, "in the future"},
			{"sequence in the future", []string{"kv", "get", "-at-seq=999999", path}, 2, "in the future"},
			{"not a time", []string{"kv", "get", "-at=yesterday", path}, 2, "RFC 3339"},
			{"both", []string{"kv", "get", "-at=" + between, "-at-seq=1", path}, 2, "not both"},
			{"sequence 0", []string{"kv", "get", "-at-seq=0", path}, 2, "start at 1"},
			{"nothing there then", []string{"kv", "get", "-at=" + between, "secret/app/none"}, 2, "No value found at secret/data/app/none"},
			{"history of an unknown path", []string{"history", "secret/app/none"}, 2, "no history"},
			{"history of an unknown mount", []string{"history", "nomount/app/db"}, 2, "no mount"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				expect(t, c.run(tt.args...), tt.code, tt.want)
			})
		}
	})

	t.Run("output policy", func(t *testing.T) {
		if out := c.ok("history", "-output-policy", path); out != "path \"sys/ledger/history/secret/data/app/db\" {\n  capabilities = [\"read\"]\n}\n" {
			t.Fatalf("history -output-policy:\n%s", out)
		}
		out := c.ok("kv", "get", "-output-policy", "-at="+between, path)
		if !strings.Contains(out, `path "sys/ledger/at/secret/data/app/db"`) || !strings.Contains(out, `path "secret/data/app/db"`) {
			t.Fatalf("kv get -at -output-policy:\n%s", out)
		}
	})

	t.Run("permission denied", func(t *testing.T) {
		c.ok("policy", "write", "app-reader", writePolicyFile(t, `path "secret/data/app/*" { capabilities = ["read"] }`))
		asReader := c.env("VAULT_TOKEN", strings.TrimSpace(c.ok("token", "create", "-policy=app-reader", "-field=token")))
		for _, args := range [][]string{
			{"history", path},
			{"kv", "get", "-at=" + between, path},
			{"kv", "get", "-at-seq=" + firstSeq, path},
		} {
			r := c.runEnv(asReader, "", args...)
			expect(t, r, 2, "permission denied")
			if strings.Contains(r.stdout+r.stderr, "marker-") {
				t.Fatalf("%v: a refusal shows a value: %s", args, r)
			}
		}
		if got := c.runEnv(asReader, "", "kv", "get", "-field=pass", path); got.stdout != "marker-two\n" {
			t.Fatalf("the reader cannot read the present: %s", got)
		}
	})
}

func TestRollbackCLIServerSide(t *testing.T) {
	c := newCLI(t)
	const path = "secret/app/db"
	c.ok("kv", "put", path, "pass=one")
	c.ok("kv", "put", path, "pass=two")

	// update on secret/rollback/app/* and nothing else: enough to roll back, not to read.
	c.ok("policy", "write", "roller", writePolicyFile(t, `path "secret/rollback/app/*" { capabilities = ["update"] }`))
	asRoller := c.env("VAULT_TOKEN", strings.TrimSpace(c.ok("token", "create", "-policy=roller", "-field=token")))
	r := c.runEnv(asRoller, "", "kv", "rollback", "-version=1", path)
	if r.code != 0 || !hasRow(r.stdout, "version", "3") || strings.Contains(r.stdout, "one") {
		t.Fatalf("kv rollback as roller: %s", r)
	}
	expect(t, c.runEnv(asRoller, "", "kv", "get", path), 2, "permission denied")
	if got := c.ok("kv", "get", "-field=pass", path); got != "one\n" {
		t.Fatalf("after rollback pass = %q, want one", got)
	}

	c.ok("kv", "destroy", "-versions=2", path)
	expect(t, c.runEnv(asRoller, "", "kv", "rollback", "-version=2", path), 2, "cannot roll back to version 2: it has been destroyed")
	expect(t, c.run("kv", "rollback", "-version=7", path), 2, "does not exist")
	out := c.ok("history", path)
	if n := strings.Count(out, "version written"); n != 3 {
		t.Fatalf("history after rollback: %d writes:\n%s", n, out)
	}
}

func TestPolicyReadAtCLI(t *testing.T) {
	c := newCLI(t)
	first := `path "secret/data/first/*" { capabilities = ["read"] }`
	c.ok("policy", "write", "web", writePolicyFile(t, first))
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(5 * time.Millisecond)
	c.ok("policy", "write", "web", writePolicyFile(t, `path "secret/data/second/*" { capabilities = ["read"] }`))

	if got := c.ok("policy", "read", "-at="+between, "web"); got != first+"\n" {
		t.Fatalf("policy read -at = %q, want the first text", got)
	}
	if got := c.ok("policy", "read", "web"); !strings.Contains(got, "second") {
		t.Fatalf("policy read = %q", got)
	}
	out := c.ok("history", "sys/policies/acl/web")
	if strings.Count(out, "policy written") != 2 || strings.Contains(out, "secret/data/first") {
		t.Fatalf("policy history:\n%s", out)
	}
	expect(t, c.run("policy", "read", "-at=2001-01-01T00:00:00Z", "web"), 2, "before the log's first event")
}
