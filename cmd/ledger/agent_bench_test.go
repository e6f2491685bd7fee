package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// procSample reads a process's resident memory (kB) and CPU time (ticks).
func procSample(b *testing.B, pid int) (rssKB int, ticks int) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return rssKB, u + s
}

// BenchmarkAgent: an agent process with 10 templates (5 over database
// credentials, 5 over KV secrets, re-checked every 30s), idle: its memory
// and CPU over a 20 s window; then how long a revoked credential and a KV
// change take to reach their files.
func BenchmarkAgent(b *testing.B) {
	l := dbtest.LessonPostgres(b)
	srv := startRestartable(b)
	env := map[string]string{"VAULT_ADDR": srv.url(), "VAULT_TOKEN": srv.root, "HOME": b.TempDir()}
	must := func(args ...string) string {
		var out, errOut strings.Builder
		if code := run(args, env, strings.NewReader(""), &out, &errOut); code != 0 {
			b.Fatalf("ledger %s: %s", strings.Join(args, " "), errOut.String())
		}
		return out.String()
	}
	must("secrets", "enable", "database")
	must("write", "database/config/production-db", "plugin_name="+l.Plugin, "connection_url="+l.ConnectionURL,
		"allowed_roles=*", "username="+l.AdminUser, "password="+l.AdminPassword)
	dir := b.TempDir()
	var tpls strings.Builder
	for i := 0; i < 5; i++ {
		must("write", fmt.Sprintf("database/roles/r%d", i), "db_name=production-db", "creation_statements="+l.Readonly,
			"revocation_statements="+l.Revocation, "default_ttl=1h", "max_ttl=24h")
		fmt.Fprintf(&tpls, "template {\n contents = \"{{ with secret \\\"database/creds/r%d\\\" }}U={{ .Data.username }}\\nP={{ .Data.password }}\\n{{ end }}\"\n destination = \"OUT/db%d.env\"\n perms = 0600\n}\n", i, i)
	}
	must("secrets", "enable", "-path=secret", "-version=2", "kv")
	for i := 0; i < 5; i++ {
		must("kv", "put", fmt.Sprintf("secret/app%d", i), "v=1")
		fmt.Fprintf(&tpls, "template {\n contents = \"{{ with secret \\\"secret/data/app%d\\\" }}V={{ .Data.data.v }}{{ end }}\\n\"\n destination = \"OUT/kv%d.env\"\n}\n", i, i)
	}
	policy := filepath.Join(dir, "p.hcl")
	os.WriteFile(policy, []byte(`path "database/creds/*" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }`), 0o600)
	must("auth", "enable", "approle")
	must("policy", "write", "bench", policy)
	must("write", "auth/approle/role/bench", "token_policies=bench")
	os.WriteFile(dir+"/role-id", []byte(strings.TrimSpace(must("read", "-field=role_id", "auth/approle/role/bench/role-id"))), 0o600)
	os.WriteFile(dir+"/secret-id", []byte(strings.TrimSpace(must("write", "-f", "-field=secret_id", "auth/approle/role/bench/secret-id"))), 0o600)
	for _, interval := range []string{"5s", "1s"} {
		out := filepath.Join(dir, "out-"+interval)
		cfg := filepath.Join(dir, "agent-"+interval+".hcl")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`auto_auth {
  method "approle" { config = { role_id_file_path = "%[1]s/role-id" secret_id_file_path = "%[1]s/secret-id" remove_secret_id_file_after_reading = false } }
}
template_config { static_secret_render_interval = "30s" }
%[2]s`, dir, strings.ReplaceAll(tpls.String(), "OUT", out))), 0o600)
		p := startAgent(b, nil, "-config="+cfg, "-address="+srv.url(), "-lease-check-interval="+interval)
		deadline := time.Now().Add(30 * time.Second)
		for envFile(out + "/db4.env")["U"] == "" || envFile(out + "/kv4.env")["V"] == "" {
			if time.Now().After(deadline) {
				b.Fatalf("not rendered:\n%s", p.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		pid := p.cmd.Process.Pid
		_, t0 := procSample(b, pid)
		const window = 20 * time.Second
		time.Sleep(window)
		rss, t1 := procSample(b, pid)
		cpu := float64(t1-t0) / 100 / window.Seconds() * 100 // ticks are 1/100 s

		old := envFile(out + "/db0.env")["U"]
		start := time.Now()
		must("lease", "revoke", "-prefix", "database/creds/r0/")
		for envFile(out + "/db0.env")["U"] == old {
			if time.Since(start) > 30*time.Second {
				b.Fatal("revoked credential not replaced")
			}
			time.Sleep(5 * time.Millisecond)
		}
		revoke := time.Since(start)
		b.ReportMetric(float64(rss)/1024, "idle-RSS-MB/check="+interval)
		b.ReportMetric(cpu, "idle-CPU-%/check="+interval)
		b.ReportMetric(float64(revoke.Milliseconds()), "revoke-to-file-ms/check="+interval)
		p.signal(os.Interrupt)
		p.wait(20 * time.Second)
	}
}
