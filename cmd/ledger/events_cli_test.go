package main

import (
	"strings"
	"testing"
)

// TestE2EEventsSubscribe: ledger events subscribe prints events as JSON lines, replays from a
// log sequence, resumes after a position, and says what is wrong when refused.
func TestE2EEventsSubscribe(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, p := range []string{"ev/a", "ev/b", "ev/c"} {
		c.ok("kv", "put", "secret/"+p, "k=v")
	}
	lines := jsonLines(t, c.ok("events", "subscribe", "-timeout", "2s", "-from-index", "1", "kv-v2/data-write"))
	var paths, pos []string
	for _, l := range lines {
		data := l["data"].(map[string]any)
		md := data["event"].(map[string]any)["metadata"].(map[string]any)
		paths = append(paths, md["data_path"].(string))
		pos = append(pos, l["ledgerpos"].(string))
	}
	if strings.Join(paths, ",") != "secret/data/ev/a,secret/data/ev/b,secret/data/ev/c" {
		t.Fatalf("replayed events: %v", paths)
	}
	lines = jsonLines(t, c.ok("events", "subscribe", "-timeout", "2s", "-after", pos[1], "kv*"))
	if len(lines) != 1 || lines[0]["ledgerpos"] != pos[2] {
		t.Fatalf("resumed after %s: %v", pos[1], lines)
	}
	lines = jsonLines(t, c.ok("events", "subscribe", "-timeout", "2s", "-from-index", "1", "-filter", `data_path == "secret/data/ev/b"`, "kv*"))
	if len(lines) != 1 || lines[0]["ledgerpos"] != pos[1] {
		t.Fatalf("filtered to secret/data/ev/b: %v", lines)
	}
	expect(t, c.run("events", "subscribe", "-timeout", "2s", "-filter", "data_path ==", "kv*"), 2, "filter")
	expect(t, c.run("events", "subscribe", "-timeout", "2s", "-after", "x", "kv*"), 2, "after")
	r := c.runEnv(c.env("VAULT_TOKEN", "nope"), "", "events", "subscribe", "-timeout", "2s", "kv*")
	expect(t, r, 2, "permission denied")
}
