package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditEnableRefusals: a device that cannot write is refused at enable time with a 400
// that says why, and nothing is enabled or created.
func TestAuditEnableRefusals(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	dir := t.TempDir()
	notADir := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	closedPort := freeAddr(t) // nothing listens there any more
	for _, tc := range []struct {
		name string
		in   vault.EnableAuditOptions
		want string
	}{
		{"file under a regular file", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(notADir, "audit.log")}}, "cannot be opened for appending"},
		{"file in a missing directory", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "nope", "audit.log")}}, "cannot be opened"},
		{"file path is a directory", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": dir}}, "is a directory"},
		{"file without path", vault.EnableAuditOptions{Type: "file"}, "file_path is required"},
		{"bad mode", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "a.log"), "mode": "rw"}}, "mode"},
		{"unreachable tcp socket", vault.EnableAuditOptions{Type: "socket", Options: map[string]string{"address": closedPort}}, "not reachable"},
		{"unreachable unix socket", vault.EnableAuditOptions{Type: "socket", Options: map[string]string{"address": filepath.Join(dir, "no.sock"), "socket_type": "unix"}}, "not reachable"},
		{"bad socket type", vault.EnableAuditOptions{Type: "socket", Options: map[string]string{"address": closedPort, "socket_type": "sctp"}}, "socket_type"},
		{"unreachable http", vault.EnableAuditOptions{Type: "http", Options: map[string]string{"url": "http://" + closedPort + "/hec"}}, "not reachable"},
		{"http without url", vault.EnableAuditOptions{Type: "http"}, "url"},
		{"bad headers", vault.EnableAuditOptions{Type: "http", Options: map[string]string{"url": "http://" + closedPort, "headers": "Authorization: x"}}, "headers"},
		{"unknown type", vault.EnableAuditOptions{Type: "kafka"}, "unknown audit device type"},
		{"unknown option", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "b.log"), "flie_mode": "0600"}}, "unknown option"},
		{"log_raw", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "c.log"), "log_raw": "true"}}, "log_raw=true is not supported"},
		{"bad hmac_accessor", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "d.log"), "hmac_accessor": "maybe"}}, "hmac_accessor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := root.Sys().EnableAuditWithOptions("bad", &tc.in)
			respErr(t, err, http.StatusBadRequest, tc.want)
		})
	}
	if devices, err := root.Sys().ListAudit(); err != nil || len(devices) != 0 {
		t.Fatalf("after refusals, sys/audit = %v, %v", devices, err)
	}
	for _, f := range []string{"a.log", "b.log", "c.log", "d.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s was created by a refused enable", f)
		}
	}
	// Enabling twice at one path is refused; a non-sudo token may not enable at all.
	ok := vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "ok.log")}}
	if err := root.Sys().EnableAuditWithOptions("ok", &ok); err != nil {
		t.Fatal(err)
	}
	respErr(t, root.Sys().EnableAuditWithOptions("ok", &ok), http.StatusBadRequest, "already in use")
	putPolicy(t, root, "audit-no-sudo", `path "sys/audit/*" { capabilities = ["create", "update"] }`)
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"audit-no-sudo"}})
	denied(t, s.Client(t, tok.ClientToken).Sys().EnableAuditWithOptions("other", &ok))
}

// TestAuditSocketAndHTTPDevices: a TCP socket device and an HTTP (SIEM) device receive the
// entries; the SIEM fails for a while and gets every record once it answers, with its headers.
func TestAuditSocketAndHTTPDevices(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var sockMu sync.Mutex
	var sockLines []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := bufio.NewScanner(c)
				sc.Buffer(make([]byte, 1<<20), 16<<20)
				for sc.Scan() {
					sockMu.Lock()
					sockLines = append(sockLines, sc.Text())
					sockMu.Unlock()
				}
			}()
		}
	}()
	var failing atomic.Bool
	failing.Store(true)
	var hecMu sync.Mutex
	var hecBody strings.Builder
	var hecAuth atomic.Value
	hec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if failing.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		hecAuth.Store(r.Header.Get("Authorization"))
		hecMu.Lock()
		hecBody.Write(b)
		hecMu.Unlock()
	}))
	defer hec.Close()

	if err := root.Sys().EnableAuditWithOptions("sock", &vault.EnableAuditOptions{Type: "socket", Options: map[string]string{"address": ln.Addr().String(), "socket_type": "tcp"}}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuditWithOptions("siem", &vault.EnableAuditOptions{Type: "http", Options: map[string]string{
		"url": hec.URL + "/services/collector", "http_format": "splunk_hec", "headers": `{"Authorization":"Splunk 1234-abcd"}`, "batch_size": "3",
	}}); err != nil {
		t.Fatal(err)
	}
	devices, err := root.Sys().ListAudit()
	if err != nil {
		t.Fatal(err)
	}
	if h := devices["siem/"].Options["headers"]; strings.Contains(h, "1234-abcd") {
		t.Fatalf("sys/audit shows the SIEM credential: %q", h)
	}
	const value = "hunter2-in-the-siem"
	for _, p := range []string{"a", "b", "c", "d"} {
		if _, err := root.KVv2("secret").Put(t.Context(), "sock/"+p, map[string]any{"pw": value}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "socket lines", func() bool {
		sockMu.Lock()
		defer sockMu.Unlock()
		return countPath(sockLines, `"path":"secret/data/sock/d"`) == 2
	})
	sockMu.Lock()
	lines := parseAuditLines(t, []byte(strings.Join(sockLines, "\n")+"\n"))
	sockMu.Unlock()
	for _, p := range []string{"a", "b", "c", "d"} {
		if n := len(find(lines, "response", "create", "secret/data/sock/"+p)); n != 1 {
			t.Errorf("socket: %d response entries for %s", n, p)
		}
	}
	time.Sleep(300 * time.Millisecond) // the SIEM refuses meanwhile: the device retries
	hecMu.Lock()
	if hecBody.Len() != 0 {
		t.Fatal("the SIEM stored a batch while answering 503")
	}
	hecMu.Unlock()
	failing.Store(false)
	eventually(t, 20*time.Second, "the SIEM gets the records once it answers", func() bool {
		hecMu.Lock()
		defer hecMu.Unlock()
		return strings.Count(hecBody.String(), `"path":"secret/data/sock/d"`) >= 2
	})
	if a, _ := hecAuth.Load().(string); a != "Splunk 1234-abcd" {
		t.Fatalf("SIEM saw Authorization %q", a)
	}
	hecMu.Lock()
	body := hecBody.String()
	hecMu.Unlock()
	if !strings.Contains(body, `{"event":{"time"`) || !strings.Contains(body, `"sourcetype":"ledger:audit"`) {
		t.Fatalf("not Splunk HEC events: %q", trunc([]byte(body)))
	}
	if leak := containsAny(body+strings.Join(sockLines, ""), value, s.RootToken); leak != "" {
		t.Fatalf("a device received %q in clear", leak)
	}
	for _, p := range []string{"a", "b", "c", "d"} {
		if n := strings.Count(body, `"type":"response"`); n == 0 {
			t.Fatal("no response entries at the SIEM")
		}
		if n := strings.Count(body, `"path":"secret/data/sock/`+p+`"`); n < 2 {
			t.Errorf("SIEM: %d entries for %s", n, p)
		}
	}
}

func countPath(lines []string, needle string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, needle) {
			n++
		}
	}
	return n
}

// TestAuditDeviceOptions: audit_non_hmac_request_keys keeps a key in the clear for the device
// that asks (and only for it), hmac_accessor=false shows accessors, prefix prefixes lines, and
// backfill=true replays history into a new device.
func TestAuditDeviceOptions(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	dir := t.TempDir()
	if _, err := root.KVv2("secret").Put(t.Context(), "history/early", map[string]any{"k": "written before any device"}); err != nil {
		t.Fatal(err)
	}
	plain, clearKeys, back := filepath.Join(dir, "plain.log"), filepath.Join(dir, "clear.log"), filepath.Join(dir, "backfill.log")
	for _, d := range []struct {
		path string
		opts map[string]string
	}{
		{"plain", map[string]string{"file_path": plain}},
		{"clear", map[string]string{"file_path": clearKeys, "audit_non_hmac_request_keys": "team", "hmac_accessor": "false", "prefix": "@cee: "}},
		{"back", map[string]string{"file_path": back, "backfill": "true"}},
	} {
		if err := root.Sys().EnableAuditWithOptions(d.path, &vault.EnableAuditOptions{Type: "file", Options: d.opts}); err != nil {
			t.Fatal(err)
		}
	}
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	if _, err := root.KVv2("secret").Put(t.Context(), "opts/x", map[string]any{"team": "payments", "password": "s3cr3t!"}); err != nil {
		t.Fatal(err)
	}
	const p = "secret/data/opts/x"
	waitForLines(t, plain, 10*time.Second, "plain device", func(ls []auditLine) bool { return len(find(ls, "response", "create", p)) == 1 })
	var clearLines []auditLine
	eventually(t, 10*time.Second, "clear device", func() bool {
		b, _ := os.ReadFile(clearKeys)
		var stripped []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			if !strings.HasPrefix(l, "@cee: ") {
				t.Fatalf("line without prefix: %q", l)
			}
			stripped = append(stripped, strings.TrimPrefix(l, "@cee: "))
		}
		if len(stripped) == 0 {
			return false
		}
		clearLines = parseAuditLines(t, []byte(strings.Join(stripped, "\n")+"\n"))
		return len(find(clearLines, "response", "create", p)) == 1
	})
	team := func(l auditLine) string {
		d, _ := l.Request.Data["data"].(map[string]any)
		s, _ := d["team"].(string)
		return s
	}
	if got := team(find(clearLines, "request", "create", p)[0]); got != "payments" {
		t.Fatalf("device with audit_non_hmac_request_keys=team: team = %q", got)
	}
	plainLines := readAuditFile(t, plain)
	if got := team(find(plainLines, "request", "create", p)[0]); !strings.HasPrefix(got, "hmac-sha256:") {
		t.Fatalf("device without it: team = %q, want an HMAC", got)
	}
	b, _ := os.ReadFile(clearKeys)
	if strings.Contains(string(b), "s3cr3t!") {
		t.Fatal("a key not listed as non-HMAC is in clear")
	}
	// hmac_accessor=false: the accessor of the token that created tok is the root's; the
	// create's response auth shows tok's accessor in clear on that device only.
	if !strings.Contains(string(b), tok.Accessor) {
		t.Fatal("hmac_accessor=false: accessor not in clear")
	}
	pb, _ := os.ReadFile(plain)
	if strings.Contains(string(pb), tok.Accessor) {
		t.Fatal("default device shows an accessor in clear")
	}
	lines := waitForLines(t, back, 10*time.Second, "backfill device", func(ls []auditLine) bool {
		return len(find(ls, "response", "create", p)) == 1
	})
	if len(find(lines, "response", "create", "secret/data/history/early")) != 1 {
		t.Fatal("backfill=true did not replay the write made before the device existed")
	}
	if len(find(plainLines, "response", "create", "secret/data/history/early")) != 0 {
		t.Fatal("a device without backfill emitted history")
	}
}

// TestAuditSyslogDevice: a syslog device sends one message per entry to a (remote, UDP)
// syslog daemon, with the tag and facility asked for.
func TestAuditSyslogDevice(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var msgs []string
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, string(buf[:n]))
			mu.Unlock()
		}
	}()
	if err := root.Sys().EnableAuditWithOptions("syslog", &vault.EnableAuditOptions{Type: "syslog", Options: map[string]string{
		"address": pc.LocalAddr().String(), "network": "udp", "tag": "ledger-audit", "facility": "LOCAL3",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(t.Context(), "sys/log", map[string]any{"v": "x"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "syslog messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return countPath(msgs, `"path":"secret/data/sys/log"`) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		// <PRI> with facility local3 (19) and severity info (6): 19*8+6 = 158.
		if !strings.HasPrefix(m, "<158>") || !strings.Contains(m, "ledger-audit") || !strings.Contains(m, `{"time"`) {
			t.Fatalf("syslog message %q", m)
		}
	}
}
