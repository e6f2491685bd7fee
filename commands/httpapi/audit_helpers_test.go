package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// Helpers shared by the audit_*_test.go files.

// startServerWith is startServer with Core options (checkpoint cadence, retention).
func startServerWith(t testing.TB, o commands.Options) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	logger := o.Logger
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	core, err := commands.New(ctx, l, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(httpapi.New(core, httpapi.Options{Logger: logger}))
	t.Cleanup(func() {
		hs.Close()
		core.Close()
		l.Close()
	})
	res, err := core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	s := &testServer{URL: hs.URL, RootToken: res.RootToken, UnsealKey: base64.StdEncoding.EncodeToString(res.Keys[0]), Dir: dir, Core: core, Log: l}
	if err := s.Client(t, res.RootToken).Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// auditLine is one decoded line of an audit device.
type auditLine struct {
	Raw     string
	Time    string `json:"time"`
	Type    string `json:"type"`
	Error   string `json:"error"`
	Auth    map[string]any
	Request struct {
		ID                  string         `json:"id"`
		Operation           string         `json:"operation"`
		Path                string         `json:"path"`
		ClientToken         string         `json:"client_token"`
		ClientTokenAccessor string         `json:"client_token_accessor"`
		MountType           string         `json:"mount_type"`
		Data                map[string]any `json:"data"`
		RemoteAddress       string         `json:"remote_address"`
	} `json:"request"`
	Response *struct {
		Data   map[string]any `json:"data"`
		Auth   map[string]any `json:"auth"`
		Secret map[string]any `json:"secret"`
	} `json:"response"`
	Ledger *struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Index  uint32 `json:"index"`
	} `json:"ledger"`
}

// readAuditFile decodes every complete line of an audit file; a line that is not JSON fails
// the test. A last line without its newline is one the device is still writing (a read may
// land in the middle of a write) and is left for the next read.
func readAuditFile(t *testing.T, path string) []auditLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	return parseAuditLines(t, b[:bytes.LastIndexByte(b, '\n')+1])
}

func parseAuditLines(t *testing.T, b []byte) []auditLine {
	t.Helper()
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %v: %q", err, trunc(sc.Bytes()))
		}
		l.Raw = sc.Text()
		out = append(out, l)
	}
	return out
}

// find returns the lines of type typ for op on path.
func find(lines []auditLine, typ, op, path string) []auditLine {
	var out []auditLine
	for _, l := range lines {
		if l.Type == typ && l.Request.Operation == op && l.Request.Path == path {
			out = append(out, l)
		}
	}
	return out
}

// waitForLines polls an audit file until cond holds on its lines.
func waitForLines(t *testing.T, path string, timeout time.Duration, what string, cond func([]auditLine) bool) []auditLine {
	t.Helper()
	var lines []auditLine
	eventually(t, timeout, what, func() bool {
		lines = readAuditFile(t, path)
		return cond(lines)
	})
	return lines
}

func containsAny(hay string, needles ...string) string {
	for _, n := range needles {
		if n != "" && strings.Contains(hay, n) {
			return n
		}
	}
	return ""
}

// sysLedger reads a sys/ledger/audit endpoint with raw HTTP and returns its data.
func sysLedger(t *testing.T, s *testServer, token, method, path string) (int, map[string]any) {
	t.Helper()
	r := raw(t, s.URL, method, "sys/ledger/audit/"+path, nil, tokenHeader(token))
	if r.Status >= 400 {
		return r.Status, map[string]any{"errors": r.errs(t)}
	}
	env := r.json(t)
	data, _ := env["data"].(map[string]any)
	return r.Status, data
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
