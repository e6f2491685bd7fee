package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestNormaliseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "long flag with value", in: []string{"kv", "get", "-field=message", "secret/x"}, want: []string{"kv", "get", "--field=message", "secret/x"}},
		{name: "long bool flag", in: []string{"server", "-dev"}, want: []string{"server", "--dev"}},
		{name: "value as next arg", in: []string{"-address", "http://x:1", "status"}, want: []string{"--address", "http://x:1", "status"}},
		{name: "double dash untouched", in: []string{"--format=json", "status"}, want: []string{"--format=json", "status"}},
		{name: "single letter untouched", in: []string{"write", "-f", "x"}, want: []string{"write", "-f", "x"}},
		{name: "single letter with value untouched", in: []string{"-h"}, want: []string{"-h"}},
		{name: "lone dash is stdin", in: []string{"write", "secret/x", "-"}, want: []string{"write", "secret/x", "-"}},
		{name: "after -- untouched", in: []string{"kv", "put", "--", "-weird=1", "-x"}, want: []string{"kv", "put", "--", "-weird=1", "-x"}},
		{name: "positional untouched", in: []string{"write", "secret/x", "a=-b", "k=v"}, want: []string{"write", "secret/x", "a=-b", "k=v"}},
		{name: "negative number untouched", in: []string{"kv", "put", "-cas", "-1"}, want: []string{"kv", "put", "--cas", "-1"}},
		{name: "empty", in: []string{}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := normaliseArgs(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("normaliseArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	apiErr := &APIError{Method: "GET", URL: "http://x/v1/y", StatusCode: 403, Errors: []string{"permission denied"}}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "local error", err: errors.New("boom"), want: 1},
		{name: "api error", err: apiErr, want: 2},
		{name: "wrapped api error", err: fail("reading x", apiErr), want: 2},
		{name: "usage error", err: &usageError{err: errors.New("too many arguments")}, want: 2},
		{name: "cobra unknown command", err: errors.New(`unknown command "x" for "ledger"`), want: 2},
		{name: "explicit code wins", err: &cliError{op: "checking seal status", err: apiErr, code: 1}, want: 1},
		{name: "exit status", err: exitStatus(2), want: 2},
		{name: "connection refused", err: fail("reading x", fmt.Errorf("dial: %w", syscall.ECONNREFUSED)), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestHint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		sentToken bool
		want      string // substring; "" means no hint
	}{
		{name: "sealed", err: &APIError{StatusCode: http.StatusServiceUnavailable, Errors: []string{"Vault is sealed"}}, want: "ledger operator unseal"},
		{name: "connection refused", err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED), want: "is the server running? Set -address or VAULT_ADDR"},
		{name: "http server, https address", err: errors.New(`Get "https://127.0.0.1:8200/v1/x": http: server gave HTTP response to HTTPS client`), want: "-address=http://127.0.0.1:8200"},
		{name: "forbidden without token", err: &APIError{StatusCode: http.StatusForbidden, Errors: []string{"permission denied"}}, want: "ledger login"},
		{name: "forbidden with token", err: &APIError{StatusCode: http.StatusForbidden, Errors: []string{"permission denied"}}, sentToken: true, want: "token capabilities"},
		{name: "not initialized", err: &APIError{StatusCode: http.StatusNotImplemented}, want: "ledger operator init"},
		{name: "bad request", err: &APIError{StatusCode: http.StatusBadRequest, Errors: []string{"bad"}}, want: ""},
		{name: "explicit hint", err: &cliError{op: "x", err: errors.New("y"), hint: "do z"}, want: "do z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &app{env: map[string]string{}, usedAddress: "https://127.0.0.1:8200", sentToken: tt.sentToken}
			got := a.hint(tt.err)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("hint = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

// runOffline runs the CLI with no server: for usage errors and local work.
func runOffline(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if env == nil {
		env = map[string]string{"HOME": t.TempDir()}
	}
	code := run(args, env, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestRunUsageAndLocalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "help", args: []string{"-h"}, wantCode: 0},
		{name: "single-dash help", args: []string{"kv", "get", "-help"}, wantCode: 0},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: "unknown command"},
		{name: "unknown subcommand", args: []string{"kv", "frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"read", "-bogus", "x"}, wantCode: 2, wantStderr: "unknown flag"},
		{name: "missing argument", args: []string{"kv", "get"}, wantCode: 2, wantStderr: "not enough arguments (expected 1, got 0)"},
		{name: "too many arguments", args: []string{"delete", "a", "b"}, wantCode: 2, wantStderr: "too many arguments (expected 1, got 2)"},
		{name: "bad format", args: []string{"read", "-format=xml", "x"}, wantCode: 2, wantStderr: "invalid output format"},
		{name: "write without data", args: []string{"write", "secret/x"}, wantCode: 1, wantStderr: "Must supply data or use -force"},
		{name: "bad address", args: []string{"status", "-address=127.0.0.1:8200"}, wantCode: 1, wantStderr: "must start with http:// or https://"},
		{name: "nothing listening", args: []string{"read", "-address=http://127.0.0.1:1", "secret/x"}, wantCode: 1, wantStderr: "Error reading secret/x"},
		{name: "status, nothing listening", args: []string{"status", "-address=http://127.0.0.1:1"}, wantCode: 1, wantStderr: "is the server running?"},
		{name: "rollback without version", args: []string{"kv", "rollback", "secret/x"}, wantCode: 2, wantStderr: "-version=N"},
		{name: "lease force without prefix", args: []string{"lease", "revoke", "-force", "x"}, wantCode: 2, wantStderr: "-force requires -prefix"},
		{name: "revoke without token", args: []string{"token", "revoke"}, wantCode: 2, wantStderr: "-self"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runOffline(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr: %s)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestRunOutputPolicyOffline(t *testing.T) {
	t.Parallel()
	// read and write -output-policy never contact the server.
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"read", "-output-policy", "secret/data/myapp/x"}, want: "path \"secret/data/myapp/x\" {\n  capabilities = [\"read\"]\n}\n"},
		{args: []string{"write", "-output-policy", "/secret/foo/", "a=b"}, want: "path \"secret/foo\" {\n  capabilities = [\"create\", \"update\"]\n}\n"},
		{args: []string{"write", "-output-policy", "sys/seal"}, want: "path \"sys/seal\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": t.TempDir(), "VAULT_ADDR": "http://127.0.0.1:1"}
			stdout, stderr, code := runOffline(t, env, tt.args...)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %s", code, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout = %q, want %q", stdout, tt.want)
			}
		})
	}
}

func TestRunPolicyFmt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := dir + "/web.hcl"
	if err := os.WriteFile(path, []byte("path \"secret/*\" {\ncapabilities=[\"read\"]\n}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runOffline(t, nil, "policy", "fmt", path)
	if code != 0 || stdout != "Success! Formatted policy: "+path+"\n" {
		t.Fatalf("policy fmt: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	got, _ := os.ReadFile(path)
	if want := "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n"; string(got) != want {
		t.Errorf("formatted file:\n%s\nwant:\n%s", got, want)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Errorf("policy fmt changed the file mode to %o", info.Mode().Perm())
	}

	var out, errOut bytes.Buffer
	code = run([]string{"policy", "fmt", "-"}, map[string]string{}, strings.NewReader("path \"a\" {capabilities=[\"list\"]}"), &out, &errOut)
	if code != 0 || out.String() != "path \"a\" { capabilities = [\"list\"] }\n" {
		t.Errorf("policy fmt -: exit %d, %q, %q", code, out.String(), errOut.String())
	}

	if err := os.WriteFile(path, []byte("path \"x\" {"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runOffline(t, nil, "policy", "fmt", path)
	if code != 1 || !strings.Contains(stderr, "Error formatting policy") {
		t.Errorf("invalid policy: exit %d, stderr %q", code, stderr)
	}
}
