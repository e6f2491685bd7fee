package main

// End-to-end tests: the CLI, run in-process through run(), against a real
// server on a loopback port (startTestServer: a dev server, initialized and
// unsealed, KV v2 at secret/; startUninitializedTestServer: a fresh one).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cli runs the CLI against one server as one user: its own HOME (so the
// token helper file is private to the test) and, by default, the root token.
type cli struct {
	t     *testing.T
	addr  string
	token string
	home  string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	addr, root := startTestServer(t)
	return &cli{t: t, addr: withScheme(addr), token: root, home: t.TempDir()}
}

func withScheme(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// env is the environment of one invocation; overrides with an empty value
// unset the variable.
func (c *cli) env(overrides ...string) map[string]string {
	env := map[string]string{"HOME": c.home, "VAULT_ADDR": c.addr, "VAULT_TOKEN": c.token}
	for i := 0; i+1 < len(overrides); i += 2 {
		if overrides[i+1] == "" {
			delete(env, overrides[i])
		} else {
			env[overrides[i]] = overrides[i+1]
		}
	}
	return env
}

func (c *cli) runEnv(env map[string]string, stdin string, args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, env, strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runEnv(c.env(), "", args...)
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("ledger %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// expect checks an invocation's exit code and that stderr contains want.
func expect(t *testing.T, r result, code int, stderrWant string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, stderrWant) {
		t.Fatalf("want exit %d and stderr containing %q, got %s", code, stderrWant, r)
	}
}

// hasRow reports whether a Key/Value table has the row "key   value".
func hasRow(table, key, value string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s+` + regexp.QuoteMeta(value) + `$`).MatchString(table)
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	return m
}

func writePolicyFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const webPolicy = `path "secret/data/web/*" {
  capabilities = ["read", "list"]
}
`

func TestE2EExercise1(t *testing.T) {
	t.Parallel()
	c := newCLI(t)

	out := c.ok("kv", "put", "secret/exercise/hello", "message=vault works")
	if !strings.Contains(out, "secret/data/exercise/hello") || !hasRow(out, "version", "1") {
		t.Errorf("kv put output lacks the path or version 1:\n%s", out)
	}
	if got := c.ok("kv", "get", "-field=message", "secret/exercise/hello"); got != "vault works\n" {
		t.Errorf("kv get -field=message printed %q, want %q", got, "vault works\n")
	}
	if out := c.ok("kv", "get", "secret/exercise/hello"); !hasRow(out, "message", "vault works") || !hasRow(out, "version", "1") {
		t.Errorf("kv get table lacks the data or metadata:\n%s", out)
	}
	got := decodeJSON(t, c.ok("kv", "get", "-format=json", "secret/exercise/hello"))
	if msg := mapOf(mapOf(got["data"])["data"])["message"]; msg != "vault works" {
		t.Errorf("kv get -format=json: data.data.message = %v\n%v", msg, got)
	}
	if got := c.runEnv(c.env("VAULT_FORMAT", "json"), "", "kv", "get", "-field=message", "secret/exercise/hello"); got.stdout != "\"vault works\"\n" {
		t.Errorf("VAULT_FORMAT=json -field printed %q", got.stdout)
	}
	// The generic read sees KV v2's API shape.
	if got := c.ok("read", "-format=json", "-field=data", "secret/data/exercise/hello"); !strings.Contains(got, `"message": "vault works"`) {
		t.Errorf("read -field=data printed %q", got)
	}
	// Mount given separately.
	if got := c.ok("kv", "get", "-mount=secret", "-field=message", "exercise/hello"); got != "vault works\n" {
		t.Errorf("kv get -mount=secret printed %q", got)
	}
}

func TestE2EStatusExitCodes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)

	out := c.ok("status")
	if !hasRow(out, "Initialized", "true") || !hasRow(out, "Sealed", "false") || !hasRow(out, "Seal Type", "shamir") {
		t.Errorf("status table:\n%s", out)
	}
	if got := decodeJSON(t, c.ok("status", "-format=json")); got["sealed"] != false || got["initialized"] != true {
		t.Errorf("status -format=json: %v", got)
	}

	r := c.runEnv(c.env("VAULT_ADDR", "http://127.0.0.1:1"), "", "status")
	expect(t, r, 1, "is the server running?")

	if out := c.ok("operator", "seal"); !strings.Contains(out, "Success! Ledger is sealed.") {
		t.Errorf("operator seal printed %q", out)
	}
	r = c.run("status")
	if r.code != 2 || !hasRow(r.stdout, "Sealed", "true") {
		t.Errorf("status of a sealed server: %s", r)
	}
	r = c.run("kv", "get", "secret/anything")
	expect(t, r, 2, "ledger operator unseal")
}

func TestE2EOperatorOnDevServer(t *testing.T) {
	t.Parallel()
	c := newCLI(t)

	if r := c.run("operator", "init", "-status"); r.code != 0 || !strings.Contains(r.stdout, "Ledger is initialized") {
		t.Errorf("operator init -status on an initialized server: %s", r)
	}
	expect(t, c.run("operator", "init", "-key-shares=1", "-key-threshold=1"), 2, "Error initializing")

	out := c.ok("operator", "key-status")
	if !hasRow(out, "Key Term", "1") {
		t.Errorf("key-status:\n%s", out)
	}
	out = c.ok("operator", "rotate")
	if !strings.Contains(out, "Success! Rotated key") || !hasRow(out, "Key Term", "2") {
		t.Errorf("rotate:\n%s", out)
	}
	// Data written before the rotation stays readable after it.
	c.ok("kv", "put", "secret/rotated", "a=b")

	c.ok("operator", "seal")
	out = c.ok("operator", "unseal", "-reset")
	if !hasRow(out, "Sealed", "true") || !hasRow(out, "Unseal Progress", "0/1") {
		t.Errorf("unseal -reset:\n%s", out)
	}
	// Without an argument the key is read from stdin (not a terminal here).
	r := c.runEnv(c.env(), "bm90LWEta2V5\n", "operator", "unseal")
	expect(t, r, 2, "Error unsealing")
}

func TestE2EOperatorInitUnsealFlow(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, addr: withScheme(startUninitializedTestServer(t)), home: t.TempDir()}
	noToken := c.env("VAULT_TOKEN", "")

	r := c.runEnv(noToken, "", "status")
	if r.code != 2 || !hasRow(r.stdout, "Initialized", "false") {
		t.Fatalf("status of an uninitialized server: %s", r)
	}
	if r := c.runEnv(noToken, "", "operator", "init", "-status"); r.code != 2 {
		t.Errorf("init -status before init: %s", r)
	}
	r = c.runEnv(noToken, "", "operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json")
	if r.code != 0 {
		t.Fatalf("operator init: %s", r)
	}
	var init initOutput
	if err := json.Unmarshal([]byte(r.stdout), &init); err != nil {
		t.Fatalf("init JSON: %v\n%s", err, r.stdout)
	}
	if len(init.UnsealKeysB64) != 3 || len(init.UnsealKeysHex) != 3 || init.UnsealShares != 3 || init.UnsealThreshold != 2 || init.RootToken == "" {
		t.Fatalf("init output: %+v", init)
	}
	if r := c.runEnv(noToken, "", "operator", "init", "-status"); r.code != 0 {
		t.Errorf("init -status after init: %s", r)
	}

	r = c.runEnv(noToken, "", "operator", "unseal", init.UnsealKeysB64[0])
	if r.code != 0 || !hasRow(r.stdout, "Sealed", "true") || !hasRow(r.stdout, "Unseal Progress", "1/2") {
		t.Fatalf("first unseal key: %s", r)
	}
	// The second share comes from stdin, as from a pipe.
	r = c.runEnv(noToken, init.UnsealKeysB64[1]+"\n", "operator", "unseal")
	if r.code != 0 || !hasRow(r.stdout, "Sealed", "false") {
		t.Fatalf("second unseal key: %s", r)
	}
	if r := c.runEnv(noToken, "", "status"); r.code != 0 {
		t.Errorf("status after unseal: %s", r)
	}

	// Log in with the root token, then work through the token helper file.
	if r := c.runEnv(noToken, "", "login", init.RootToken); r.code != 0 {
		t.Fatalf("login: %s", r)
	}
	c.runEnv(noToken, "", "secrets", "enable", "-path=secret", "kv-v2")
	if r := c.runEnv(noToken, "", "kv", "put", "secret/exercise/hello", "message=vault works"); r.code != 0 {
		t.Fatalf("kv put: %s", r)
	}
	if r := c.runEnv(noToken, "", "kv", "get", "-field=message", "secret/exercise/hello"); r.stdout != "vault works\n" {
		t.Errorf("kv get: %s", r)
	}
}

func TestE2EPolicy(t *testing.T) {
	t.Parallel()
	c := newCLI(t)

	if out := c.ok("policy", "write", "web", writePolicyFile(t, webPolicy)); !strings.Contains(out, "Success! Uploaded policy: web") {
		t.Errorf("policy write printed %q", out)
	}
	opsPolicy := "path \"sys/mounts\" {\n  capabilities = [\"read\"]\n}\n"
	if r := c.runEnv(c.env(), opsPolicy, "policy", "write", "Ops", "-"); r.code != 0 || !strings.Contains(r.stdout, "Uploaded policy: ops") {
		t.Fatalf("policy write from stdin (names are lower-cased): %s", r)
	}

	if got := c.ok("policy", "read", "web"); !strings.Contains(got, `path "secret/data/web/*"`) || !strings.Contains(got, `"read"`) {
		t.Errorf("policy read web:\n%s", got)
	}
	if got := decodeJSON(t, c.ok("policy", "read", "-format=json", "ops")); !strings.Contains(stringOf(got["policy"]), "sys/mounts") {
		t.Errorf("policy read -format=json: %v", got)
	}

	names := strings.Fields(c.ok("policy", "list"))
	if !slices.Contains(names, "web") || !slices.Contains(names, "ops") {
		t.Errorf("policy list = %q, want web and ops", names)
	}
	var listed []string
	if err := json.Unmarshal([]byte(c.ok("policy", "list", "-format=json")), &listed); err != nil || !slices.Contains(listed, "web") {
		t.Errorf("policy list -format=json = %v, %v", listed, err)
	}

	if out := c.ok("policy", "delete", "ops"); !strings.Contains(out, "Success! Deleted policy: ops") {
		t.Errorf("policy delete printed %q", out)
	}
	expect(t, c.run("policy", "read", "ops"), 2, "No policy named: ops")

}

func TestE2EToken(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("policy", "write", "web", writePolicyFile(t, webPolicy))
	c.ok("kv", "put", "secret/web/config", "color=blue")

	token := strings.TrimSpace(c.ok("token", "create", "-policy=web", "-ttl=1h", "-display-name=web-app", "-metadata=team=web", "-field=token"))
	if token == "" {
		t.Fatal("token create -field=token printed nothing")
	}
	out := c.ok("token", "create", "-policy=web", "-ttl=1h")
	if !hasRow(out, "token_duration", "1h") || !hasRow(out, "token_policies", `["default" "web"]`) && !hasRow(out, "token_policies", `["web"]`) {
		t.Errorf("token create table:\n%s", out)
	}

	lookup := decodeJSON(t, c.ok("token", "lookup", "-format=json", token))
	data := mapOf(lookup["data"])
	if !slices.Contains(stringsOf(data["policies"]), "web") {
		t.Errorf("token lookup: policies = %v", data["policies"])
	}
	if ttl := intOf(data["ttl"]); ttl <= 0 || ttl > 3600 {
		t.Errorf("token lookup: ttl = %v, want (0, 3600]", data["ttl"])
	}
	if out := c.runEnv(c.env("VAULT_TOKEN", token), "", "token", "lookup"); out.code != 0 || !strings.Contains(out.stdout, "web") {
		t.Errorf("token lookup (self): %s", out)
	}

	if got := c.ok("token", "capabilities", token, "secret/data/web/config"); got != "list, read\n" {
		t.Errorf("capabilities on an allowed path = %q, want %q", got, "list, read\n")
	}
	if got := c.ok("token", "capabilities", token, "secret/data/other"); got != "deny\n" {
		t.Errorf("capabilities on another path = %q, want deny", got)
	}
	if got := c.ok("token", "capabilities", "secret/data/web/config"); got != "root\n" {
		t.Errorf("capabilities of the root token = %q, want root", got)
	}

	// The new token can do what its policy says, and no more.
	asWeb := c.env("VAULT_TOKEN", token)
	if r := c.runEnv(asWeb, "", "kv", "get", "-field=color", "secret/web/config"); r.code != 0 || r.stdout != "blue\n" {
		t.Errorf("kv get as the web token: %s", r)
	}
	r := c.runEnv(asWeb, "", "kv", "put", "secret/web/config", "color=red")
	expect(t, r, 2, "permission denied")
	if strings.Contains(r.stderr, token) {
		t.Errorf("the token appears in an error message:\n%s", r.stderr)
	}

	if r := c.run("token", "renew", "-increment=30m", token); r.code != 0 {
		t.Errorf("token renew: %s", r)
	}
	if out := c.ok("token", "revoke", token); !strings.Contains(out, "Success! Revoked token") {
		t.Errorf("token revoke printed %q", out)
	}
	if r := c.run("token", "lookup", token); r.code != 2 {
		t.Errorf("lookup of a revoked token: %s", r)
	}
}

func TestE2EOutputPolicy(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	const read = "path \"secret/data/myapp/x\" {\n  capabilities = [\"read\"]\n}\n"
	const write = "path \"secret/data/myapp/x\" {\n  capabilities = [\"create\", \"update\"]\n}\n"

	if got := c.ok("kv", "get", "-output-policy", "secret/myapp/x"); got != read {
		t.Errorf("kv get -output-policy:\n%s\nwant:\n%s", got, read)
	}
	if got := c.ok("kv", "get", "-mount=secret", "-output-policy", "myapp/x"); got != read {
		t.Errorf("kv get -mount -output-policy:\n%s", got)
	}
	if got := c.ok("kv", "put", "-output-policy", "secret/myapp/x", "a=b"); got != write {
		t.Errorf("kv put -output-policy:\n%s\nwant:\n%s", got, write)
	}
	if got := c.ok("read", "-output-policy", "secret/data/myapp/x"); got != read {
		t.Errorf("read -output-policy:\n%s", got)
	}
	if got := c.ok("write", "-output-policy", "secret/data/myapp/x", "a=b"); got != write {
		t.Errorf("write -output-policy:\n%s", got)
	}
	// Nothing was written.
	expect(t, c.run("kv", "get", "secret/myapp/x"), 2, "No value found at secret/data/myapp/x")
}

func TestE2EKVLifecycle(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	const path = "secret/app/db"
	field := func(name string, extra ...string) string {
		t.Helper()
		return c.ok(append(append([]string{"kv", "get", "-field=" + name}, extra...), path)...)
	}

	c.ok("kv", "put", path, "user=alice", "pass=one")
	c.ok("kv", "put", "-cas=1", path, "user=alice", "pass=two")
	expect(t, c.run("kv", "put", "-cas=1", path, "user=mallory"), 2, "check-and-set")
	if got := field("pass", "-version=1"); got != "one\n" {
		t.Errorf("version 1 pass = %q", got)
	}

	c.ok("kv", "patch", path, "pass=three")
	if got, user := field("pass"), field("user"); got != "three\n" || user != "alice\n" {
		t.Errorf("after patch: pass %q user %q, want three and alice", got, user)
	}

	if out := c.ok("kv", "delete", path); !strings.Contains(out, "Success! Data deleted (if it existed) at: secret/data/app/db") {
		t.Errorf("kv delete printed %q", out)
	}
	if r := c.run("kv", "get", "-field=pass", path); r.code != 2 {
		t.Errorf("get of a deleted version: %s", r)
	}
	c.ok("kv", "undelete", "-versions=3", path)
	if got := field("pass"); got != "three\n" {
		t.Errorf("after undelete pass = %q", got)
	}
	c.ok("kv", "destroy", "-versions=1", path)

	md := decodeJSON(t, c.ok("kv", "metadata", "get", "-format=json", path))
	mdData := mapOf(md["data"])
	if intOf(mdData["current_version"]) != 3 || mapOf(mapOf(mdData["versions"])["1"])["destroyed"] != true {
		t.Errorf("metadata after destroy: %v", mdData)
	}
	if out := c.ok("kv", "metadata", "get", path); !strings.Contains(out, "Version 3") || !hasRow(out, "current_version", "3") {
		t.Errorf("metadata table:\n%s", out)
	}

	out := c.ok("kv", "rollback", "-version=2", path)
	if !hasRow(out, "version", "4") {
		t.Errorf("rollback output:\n%s", out)
	}
	if got := field("pass"); got != "two\n" {
		t.Errorf("after rollback pass = %q, want two", got)
	}
	expect(t, c.run("kv", "rollback", "-version=1", path), 2, "destroyed")

	if out := c.ok("kv", "list", "secret/app"); out != "Keys\n----\ndb\n" {
		t.Errorf("kv list = %q", out)
	}
	var keys []string
	if err := json.Unmarshal([]byte(c.ok("kv", "list", "-format=json", "secret/")), &keys); err != nil || !slices.Contains(keys, "app/") {
		t.Errorf("kv list -format=json = %v, %v", keys, err)
	}

	c.ok("kv", "metadata", "put", "-max-versions=5", "-custom-metadata=owner=web", path)
	mdData = mapOf(decodeJSON(t, c.ok("kv", "metadata", "get", "-format=json", path))["data"])
	if intOf(mdData["max_versions"]) != 5 || mapOf(mdData["custom_metadata"])["owner"] != "web" {
		t.Errorf("metadata after metadata put: %v", mdData)
	}
	c.ok("kv", "metadata", "delete", path)
	expect(t, c.run("kv", "get", path), 2, "No value found")

	// Data from a JSON object on stdin, and from a file.
	if r := c.runEnv(c.env(), `{"a":"from-stdin","n":5}`, "kv", "put", "secret/app/json", "-"); r.code != 0 {
		t.Fatalf("kv put from stdin: %s", r)
	}
	if got := c.ok("kv", "get", "-field=a", "secret/app/json"); got != "from-stdin\n" {
		t.Errorf("value from stdin = %q", got)
	}
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600)
	c.ok("kv", "put", "secret/app/cert", "pem=@"+certFile)
	if got := c.ok("kv", "get", "-field=pem", "secret/app/cert"); got != "-----BEGIN CERTIFICATE-----\n\n" {
		t.Errorf("value from file = %q", got)
	}
}

func TestE2ELoginAndTokenHelper(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	noToken := c.env("VAULT_TOKEN", "")

	r := c.runEnv(noToken, "", "login", c.token)
	if r.code != 0 || !strings.Contains(r.stdout, "Success! You are now authenticated") || !hasRow(r.stdout, "token", c.token) {
		t.Fatalf("login: %s", r)
	}
	tokenFile := filepath.Join(c.home, ".ledger-token")
	info, err := os.Stat(tokenFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token helper file: %v, %v; want mode 0600", info, err)
	}
	if b, _ := os.ReadFile(tokenFile); strings.TrimSpace(string(b)) != c.token {
		t.Errorf("token helper file holds %q", b)
	}
	// Later commands use the stored token.
	if r := c.runEnv(noToken, "", "kv", "put", "secret/after-login", "a=b"); r.code != 0 {
		t.Errorf("command after login: %s", r)
	}

	// -token-only prints the token alone and stores nothing.
	other := &cli{t: t, addr: c.addr, home: t.TempDir()}
	r = other.runEnv(other.env("VAULT_TOKEN", ""), "", "login", "-token-only", c.token)
	if r.code != 0 || r.stdout != c.token+"\n" {
		t.Errorf("login -token-only: %s", r)
	}
	if _, err := os.Stat(filepath.Join(other.home, ".ledger-token")); !os.IsNotExist(err) {
		t.Errorf("login -token-only stored a token (stat: %v)", err)
	}
	// "-" reads the token from stdin.
	if r := other.runEnv(other.env("VAULT_TOKEN", ""), c.token+"\n", "login", "-no-store", "-"); r.code != 0 {
		t.Errorf("login -: %s", r)
	}
	// A bad token fails as a server error and is not echoed.
	r = other.runEnv(other.env("VAULT_TOKEN", ""), "", "login", "not-a-real-token")
	expect(t, r, 2, "Error authenticating")
	if strings.Contains(r.stderr, "not-a-real-token") {
		t.Errorf("the rejected token appears in the error:\n%s", r.stderr)
	}
}

func TestE2ESecretsEnginesAndGenericCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)

	if out := c.ok("secrets", "enable", "-path=kv1", "-description=legacy", "kv"); !strings.Contains(out, "Success! Enabled the kv secrets engine at: kv1/") {
		t.Errorf("secrets enable printed %q", out)
	}
	c.ok("secrets", "enable", "-path=team", "kv-v2")
	out := c.ok("secrets", "list")
	for _, p := range []string{"kv1/", "team/", "secret/"} {
		if !strings.Contains(out, p) {
			t.Errorf("secrets list lacks %s:\n%s", p, out)
		}
	}
	mounts := decodeJSON(t, c.ok("secrets", "list", "-format=json"))
	if v := stringOf(mapOf(mapOf(mounts["team/"])["options"])["version"]); v != "2" {
		t.Errorf("team/ options.version = %q, want 2 (%v)", v, mounts["team/"])
	}

	// KV v1 through the kv commands.
	if out := c.ok("kv", "put", "kv1/app", "a=1"); out != "Success! Data written to: kv1/app\n" {
		t.Errorf("kv put on v1 printed %q", out)
	}
	if got := c.ok("kv", "get", "-field=a", "kv1/app"); got != "1\n" {
		t.Errorf("kv get on v1 = %q", got)
	}
	if out := c.ok("kv", "put", "team/app", "a=2"); !strings.Contains(out, "team/data/app") {
		t.Errorf("kv put on team/ (v2):\n%s", out)
	}

	// Generic commands.
	if out := c.ok("write", "kv1/x", "b=2"); out != "Success! Data written to: kv1/x\n" {
		t.Errorf("write printed %q", out)
	}
	if got := c.ok("read", "-field=b", "kv1/x"); got != "2\n" {
		t.Errorf("read -field=b = %q", got)
	}
	if out := c.ok("read", "kv1/x"); !hasRow(out, "b", "2") {
		t.Errorf("read table:\n%s", out)
	}
	if out := c.ok("list", "kv1"); out != "Keys\n----\napp\nx\n" {
		t.Errorf("list = %q", out)
	}
	if out := c.ok("delete", "kv1/x"); out != "Success! Data deleted (if it existed) at: kv1/x\n" {
		t.Errorf("delete printed %q", out)
	}
	expect(t, c.run("read", "kv1/x"), 2, "No value found at kv1/x")

	if out := c.ok("secrets", "tune", "-default-lease-ttl=1h", "kv1"); !strings.Contains(out, "Success! Tuned the secrets engine at: kv1/") {
		t.Errorf("secrets tune printed %q", out)
	}
	if out := c.ok("secrets", "disable", "kv1"); !strings.Contains(out, "Success! Disabled the secrets engine (if it existed) at: kv1/") {
		t.Errorf("secrets disable printed %q", out)
	}
	if out := c.ok("secrets", "list"); strings.Contains(out, "kv1/") {
		t.Errorf("secrets list after disable:\n%s", out)
	}
}
