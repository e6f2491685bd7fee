package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// jsonLines decodes the JSON lines the audit commands print.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func recordPath(m map[string]any) string {
	r, _ := m["request"].(map[string]any)
	p, _ := r["path"].(string)
	return p
}

// TestE2EAudit: enable a file device, then verify, tail, tail -f and query, all from the CLI.
func TestE2EAudit(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if out := c.ok("audit", "enable", "file", "file_path="+logPath); !strings.Contains(out, "Enabled the file audit device at: file/") {
		t.Fatalf("audit enable: %s", out)
	}
	expect(t, c.run("audit", "enable", "-path=bad", "file", "file_path="+filepath.Join(logPath, "sub", "x.log")), 2, "cannot be opened for appending")
	if out := c.ok("audit", "list", "-detailed"); !strings.Contains(out, "file/") || !strings.Contains(out, "file_path:"+logPath) {
		t.Fatalf("audit list: %s", out)
	}
	c.ok("kv", "put", "secret/cli/a", "pw=hunter2")
	c.ok("kv", "get", "secret/cli/a")
	c.run("kv", "get", "secret/cli/missing")

	if out := c.ok("audit", "verify"); !strings.Contains(out, "Success! The hash chain is intact.") || !strings.Contains(out, "Log LEDGER: seqs 1 to") {
		t.Fatalf("audit verify: %s", out)
	}
	v := decodeJSON(t, c.ok("audit", "verify", "-format=json"))
	if v["ok"] != true {
		t.Fatalf("audit verify -format=json: %v", v)
	}

	recs := jsonLines(t, c.ok("audit", "tail", "-n", "3"))
	if len(recs) != 3 {
		t.Fatalf("audit tail -n 3: %d lines", len(recs))
	}
	recs = jsonLines(t, c.ok("audit", "query", "-path", "secret/data/cli/"))
	var paths []string
	for _, r := range recs {
		paths = append(paths, recordPath(r)+" "+r["request"].(map[string]any)["operation"].(string))
	}
	if strings.Join(paths, ",") != "secret/data/cli/a create,secret/data/cli/a read,secret/data/cli/missing read" {
		t.Fatalf("audit query -path: %v", paths)
	}
	recs = jsonLines(t, c.ok("audit", "query", "-errors-only", "-since", "10m"))
	for _, r := range recs {
		if r["error"] == nil {
			t.Fatalf("audit query -errors-only printed a success: %v", r)
		}
	}
	if strings.Contains(c.ok("audit", "query"), "hunter2") {
		t.Fatal("audit query printed a secret value")
	}
	expect(t, c.run("audit", "query", "-since", "the dawn of time"), 2, "since")

	// tail -f: a record written while it follows shows up; its own polls do not.
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- runContext(ctx, []string{"audit", "tail", "-n", "1", "-f", "-interval", "100ms"}, c.env(), strings.NewReader(""), &stdout, &stderr)
	}()
	// Wait for the tail to print its first record before writing, then for the new record to
	// arrive: polls with a deadline, not fixed sleeps, so a loaded machine does not fail it.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("audit tail -f: no %s within 15s: %s", what, stdout.String())
			}
		}
	}
	waitFor("first record", func() bool { return strings.Contains(stdout.String(), "\n") })
	c.ok("kv", "put", "secret/cli/followed", "k=v")
	waitFor("record of the write", func() bool { return strings.Contains(stdout.String(), "secret/data/cli/followed") })
	time.Sleep(300 * time.Millisecond) // a few more polls, to see that they are not printed
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("audit tail -f: exit %d: %s", code, stderr.String())
	}
	recs = jsonLines(t, stdout.String())
	if len(recs) < 2 || recordPath(recs[len(recs)-1]) != "secret/data/cli/followed" {
		t.Fatalf("audit tail -f: %s", stdout.String())
	}
	for _, r := range recs[1:] {
		if strings.HasPrefix(recordPath(r), "sys/ledger/audit/") {
			t.Fatalf("audit tail -f shows its own polls: %v", r)
		}
	}
}

// TestE2EAuditVerifyTampered: after a batch is removed from the log, `ledger audit verify`
// exits 2 and names the sequence.
func TestE2EAuditVerifyTampered(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln, LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close(context.Background()) })
	c := &cli{t: t, addr: withScheme(d.Addr), token: d.RootToken, home: t.TempDir()}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		c.ok("kv", "put", "secret/t/"+k, "v=1")
	}
	c.ok("audit", "verify")

	ctx := context.Background()
	js := d.log.JetStream()
	st, err := js.Stream(ctx, ledger.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := info.State.LastSeq - 2
	// JetStream will not lift DenyDelete: the attacker rebuilds the stream without the victim.
	var msgs []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := js.DeleteStream(ctx, ledger.StreamName); err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.DenyDelete = false
	if st, err = createStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteMsg(ctx, victim); err != nil {
		t.Fatal(err)
	}
	r := c.run("audit", "verify")
	want := "the first missing or altered sequence of the log is " + jsonNumber(victim)
	if r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stdout, "FAILED") {
		t.Fatalf("audit verify after deleting seq %d: %s", victim, r)
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// createStream creates a stream just deleted; the server may need a moment to let go of the
// old one's store.
func createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for i := 0; ; i++ {
		st, err := js.CreateStream(ctx, cfg)
		if err == nil || i == 50 {
			return st, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
