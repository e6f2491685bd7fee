package main

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// TestE2EWriteToolsRandom: `ledger write -f sys/tools/random/32` prints 32 random bytes, as the
// vault CLI does; without -f the CLI asks for data; a capped size is the server's 400.
func TestE2EWriteToolsRandom(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("write", "-f", "-field=random_bytes", "sys/tools/random/32")
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(b) != 32 {
		t.Fatalf("random_bytes %q: %d bytes, %v; want 32 base64 bytes", out, len(b), err)
	}
	table := c.ok("write", "-f", "sys/tools/random/32")
	if !hasRowPrefix(table, "random_bytes") {
		t.Fatalf("table output lacks random_bytes:\n%s", table)
	}
	j := decodeJSON(t, c.ok("write", "-format=json", "sys/tools/random/16", "format=hex"))
	data, _ := j["data"].(map[string]any)
	if h, err := hex.DecodeString(data["random_bytes"].(string)); err != nil || len(h) != 16 {
		t.Fatalf("hex random_bytes %v: %v", data, err)
	}
	expect(t, c.run("write", "sys/tools/random/32"), 1, "Must supply data or use -force")
	expect(t, c.run("write", "-f", "sys/tools/random/1000000"), 2, "'bytes' should be less than 131072")
}

func hasRowPrefix(table, key string) bool {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return true
		}
	}
	return false
}

// TestE2ELoggers: the server's log level changes at run time through sys/loggers.
func TestE2ELoggers(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	if got := strings.TrimSpace(c.ok("read", "-field=core", "sys/loggers")); got != "error" {
		t.Fatalf("level = %q, want the configured error", got)
	}
	c.ok("write", "sys/loggers", "level=debug")
	if got := strings.TrimSpace(c.ok("read", "-field=core", "sys/loggers/core")); got != "debug" {
		t.Fatalf("level after write = %q", got)
	}
	expect(t, c.run("write", "sys/loggers", "level=chatty"), 2, "invalid level")
	c.ok("delete", "sys/loggers")
	if got := strings.TrimSpace(c.ok("read", "-field=core", "sys/loggers")); got != "error" {
		t.Fatalf("level after delete = %q, want error again", got)
	}
}
