package main

// The lesson's Part 8, run for real: `ledger agent` as its own process with
// the lesson's vault-agent.hcl and db.tpl (the auth method switched to
// AppRole, the paths moved into a temp dir), against a Ledger server and
// the test's PostgreSQL prepared as the lesson's Part 7 leaves it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/engines/kubernetes/k8stest"
)

const lessonDir = "internal/agent/config/testdata/"

// lessonAgentConfig is the lesson's file with the method switched to
// AppRole and every path moved under dir; proc is the name of the
// process the template's command signals.
func lessonAgentConfig(t *testing.T, dir, roleIDFile, secretIDFile, proc string) string {
	t.Helper()
	src, err := os.ReadFile(lessonDir + "lesson-vault-agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, r := range [][2]string{
		{"method \"kubernetes\" {\nmount_path = \"auth/kubernetes\"\nconfig = {\nrole = \"myapp\"\n}\n}",
			"method \"approle\" {\nmount_path = \"auth/approle\"\nconfig = {\nrole_id_file_path = \"" + roleIDFile + "\"\nsecret_id_file_path = \"" + secretIDFile + "\"\n}\n}"},
		{"/tmp/vault-token", filepath.Join(dir, "vault-token")},
		{"/etc/vault/templates/db.tpl", filepath.Join(dir, "templates/db.tpl")},
		{"/app/config/database.env", filepath.Join(dir, "app/config/database.env")},
		// The one change that is not a path: a process name no other
		// process on this machine has, so the test signals only its own.
		{"pkill -HUP myapp", "pkill -HUP " + proc},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the lesson's file no longer contains %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	tpl, err := os.ReadFile(lessonDir + "lesson-db.tpl")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "templates/db.tpl", string(tpl), 0o644)
	return writeFile(t, dir, "vault-agent.hcl", s, 0o600)
}

// lessonDatabase is the lesson's Part 7 steps 2 and 3 on srv.
func lessonDatabase(t *testing.T, c *cli, l *dbtest.Lesson) {
	t.Helper()
	c.ok("secrets", "enable", "database")
	c.ok("write", "database/config/production-db", "plugin_name="+l.Plugin, "connection_url="+l.ConnectionURL,
		"allowed_roles=app-readonly,app-readwrite,app-short", "username="+l.AdminUser, "password="+l.AdminPassword)
	c.ok("write", "-f", "database/rotate-root/production-db")
	c.ok("write", "database/roles/app-readonly", "db_name=production-db", "creation_statements="+l.Readonly,
		"revocation_statements="+l.Revocation, "default_ttl=1h", "max_ttl=24h")
}

// myapp starts a process named name that logs each SIGHUP to the returned file.
func myapp(t *testing.T, dir, name string) string {
	t.Helper()
	log := filepath.Join(dir, name+".log")
	script := writeFile(t, dir, "bin/"+name, "#!/bin/sh\ntrap 'echo reload >> "+log+"' HUP\nwhile :; do sleep 0.1; done\n", 0o755)
	cmd := exec.Command(script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return log
}

func randomName(prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// onlyLease returns the one lease under prefix.
func onlyLease(t *testing.T, c *cli, prefix string) string {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(c.ok("list", "-format=json", "sys/leases/lookup/"+prefix), "\n") {
		line = strings.Trim(strings.TrimSpace(line), `",[]`)
		if line != "" {
			keys = append(keys, line)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("leases under %s: %q, want exactly one", prefix, keys)
	}
	return prefix + keys[0]
}

func credFrom(env map[string]string) dbCred {
	return dbCred{username: env["DB_USER"], password: env["DB_PASS"]}
}

func TestAgentLessonPart8(t *testing.T) {
	t.Parallel()
	needTool(t, "pkill", "procps")
	l := dbtest.LessonPostgres(t)
	srv := startRestartable(t)
	c := srv.cli(t)
	lessonDatabase(t, c, l)

	dir := t.TempDir()
	roleIDFile, secretIDFile := approleFor(t, c, dir, "myapp",
		`path "database/creds/app-readonly" { capabilities = ["read"] }`, "token_ttl=1h")
	proc := randomName("myapp-")
	reloads := myapp(t, dir, proc)
	cfg := lessonAgentConfig(t, dir, roleIDFile, secretIDFile, proc)
	// The file keeps the lesson's https://vault.example.com:8200; as with
	// Vault Agent, -address takes precedence over it.
	startAgent(t, nil, "-config="+cfg, "-address="+srv.url(), "-lease-check-interval=300ms")

	dbEnv := filepath.Join(dir, "app/config/database.env")
	// 1. Authenticates (AppRole here): the token reaches the sink, and the
	// secret ID file is gone (remove_secret_id_file_after_reading).
	sink := filepath.Join(dir, "vault-token")
	eventually(t, 20*time.Second, "token in the sink", func() bool { _, err := os.Stat(sink); return err == nil })
	if fi, _ := os.Stat(sink); fi.Mode().Perm() != 0o640 {
		t.Errorf("sink mode %o, want Vault's default 0640", fi.Mode().Perm())
	}
	tok, _ := os.ReadFile(sink)
	self := c.runEnv(map[string]string{"VAULT_ADDR": srv.url(), "VAULT_TOKEN": string(tok)}, "", "token", "lookup", "-format=json")
	if self.code != 0 || !strings.Contains(self.stdout, `"myapp"`) {
		t.Fatalf("the sink's token does not carry the myapp policy: %s", self)
	}
	if _, err := os.Stat(secretIDFile); !os.IsNotExist(err) {
		t.Errorf("secret ID file still there after login (err %v)", err)
	}

	// 2 and 3. Renders the template with live credentials into
	// database.env, mode 0600.
	eventually(t, 20*time.Second, "database.env rendered", func() bool { return envFile(dbEnv)["DB_USER"] != "" })
	fi, err := os.Stat(dbEnv)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database.env: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	env := envFile(dbEnv)
	if env["DB_HOST"] != "db.example.com" {
		t.Errorf("DB_HOST = %q", env["DB_HOST"])
	}
	first := credFrom(env)
	l.CleanupUser(t, first.username)
	dbCountUsers(t, l, first)

	// 4. Signals the app to reload.
	eventually(t, 10*time.Second, "myapp got SIGHUP", func() bool {
		b, _ := os.ReadFile(reloads)
		return strings.Contains(string(b), "reload")
	})

	// A revoked credential is noticed and replaced within seconds.
	lease := onlyLease(t, c, "database/creds/app-readonly/")
	c.ok("lease", "revoke", lease)
	dbDead(t, l, first, 10*time.Second)
	eventually(t, 10*time.Second, "a new credential after revoke", func() bool {
		u := envFile(dbEnv)["DB_USER"]
		return u != "" && u != first.username
	})
	second := credFrom(envFile(dbEnv))
	l.CleanupUser(t, second.username)
	dbCountUsers(t, l, second)
	eventually(t, 10*time.Second, "myapp reloaded again", func() bool {
		b, _ := os.ReadFile(reloads)
		return strings.Count(string(b), "reload") >= 2
	})

	// The server restarts (sealed) and is unsealed: the agent carries on by
	// itself — the file keeps its working credential meanwhile, and a
	// revocation after the restart is handled like before.
	srv.restart(time.Second)
	if got := credFrom(envFile(dbEnv)); got.username != second.username {
		t.Fatalf("database.env changed across the restart: %q", got.username)
	}
	lease = onlyLease(t, c, "database/creds/app-readonly/")
	c.ok("lease", "revoke", lease)
	eventually(t, 20*time.Second, "a new credential after the restart", func() bool {
		u := envFile(dbEnv)["DB_USER"]
		return u != "" && u != second.username
	})
	third := credFrom(envFile(dbEnv))
	l.CleanupUser(t, third.username)
	dbCountUsers(t, l, third)
	if _, err := l.Login(context.Background(), second.username, second.password, "SELECT 1"); err == nil {
		t.Errorf("the revoked %s still logs in", second.username)
	}
}

// The lesson's steps 5 and 6 on a role with short TTLs: the lease is
// renewed past its TTL, and when its max TTL ends the template holds a new
// working credential; a KV change is re-rendered within
// static_secret_render_interval.
func TestAgentLeaseLifecycle(t *testing.T) {
	t.Parallel()
	l := dbtest.LessonPostgres(t)
	srv := startRestartable(t)
	c := srv.cli(t)
	lessonDatabase(t, c, l)
	c.ok("write", "database/roles/app-short", "db_name=production-db", "creation_statements="+l.Readonly,
		"revocation_statements="+l.Revocation, "default_ttl=3s", "max_ttl=9s")
	c.ok("secrets", "enable", "-path=secret", "-version=2", "kv")
	c.ok("kv", "put", "secret/myapp/config", "mode=blue")

	dir := t.TempDir()
	roleIDFile, secretIDFile := approleFor(t, c, dir, "short",
		`path "database/creds/app-short" { capabilities = ["read"] }
path "secret/data/myapp/config" { capabilities = ["read"] }`, "token_ttl=1h")
	cfg := writeFile(t, dir, "agent.hcl", `
vault { address = "`+srv.url()+`" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "`+roleIDFile+`"
      secret_id_file_path = "`+secretIDFile+`"
    }
  }
}
template_config { static_secret_render_interval = "1s" }
template {
  contents = "{{ with secret \"database/creds/app-short\" }}DB_USER={{ .Data.username }}\nDB_PASS={{ .Data.password }}\n{{ end }}"
  destination = "`+dir+`/out/db.env"
  perms = 0600
}
template {
  contents = "{{ with secret \"secret/data/myapp/config\" }}MODE={{ .Data.data.mode }}{{ end }}\n"
  destination = "`+dir+`/out/app.env"
  perms = "0640"
  backup = true
}
`, 0o600)
	startAgent(t, nil, "-config="+cfg)

	dbEnv, appEnv := filepath.Join(dir, "out/db.env"), filepath.Join(dir, "out/app.env")
	eventually(t, 20*time.Second, "both files rendered", func() bool {
		return envFile(dbEnv)["DB_USER"] != "" && envFile(appEnv)["MODE"] == "blue"
	})
	if fi, _ := os.Stat(appEnv); fi.Mode().Perm() != 0o640 {
		t.Errorf("app.env mode %o, want 0640", fi.Mode().Perm())
	}
	first := credFrom(envFile(dbEnv))
	l.CleanupUser(t, first.username)
	issued := time.Now()

	// 5. Renews the lease before it expires: past its 3s TTL the same
	// credential still works.
	time.Sleep(4500 * time.Millisecond)
	if got := credFrom(envFile(dbEnv)); got.username == first.username {
		dbCountUsers(t, l, first)
	} else if time.Since(issued) < 5*time.Second {
		t.Fatalf("credential replaced after %s instead of renewed", time.Since(issued))
	}

	// 6. Re-renders with new credentials when the old ones expire (max TTL
	// 9s): a new working user.
	eventually(t, 15*time.Second, "a new credential at max TTL", func() bool {
		u := envFile(dbEnv)["DB_USER"]
		return u != "" && u != first.username
	})
	second := credFrom(envFile(dbEnv))
	l.CleanupUser(t, second.username)
	t.Logf("new credential %s after the first was seen (max TTL 9s)", time.Since(issued).Round(100*time.Millisecond))
	dbCountUsers(t, l, second)

	// A KV change reaches the file within the 1s interval (plus a render);
	// the previous content is kept as a backup.
	c.ok("kv", "put", "secret/myapp/config", "mode=green")
	start := time.Now()
	eventually(t, 5*time.Second, "KV change rendered", func() bool { return envFile(appEnv)["MODE"] == "green" })
	t.Logf("KV change reached the file in %s", time.Since(start).Round(10*time.Millisecond))
	if b, err := os.ReadFile(appEnv + ".bak"); err != nil || !strings.Contains(string(b), "MODE=blue") {
		t.Errorf("backup: %q, %v", b, err)
	}
}

// exec: the child gets env_template variables, is restarted with
// restart_stop_signal when they change, receives the agent's signals, and
// the agent exits with its exit code.
func TestAgentExec(t *testing.T) {
	t.Parallel()
	srv := startRestartable(t)
	c := srv.cli(t)
	c.ok("secrets", "enable", "-path=secret", "-version=2", "kv")
	c.ok("kv", "put", "secret/myapp/config", "mode=blue")
	dir := t.TempDir()
	roleIDFile, secretIDFile := approleFor(t, c, dir, "exec",
		`path "secret/data/myapp/config" { capabilities = ["read"] }`)
	log := filepath.Join(dir, "child.log")
	child := writeFile(t, dir, "bin/child", `#!/bin/sh
echo "start $APP_MODE" >> `+log+`
trap 'echo "stop $APP_MODE" >> `+log+`; exit 0' USR2
trap 'echo "usr1 $APP_MODE" >> `+log+`' USR1
trap 'echo "term $APP_MODE" >> `+log+`; exit 7' TERM
while :; do sleep 0.1; done
`, 0o755)
	cfg := writeFile(t, dir, "agent.hcl", `
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "`+roleIDFile+`"
      secret_id_file_path = "`+secretIDFile+`"
    }
  }
}
template_config { static_secret_render_interval = "1s" }
env_template "APP_MODE" {
  contents = "{{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.mode }}{{ end }}"
  error_on_missing_key = true
}
exec {
  command = ["`+child+`"]
  restart_on_secret_changes = "always"
  restart_stop_signal = "SIGUSR2"
}
`, 0o600)
	p := startAgent(t, []string{"VAULT_ADDR=" + srv.url()}, "-config="+cfg)
	has := func(s string) func() bool {
		return func() bool { b, _ := os.ReadFile(log); return strings.Contains(string(b), s) }
	}
	eventually(t, 20*time.Second, "child started with APP_MODE=blue", has("start blue\n"))

	c.ok("kv", "put", "secret/myapp/config", "mode=green")
	eventually(t, 10*time.Second, "child restarted with APP_MODE=green", has("start green\n"))
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "start blue\nstop blue\nstart green\n") {
		t.Fatalf("child log %q: want the old child stopped by SIGUSR2 before the new one started", b)
	}

	p.signal(syscall.SIGUSR1)
	eventually(t, 5*time.Second, "SIGUSR1 passed to the child", has("usr1 green\n"))
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 7 {
		t.Fatalf("agent exit code %d, want the child's 7; log %q", code, b)
	}
	eventually(t, time.Second, "SIGTERM passed to the child", has("term green\n"))
}

// api_proxy + cache: requests through the agent's listener carry the
// auto-auth token; a leased secret is served from the cache to the same
// token and request; a revocation through the proxy or on the server
// evicts it; the health endpoint reports the agent's state.
func TestAgentAPIProxyCache(t *testing.T) {
	t.Parallel()
	l := dbtest.LessonPostgres(t)
	srv := startRestartable(t)
	c := srv.cli(t)
	lessonDatabase(t, c, l)
	c.ok("secrets", "enable", "-path=secret", "-version=2", "kv")
	c.ok("kv", "put", "secret/myapp/config", "mode=blue")
	dir := t.TempDir()
	roleIDFile, secretIDFile := approleFor(t, c, dir, "proxy", `
path "database/creds/app-readonly" { capabilities = ["read"] }
path "secret/data/myapp/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }
`)
	addr := freeAddr(t)
	cfg := writeFile(t, dir, "agent.hcl", `
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "`+roleIDFile+`"
      secret_id_file_path = "`+secretIDFile+`"
    }
  }
  sink "file" { config = { path = "`+dir+`/sink/token" mode = 0600 } }
}
api_proxy { use_auto_auth_token = true }
listener "tcp" {
  address = "`+addr+`"
  tls_disable = true
}
cache {}
`, 0o600)
	os.Mkdir(filepath.Join(dir, "sink"), 0o700)
	p := startAgent(t, []string{"VAULT_ADDR=" + srv.url()}, "-config="+cfg, "-lease-check-interval=300ms")
	eventually(t, 20*time.Second, "agent healthy", func() bool { code, _ := agentHealth(addr); return code == 200 })

	// No token in the request: the agent adds its own.
	agent := &cli{t: t, addr: "http://" + addr, home: t.TempDir()}
	if out := agent.ok("kv", "get", "-field=mode", "secret/myapp/config"); strings.TrimSpace(out) != "blue" {
		t.Fatalf("kv get through the agent: %q", out)
	}
	read := func() (dbCred, string) {
		resp, err := http.Get("http://" + addr + "/v1/database/creds/app-readonly")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			LeaseID string `json:"lease_id"`
			Data    struct{ Username, Password string }
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
			t.Fatalf("read creds through the agent: %d", resp.StatusCode)
		}
		l.CleanupUser(t, body.Data.Username)
		return dbCred{leaseID: body.LeaseID, username: body.Data.Username, password: body.Data.Password}, resp.Header.Get("X-Cache")
	}
	a, hit := read()
	b, hit2 := read()
	if hit != "MISS" || hit2 != "HIT" || a.leaseID != b.leaseID || a.username != b.username {
		t.Fatalf("second read: X-Cache %q/%q, leases %s / %s; want the cached lease", hit, hit2, a.leaseID, b.leaseID)
	}
	dbCountUsers(t, l, a)
	_, h := agentHealth(addr)
	if h["authenticated"] != true || h["cache_entries"].(float64) < 1 {
		t.Errorf("health = %v", h)
	}

	// Revoked through the proxy: evicted at once.
	agent.ok("lease", "revoke", a.leaseID)
	d, hit := read()
	if hit != "MISS" || d.leaseID == a.leaseID {
		t.Fatalf("after revoke through the agent: X-Cache %q, lease %s", hit, d.leaseID)
	}
	// Revoked on the server: the watcher evicts it within its interval.
	c.ok("lease", "revoke", d.leaseID)
	eventually(t, 5*time.Second, "server-side revoke evicted", func() bool {
		e, _ := read()
		return e.leaseID != d.leaseID
	})

	// A token created through the proxy is cached like a lease, and evicted
	// once it is revoked on the server.
	create := func() string {
		resp, err := http.Post("http://"+addr+"/v1/auth/token/create", "application/json", strings.NewReader(`{"policies":["default"],"ttl":"1h"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Auth struct {
				ClientToken string `json:"client_token"`
			}
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Auth.ClientToken == "" {
			t.Fatalf("token create through the agent: %d", resp.StatusCode)
		}
		return body.Auth.ClientToken
	}
	t1 := create()
	if t2 := create(); t2 != t1 {
		t.Fatal("the same token create through the agent made a second token")
	}
	c.ok("token", "revoke", t1)
	eventually(t, 5*time.Second, "revoked token evicted", func() bool { return create() != t1 })

	// The auto-auth token revoked on the server: the next request is
	// refused (403), the agent logs in again, and requests work again.
	tok, _ := os.ReadFile(filepath.Join(dir, "sink/token"))
	c.ok("token", "revoke", strings.TrimSpace(string(tok)))
	r := agent.run("kv", "get", "secret/myapp/config")
	if r.code == 0 {
		t.Log("the first request after the revoke went through (already re-authenticated)")
	}
	eventually(t, 10*time.Second, "requests work after re-auth", func() bool {
		return agent.run("kv", "get", "secret/myapp/config").code == 0
	})
	if t2, _ := os.ReadFile(filepath.Join(dir, "sink/token")); string(t2) == string(tok) {
		t.Error("the sink still holds the revoked token")
	}
	// A path the policy denies: 403 each time, but the agent does not log
	// in again for each: once, then with backoff.
	before := strings.Count(p.out.String(), "auto-auth: authenticated")
	for i := 0; i < 20; i++ {
		if r := agent.run("kv", "get", "secret/other"); r.code == 0 {
			t.Fatal("a denied path was allowed")
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(p.out.String(), "auto-auth: authenticated") - before; n > 2 {
		t.Errorf("%d logins for 20 denied requests; want at most 2", n)
	}
}

// The lesson's file with only its paths changed — the Kubernetes method as
// written — against a stand-in cluster: the projected token is read from
// token_path, and read again at every login.
func TestAgentLessonKubernetes(t *testing.T) {
	t.Parallel()
	needTool(t, "pkill", "procps")
	l := dbtest.LessonPostgres(t)
	srv := startRestartable(t)
	c := srv.cli(t)
	lessonDatabase(t, c, l)
	cl := k8stest.New(t)
	c.ok("auth", "enable", "kubernetes")
	c.ok("write", "auth/kubernetes/config", "kubernetes_host="+cl.URL)
	dir := t.TempDir()
	c.ok("policy", "write", "myapp", writeFile(t, dir, "myapp.hcl", `path "database/creds/app-readonly" { capabilities = ["read"] }`, 0o600))
	c.ok("write", "auth/kubernetes/role/myapp", "bound_service_account_names=myapp-sa",
		"bound_service_account_namespaces=production", "policies=myapp", "ttl=1h")
	tokenPath := writeFile(t, dir, "serviceaccount/token", cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}), 0o600)

	src, err := os.ReadFile(lessonDir + "lesson-vault-agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	proc := randomName("myapp-")
	myapp(t, dir, proc)
	s := string(src)
	for _, r := range [][2]string{
		{"role = \"myapp\"\n", "role = \"myapp\"\ntoken_path = \"" + tokenPath + "\"\n"},
		{"/tmp/vault-token", filepath.Join(dir, "vault-token")},
		{"/etc/vault/templates/db.tpl", filepath.Join(dir, "db.tpl")},
		{"/app/config/database.env", filepath.Join(dir, "app/config/database.env")},
		{"pkill -HUP myapp", "pkill -HUP " + proc},
	} {
		s = strings.Replace(s, r[0], r[1], 1)
	}
	tpl, _ := os.ReadFile(lessonDir + "lesson-db.tpl")
	writeFile(t, dir, "db.tpl", string(tpl), 0o644)
	cfg := writeFile(t, dir, "vault-agent.hcl", s, 0o600)
	p := startAgent(t, nil, "-config="+cfg, "-address="+srv.url(), "-lease-check-interval=300ms")

	dbEnv := filepath.Join(dir, "app/config/database.env")
	eventually(t, 20*time.Second, "database.env rendered", func() bool { return envFile(dbEnv)["DB_USER"] != "" })
	cr := credFrom(envFile(dbEnv))
	l.CleanupUser(t, cr.username)
	dbCountUsers(t, l, cr)

	// The kubelet rotates the token: a bad one in the file makes the next
	// login fail (so the file is read again), a good one lets it succeed.
	writeFile(t, dir, "serviceaccount/token", "not-a-jwt", 0o600)
	tok, _ := os.ReadFile(filepath.Join(dir, "vault-token"))
	c.ok("token", "revoke", strings.TrimSpace(string(tok)))
	eventually(t, 10*time.Second, "login with the rotated (bad) token refused", func() bool {
		return strings.Contains(p.out.String(), "auto-auth: login failed")
	})
	writeFile(t, dir, "serviceaccount/token", cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}), 0o600)
	eventually(t, 15*time.Second, "a new token in the sink", func() bool {
		t2, _ := os.ReadFile(filepath.Join(dir, "vault-token"))
		return len(t2) > 0 && string(t2) != string(tok)
	})
	eventually(t, 15*time.Second, "a new credential rendered", func() bool {
		u := envFile(dbEnv)["DB_USER"]
		return u != "" && u != cr.username
	})
	cr2 := credFrom(envFile(dbEnv))
	l.CleanupUser(t, cr2.username)
	dbCountUsers(t, l, cr2)
}

// Each auto-auth method with exit_after_auth: the agent logs in, writes
// its sink (mode honoured) and exits 0.
func TestAgentAuthMethods(t *testing.T) {
	t.Parallel()
	srv := startRestartable(t)
	c := srv.cli(t)
	dir := t.TempDir()
	c.ok("policy", "write", "reader", writeFile(t, dir, "reader.hcl", `path "secret/data/*" { capabilities = ["read"] }`, 0o600))
	c.ok("auth", "enable", "userpass")
	c.ok("write", "auth/userpass/users/alice", "password=correct horse", "token_policies=reader")
	cl := k8stest.New(t)
	c.ok("auth", "enable", "kubernetes")
	c.ok("write", "auth/kubernetes/config", "kubernetes_host="+cl.URL)
	c.ok("write", "auth/kubernetes/role/myapp", "bound_service_account_names=myapp-sa",
		"bound_service_account_namespaces=production", "policies=reader", "ttl=1h")
	c.ok("auth", "enable", "jwt")
	c.ok("write", "auth/jwt/config", "jwt_validation_pubkeys="+cl.PublicKeyPEM())
	c.ok("write", "auth/jwt/role/ci", "role_type=jwt", "bound_audiences="+k8stest.Audience, "user_claim=sub", "token_policies=reader")
	childToken := strings.TrimSpace(c.ok("token", "create", "-policy=reader", "-field=token"))
	roleIDFile, secretIDFile := approleFor(t, c, dir, "reader2", `path "secret/data/*" { capabilities = ["read"] }`)

	cases := []struct {
		name, method string
		check        func(t *testing.T)
	}{
		{"approle", `method "approle" { config = { role_id_file_path = "` + roleIDFile + `" secret_id_file_path = "` + secretIDFile + `" remove_secret_id_file_after_reading = false } }`,
			func(t *testing.T) {
				if _, err := os.Stat(secretIDFile); err != nil {
					t.Errorf("secret ID file removed although remove_secret_id_file_after_reading = false: %v", err)
				}
			}},
		{"token_file", `method "token_file" { config = { token_file_path = "` + writeFile(t, dir, "tf", childToken+"\n", 0o600) + `" } }`, nil},
		{"userpass", `method "userpass" { config = { username = "alice" password_file_path = "` + writeFile(t, dir, "pw", "correct horse", 0o600) + `" } }`, nil},
		{"kubernetes", `method "kubernetes" { config = { role = "myapp" token_path = "` + writeFile(t, dir, "k8s-token", cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}), 0o600) + `" } }`, nil},
		// The file is read and, by default, removed.
		{"jwt", `method "jwt" { config = { role = "ci" path = "` + writeFile(t, dir, "jwt-file", cl.Token(t, "production", "myapp-sa", k8stest.TokenOpts{}), 0o600) + `" } }`,
			func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(dir, "jwt-file")); !os.IsNotExist(err) {
					t.Errorf("JWT file still there (remove_jwt_after_reading defaults to true): %v", err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sinkDir := filepath.Join(dir, tc.name)
			os.Mkdir(sinkDir, 0o700)
			cfg := writeFile(t, sinkDir, "agent.hcl", "exit_after_auth = true\nauto_auth {\n"+tc.method+"\nsink \"file\" { config = { path = \""+sinkDir+"/token\" mode = 0400 } }\n}\n", 0o600)
			p := startAgent(t, []string{"VAULT_ADDR=" + srv.url()}, "-config="+cfg)
			if code := p.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.out.String())
			}
			fi, err := os.Stat(filepath.Join(sinkDir, "token"))
			if err != nil || fi.Mode().Perm() != 0o400 {
				t.Fatalf("sink: %v (mode %v)", err, fi)
			}
			tok, _ := os.ReadFile(filepath.Join(sinkDir, "token"))
			r := c.runEnv(map[string]string{"VAULT_ADDR": srv.url(), "VAULT_TOKEN": string(tok)}, "", "token", "lookup", "-format=json")
			if r.code != 0 || !strings.Contains(r.stdout, `"reader`) {
				t.Fatalf("sink token: %s", r)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

// Bad input: what the agent refuses at start, and what it survives.
func TestAgentBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tf := writeFile(t, dir, "token", "unused", 0o600)
	start := func(t *testing.T, body string) *agentProc {
		cfg := writeFile(t, t.TempDir(), "agent.hcl", "auto_auth { method \"token_file\" { config = { token_file_path = \""+tf+"\" } } }\n"+body, 0o600)
		return startAgent(t, nil, "-config="+cfg, "-address=http://127.0.0.1:1")
	}
	refused := []struct{ name, body, want string }{
		{"template syntax", `template {
  source = "` + writeFile(t, dir, "bad.tpl", "A={{ with secret \"secret/data/x\" }}\nB={{ .Data.data.k }\n{{ end }}\n", 0o600) + `"
  destination = "` + dir + `/out/a"
}`, dir + `/bad.tpl:2:19: unexpected "}" in operand`},
		{"unknown function", `template {
  contents = "ok\n  {{ nosuchfunc \"x\" }}"
  destination = "` + dir + `/out/b"
}`, `template at line 2, contents line 2:6: function "nosuchfunc" not defined`},
		{"destination under a file", `template {
  contents = "x"
  destination = "` + tf + `/sub/out"
}`, "is a file, not a directory"},
		{"destination directory missing", `template {
  contents = "x"
  destination = "` + dir + `/missing/out"
  create_dest_dirs = false
}`, "does not exist (create it, or set create_dest_dirs = true)"},
		{"two auto_auth blocks", `auto_auth {}`, "auto_auth is set more than once"},
		{"config unknown key", "templates {}\n", `agent.hcl:2: unknown key "templates"`},
	}
	t.Run("sink directory missing", func(t *testing.T) {
		cfg := writeFile(t, t.TempDir(), "agent.hcl", "auto_auth {\n method \"token_file\" { config = { token_file_path = \""+tf+"\" } }\n sink \"file\" { config = { path = \""+dir+"/nodir/token\" } }\n}\n", 0o600)
		p := startAgent(t, nil, "-config="+cfg, "-address=http://127.0.0.1:1")
		if code := p.wait(10 * time.Second); code == 0 || !strings.Contains(p.out.String(), "must exist and be writable") {
			t.Fatalf("exit %d:\n%s", code, p.out.String())
		}
	})
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, tc.body)
			if code := p.wait(10 * time.Second); code == 0 {
				t.Fatalf("exit 0; output:\n%s", p.out.String())
			}
			if !strings.Contains(p.out.String(), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, p.out.String())
			}
		})
	}

	// Against a live server: missing secrets and missing keys.
	srv := startRestartable(t)
	c := srv.cli(t)
	c.ok("secrets", "enable", "-path=secret", "-version=2", "kv")
	c.ok("kv", "put", "secret/myapp/config", "mode=blue")
	roleIDFile, secretIDFile := approleFor(t, c, dir, "bad", `path "secret/data/*" { capabilities = ["read"] }`)
	method := "auto_auth { method \"approle\" { config = { role_id_file_path = \"" + roleIDFile + "\" secret_id_file_path = \"" + secretIDFile + "\" remove_secret_id_file_after_reading = false } } }\n"
	run := func(t *testing.T, body string) *agentProc {
		cfg := writeFile(t, t.TempDir(), "agent.hcl", method+body, 0o600)
		return startAgent(t, nil, "-config="+cfg, "-address="+srv.url())
	}
	t.Run("missing key", func(t *testing.T) {
		out := t.TempDir()
		run(t, `template_config { static_secret_render_interval = "1s" }
template {
  contents = "{{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.nokey }}{{ end }}"
  destination = "`+out+`/lenient"
}
template {
  contents = "{{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.nokey }}{{ end }}"
  destination = "`+out+`/strict"
  error_on_missing_key = true
}
template {
  contents = "{{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.mode }}{{ end }}"
  destination = "`+out+`/good"
}`)
		eventually(t, 20*time.Second, "the good template rendered", func() bool { b, _ := os.ReadFile(out + "/good"); return string(b) == "blue" })
		eventually(t, 5*time.Second, "the lenient template rendered", func() bool { _, err := os.Stat(out + "/lenient"); return err == nil })
		time.Sleep(1500 * time.Millisecond)
		if _, err := os.Stat(out + "/strict"); !os.IsNotExist(err) {
			b, _ := os.ReadFile(out + "/strict")
			t.Fatalf("error_on_missing_key: the file was written: %q", b)
		}
	})
	t.Run("missing secret", func(t *testing.T) {
		out := t.TempDir()
		p := run(t, `template {
  contents = "{{ with secret \"secret/data/nothing/here\" }}{{ .Data.data.k }}{{ end }}"
  destination = "`+out+`/x"
}`)
		time.Sleep(2 * time.Second)
		if _, err := os.Stat(out + "/x"); !os.IsNotExist(err) {
			t.Errorf("a template over a missing secret was written (err %v)", err)
		}
		select {
		case <-p.done:
			t.Fatalf("the agent exited over a missing secret without exit_on_retry_failure:\n%s", p.out.String())
		default:
		}
	})
	t.Run("missing secret with exit_on_retry_failure", func(t *testing.T) {
		p := run(t, `vault { retry { num_retries = 1 } }
template_config { exit_on_retry_failure = true }
template {
  contents = "{{ with secret \"database/creds/nothing\" }}{{ .Data.username }}{{ end }}"
  destination = "`+t.TempDir()+`/x"
}`)
		if code := p.wait(30 * time.Second); code == 0 {
			t.Fatalf("exit 0:\n%s", p.out.String())
		}
		if !strings.Contains(p.out.String(), "exit_on_retry_failure is set") {
			t.Errorf("output:\n%s", p.out.String())
		}
	})

	// The server goes away: the agent backs off, the file keeps its last
	// good content the whole time (never empty), and it catches up after.
	t.Run("server down", func(t *testing.T) {
		out := t.TempDir()
		p := run(t, `template_config { static_secret_render_interval = "1s" }
template {
  contents = "MODE={{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.mode }}{{ end }}\n"
  destination = "`+out+`/app.env"
}`)
		eventually(t, 20*time.Second, "rendered", func() bool { return envFile(out + "/app.env")["MODE"] == "blue" })
		srv.stop()
		deadline := time.Now().Add(6 * time.Second)
		for time.Now().Before(deadline) {
			if m := envFile(out + "/app.env")["MODE"]; m != "blue" {
				t.Fatalf("while the server is down the file holds %q", m)
			}
			time.Sleep(50 * time.Millisecond)
		}
		srv.restart(0)
		c.ok("kv", "put", "secret/myapp/config", "mode=green")
		eventually(t, 90*time.Second, "re-rendered after the outage", func() bool { return envFile(out + "/app.env")["MODE"] == "green" })
		if n := strings.Count(p.out.String(), "template runner failed"); n > 10 {
			t.Errorf("%d runner restarts in a few seconds: a tight loop", n)
		}
	})
}
