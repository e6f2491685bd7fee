package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
)

// TestSysToolsRandom: sys/tools/random in every URL form Vault accepts, both formats, and the
// bad inputs (caps, unknown source/format, garbage counts) as 400s.
func TestSysToolsRandom(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	decode := func(t *testing.T, sec *vault.Secret, format string) []byte {
		t.Helper()
		v, ok := sec.Data["random_bytes"].(string)
		if !ok {
			t.Fatalf("random_bytes is %T, want a string: %v", sec.Data["random_bytes"], sec.Data)
		}
		var b []byte
		var err error
		if format == "hex" {
			b, err = hex.DecodeString(v)
		} else {
			b, err = base64.StdEncoding.DecodeString(v)
		}
		if err != nil {
			t.Fatalf("random_bytes %q is not %s: %v", v, format, err)
		}
		return b
	}
	for _, tc := range []struct {
		path   string
		body   map[string]any
		format string
		n      int
	}{
		{"sys/tools/random", nil, "base64", 32},
		{"sys/tools/random/32", nil, "base64", 32},
		{"sys/tools/random/7", map[string]any{"format": "hex"}, "hex", 7},
		{"sys/tools/random/platform", map[string]any{"bytes": 16}, "base64", 16},
		{"sys/tools/random/all/64", nil, "base64", 64},
		{"sys/tools/random/seal/5", map[string]any{"format": "hex"}, "hex", 5},
		{"sys/tools/random", map[string]any{"bytes": "131072"}, "base64", 131072},
	} {
		sec, err := c.Logical().Write(tc.path, tc.body)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.path, tc.body, err)
		}
		if got := decode(t, sec, tc.format); len(got) != tc.n {
			t.Fatalf("%s: %d bytes, want %d", tc.path, len(got), tc.n)
		}
	}
	a, _ := c.Logical().Write("sys/tools/random/32", nil)
	b, _ := c.Logical().Write("sys/tools/random/32", nil)
	if a.Data["random_bytes"] == b.Data["random_bytes"] {
		t.Fatal("two calls returned the same bytes")
	}
	for _, tc := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"sys/tools/random/1000000", nil, "'bytes' should be less than 131072"},
		{"sys/tools/random/131073", nil, "should be less than"},
		{"sys/tools/random/0", nil, "cannot be less than 1"},
		{"sys/tools/random/-3", nil, "cannot be less than 1"},
		{"sys/tools/random", map[string]any{"bytes": 1 << 40}, "expected an integer"},
		{"sys/tools/random/32", map[string]any{"format": "binary"}, "unsupported encoding format"},
		{"sys/tools/random/lava/32", nil, "unsupported entropy source"},
		{"sys/tools/random/abc", nil, "url-set byte count"},
		{"sys/tools/random/platform/x", nil, "url-set byte count"},
	} {
		_, err := c.Logical().Write(tc.path, tc.body)
		respErr(t, err, 400, tc.want)
	}
	// An unknown field is ignored with Vault's warning, as on every path.
	w, err := c.Logical().Write("sys/tools/random/8", map[string]any{"bites": 3})
	if err != nil || len(w.Warnings) != 1 || !strings.Contains(w.Warnings[0], "ignored these unrecognized parameters: [bites]") {
		t.Fatalf("unknown field: %v %v", w, err)
	}
	if _, err := c.Logical().Read("sys/tools/random"); err == nil {
		t.Fatal("GET sys/tools/random succeeded; Vault serves it on POST only")
	}
	// Without a policy granting it, a token cannot use it.
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	_, err = s.Client(t, tok.ClientToken).Logical().Write("sys/tools/random/32", nil)
	denied(t, err)
}

// TestSysToolsHash checks every algorithm against the standard library, the URL and body forms of
// the algorithm, both formats, and bad input.
func TestSysToolsHash(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	input := []byte("the quick brown fox")
	in := base64.StdEncoding.EncodeToString(input)
	s224, s256 := sha256.Sum224(input), sha256.Sum256(input)
	s384, s512 := sha512.Sum384(input), sha512.Sum512(input)
	t224, t256, t384, t512 := sha3.Sum224(input), sha3.Sum256(input), sha3.Sum384(input), sha3.Sum512(input)
	want := map[string][]byte{
		"sha2-224": s224[:], "sha2-256": s256[:], "sha2-384": s384[:], "sha2-512": s512[:],
		"sha3-224": t224[:], "sha3-256": t256[:], "sha3-384": t384[:], "sha3-512": t512[:],
	}
	for alg, sum := range want {
		sec, err := c.Logical().Write("sys/tools/hash/"+alg, map[string]any{"input": in})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if sec.Data["sum"] != hex.EncodeToString(sum) {
			t.Fatalf("%s: sum %v, want %x", alg, sec.Data["sum"], sum)
		}
		sec, err = c.Logical().Write("sys/tools/hash", map[string]any{"input": in, "algorithm": alg, "format": "base64"})
		if err != nil {
			t.Fatalf("%s (body): %v", alg, err)
		}
		if sec.Data["sum"] != base64.StdEncoding.EncodeToString(sum) {
			t.Fatalf("%s base64: sum %v", alg, sec.Data["sum"])
		}
	}
	sec, err := c.Logical().Write("sys/tools/hash", map[string]any{"input": in})
	if err != nil || sec.Data["sum"] != hex.EncodeToString(s256[:]) {
		t.Fatalf("default algorithm: %v %v, want sha2-256 hex", sec, err)
	}
	for _, tc := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"sys/tools/hash/md5", map[string]any{"input": in}, "unsupported algorithm"},
		{"sys/tools/hash", map[string]any{"input": in, "algorithm": "sha1"}, "unsupported algorithm"},
		{"sys/tools/hash", map[string]any{"input": "not base64!"}, "unable to decode input as base64"},
		{"sys/tools/hash", map[string]any{"input": in, "format": "raw"}, "unsupported encoding format"},
		{"sys/tools/hash", map[string]any{"input": []string{"a"}}, "expected a string"},
	} {
		_, err := c.Logical().Write(tc.path, tc.body)
		respErr(t, err, 400, tc.want)
	}
	// Vault's default policy grants the hash tool (and only that tool) to every token.
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	if sec, err := s.Client(t, tok.ClientToken).Logical().Write("sys/tools/hash/sha2-512", map[string]any{"input": in}); err != nil || sec.Data["sum"] != hex.EncodeToString(s512[:]) {
		t.Fatalf("hash with the default policy: %v %v", sec, err)
	}
}

// TestSysHostInfoVersionHistoryCatalog: the read-only informational endpoints, in Vault's shapes.
func TestSysHostInfoVersionHistoryCatalog(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)

	hi, err := c.Logical().Read("sys/host-info")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"timestamp", "cpu", "cpu_times", "disk", "host", "memory"} {
		if _, ok := hi.Data[k]; !ok {
			t.Fatalf("host-info lacks %q: %v", k, hi.Data)
		}
	}
	host, _ := hi.Data["host"].(map[string]any)
	if host["os"] != "linux" || host["hostname"] == "" {
		t.Fatalf("host-info host = %v", host)
	}
	memory, _ := hi.Data["memory"].(map[string]any)
	if num(t, memory["total"]) <= 0 {
		t.Fatalf("host-info memory = %v", memory)
	}
	if _, err := time.Parse(time.RFC3339Nano, hi.Data["timestamp"].(string)); err != nil {
		t.Fatalf("host-info timestamp %v: %v", hi.Data["timestamp"], err)
	}

	vh, err := c.Logical().List("sys/version-history")
	if err != nil {
		t.Fatal(err)
	}
	keys := strs(t, vh.Data["keys"])
	if len(keys) != 1 || keys[0] != commands.Version {
		t.Fatalf("version-history keys = %v", keys)
	}
	info := vh.Data["key_info"].(map[string]any)[commands.Version].(map[string]any)
	if _, err := time.Parse(time.RFC3339, info["timestamp_installed"].(string)); err != nil {
		t.Fatalf("timestamp_installed %v", info)
	}
	if _, ok := info["build_date"].(string); !ok {
		t.Fatalf("build_date %v", info)
	}

	// The plugin catalog lists what can be mounted, and every listed secret/auth type mounts.
	cat, err := c.Logical().Read("sys/plugins/catalog")
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(t, cat.Data["secret"]); !sameStrings(got, []string{"database", "kv", "transit"}) {
		t.Fatalf("catalog secret = %v", got)
	}
	if got := strs(t, cat.Data["auth"]); !sameStrings(got, []string{"approle", "userpass"}) {
		t.Fatalf("catalog auth = %v", got)
	}
	detailed, _ := cat.Data["detailed"].([]any)
	if len(detailed) != 7 {
		t.Fatalf("catalog detailed = %v", cat.Data["detailed"])
	}
	for _, d := range detailed {
		e := d.(map[string]any)
		if e["builtin"] != true || !strings.HasSuffix(e["version"].(string), "+builtin") {
			t.Fatalf("detailed entry %v", e)
		}
	}
	for _, n := range strs(t, cat.Data["secret"]) {
		if err := c.Sys().Mount("cat-"+n, &vault.MountInput{Type: n}); err != nil {
			t.Fatalf("catalog lists %s but it does not mount: %v", n, err)
		}
	}
	for _, n := range strs(t, cat.Data["auth"]) {
		if err := c.Sys().EnableAuthWithOptions("cat-"+n, &vault.EnableAuthOptions{Type: n}); err != nil {
			t.Fatalf("catalog lists %s but it does not enable: %v", n, err)
		}
	}
	lp, err := c.Sys().ListPlugins(&vault.ListPluginsInput{})
	if err != nil || len(lp.Details) != 7 || !sameStrings(lp.PluginsByType[vault.PluginTypeSecrets], []string{"database", "kv", "transit"}) {
		t.Fatalf("Sys().ListPlugins = %+v %v", lp, err)
	}
	gp, err := c.Sys().GetPlugin(&vault.GetPluginInput{Name: "transit", Type: vault.PluginTypeSecrets})
	if err != nil || gp.Name != "transit" || !gp.Builtin || gp.DeprecationStatus != "supported" {
		t.Fatalf("Sys().GetPlugin = %+v %v", gp, err)
	}
	if keys := listKeys(t, c, "sys/plugins/catalog/database"); !sameStrings(keys, []string{"mysql-database-plugin", "postgresql-database-plugin"}) {
		t.Fatalf("catalog database list = %v", keys)
	}
	p, err := c.Logical().Read("sys/plugins/catalog/secret/kv")
	if err != nil || p.Data["name"] != "kv" || p.Data["builtin"] != true || p.Data["command"] != "" {
		t.Fatalf("catalog secret/kv = %v %v", p, err)
	}
	if p, err := c.Logical().Read("sys/plugins/catalog/secret/aws"); err != nil || p != nil {
		t.Fatalf("catalog secret/aws = %v %v, want 404", p, err)
	}
	_, err = c.Logical().Read("sys/plugins/catalog/widgets/x")
	respErr(t, err, 400, "not a supported plugin type")
	_, err = c.Logical().Write("sys/plugins/catalog/secret/mine", map[string]any{"sha256": "00", "command": "mine"})
	respErr(t, err, 400, "read-only")
	// The typed catalog paths need sudo, as in Vault.
	putPolicy(t, c, "catalog-reader", `path "sys/plugins/catalog/*" { capabilities = ["read", "list"] }`)
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"catalog-reader"}})
	_, err = s.Client(t, tok.ClientToken).Logical().Read("sys/plugins/catalog/secret/kv")
	denied(t, err)
}

// TestSysInFlightRequests: a slow request shows up in sys/in-flight-req, in Vault's bare shape
// (no envelope), and is gone once it finished.
func TestSysInFlightRequests(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	r, err := c.Logical().ReadRaw("sys/in-flight-req")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		t.Fatalf("in-flight-req body is not a map of requests: %v", err)
	}
	r.Body.Close()
	if len(m) != 1 {
		t.Fatalf("in-flight-req = %v, want itself only", m)
	}
	for id, e := range m {
		if len(id) != 36 || e["request_path"] != "/v1/sys/in-flight-req" || e["request_method"] != "GET" ||
			e["client_remote_address"] == "" || e["start_time"] == "" {
			t.Fatalf("in-flight entry %s = %v", id, e)
		}
		if _, ok := e["client_id"]; !ok {
			t.Fatalf("in-flight entry lacks client_id: %v", e)
		}
	}
	// A request whose body is still arriving is in flight; it is gone once answered.
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/sys/tools/hash", pr)
		req.Header.Set("X-Vault-Token", s.RootToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte(`{"input":`))
	seen := func(path string) bool {
		resp := raw(t, s.URL, http.MethodGet, "sys/in-flight-req", nil, tokenHeader(s.RootToken))
		return bytes.Contains(resp.Body, []byte(path))
	}
	eventually(t, 10*time.Second, "the half-sent request listed in sys/in-flight-req", func() bool { return seen("/v1/sys/tools/hash") })
	pw.Write([]byte(`"aGk="}`))
	pw.Close()
	wg.Wait()
	if seen("/v1/sys/tools/hash") {
		t.Fatal("a finished request is still listed as in flight")
	}
	_, err = c.Logical().Write("sys/in-flight-req", map[string]any{})
	respErr(t, err, 405, "unsupported")
}

// TestSysLoggers changes the running server's log level and reverts it, through the client.
func TestSysLoggers(t *testing.T) {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lv}))
	s := startServerLogged(t, commands.Options{Logger: logger, LogLevel: lv})
	c := s.Client(t, s.RootToken)
	read := func(path string) map[string]any {
		t.Helper()
		sec, err := c.Logical().Read(path)
		if err != nil {
			t.Fatal(err)
		}
		return sec.Data
	}
	if d := read("sys/loggers"); d["core"] != "warn" {
		t.Fatalf("loggers = %v", d)
	}
	if _, err := c.Logical().Write("sys/loggers", map[string]any{"level": "debug"}); err != nil {
		t.Fatal(err)
	}
	if lv.Level() != slog.LevelDebug || read("sys/loggers/core")["core"] != "debug" {
		t.Fatalf("level after POST debug = %v", lv.Level())
	}
	if !strings.Contains(buf.String(), "log level changed") {
		t.Fatalf("the change itself is not logged at the new level: %q", buf.String())
	}
	if _, err := c.Logical().Write("sys/loggers/core", map[string]any{"level": "trace"}); err != nil {
		t.Fatal(err)
	}
	if read("sys/loggers")["core"] != "trace" || lv.Level() != commands.LevelTrace {
		t.Fatalf("level after trace = %v", lv.Level())
	}
	if _, err := c.Logical().Delete("sys/loggers"); err != nil {
		t.Fatal(err)
	}
	if lv.Level() != slog.LevelWarn {
		t.Fatalf("DELETE sys/loggers left level %v, want the configured warn", lv.Level())
	}
	for _, tc := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"sys/loggers", map[string]any{"level": "loud"}, "invalid level"},
		{"sys/loggers", map[string]any{}, "level is required"},
		{"sys/loggers/router", map[string]any{"level": "debug"}, "not found"},
	} {
		_, err := c.Logical().Write(tc.path, tc.body)
		respErr(t, err, 400, tc.want)
	}
	if lv.Level() != slog.LevelWarn {
		t.Fatalf("a refused change moved the level to %v", lv.Level())
	}
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	_, err := s.Client(t, tok.ClientToken).Logical().Write("sys/loggers", map[string]any{"level": "debug"})
	denied(t, err)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
