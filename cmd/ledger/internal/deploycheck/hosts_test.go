package deploycheck

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/engines/hosttools"
)

func loadFile(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cfg.Warnings {
		t.Errorf("%s", w)
	}
	return cfg
}

// TestLocalThreeNodes: deploy/local/node{1,2,3}.hcl are the README's three-node quick start
// on one machine: loopback only, distinct ports, data relative to the directory started from.
func TestLocalThreeNodes(t *testing.T) {
	dir := filepath.Join(deployDir(t), "local")
	paths := map[string]bool{}
	for i := 1; i <= 3; i++ {
		cfg := loadFile(t, filepath.Join(dir, fmt.Sprintf("node%d.hcl", i)))
		api := fmt.Sprintf("127.0.0.1:820%d", i)
		if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != api || cfg.APIAddr != "http://"+api {
			t.Errorf("node%d: listeners %+v api_addr %q, want one on %s", i, cfg.Listeners, cfg.APIAddr, api)
		}
		if p := cfg.Storage.Path; p == "" || filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") || paths[p] {
			t.Errorf("node%d: storage path %q must be relative, inside the directory, and its own", i, p)
		}
		paths[cfg.Storage.Path] = true
		if cfg.NodeID != fmt.Sprintf("node%d", i) || cfg.Storage.Replicas != 3 {
			t.Errorf("node%d: node_id %q replicas %d, want node%d and 3", i, cfg.NodeID, cfg.Storage.Replicas, i)
		}
		cl := cfg.Storage.Cluster
		if cl == nil || cl.Listen != fmt.Sprintf("127.0.0.1:622%d", i) ||
			!slices.Equal(cl.Routes, []string{"nats://127.0.0.1:6221", "nats://127.0.0.1:6222", "nats://127.0.0.1:6223"}) {
			t.Errorf("node%d: cluster %+v, want listen 127.0.0.1:622%d and routes to all three", i, cl, i)
		}
	}
}

// systemdDirectives are the directives the unit may use, per section, from systemd.unit(5),
// systemd.service(5), systemd.exec(5), systemd.kill(5) and systemd.resource-control(5).
// The list is what a strict reading needs: a directive systemd does not know is ignored by
// systemd with a log line, which would silently drop a hardening setting.
var systemdDirectives = map[string][]string{
	"Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "BindsTo", "PartOf",
		"Conflicts", "ConditionFileNotEmpty", "ConditionPathExists", "AssertPathExists", "StartLimitIntervalSec", "StartLimitBurst"},
	"Service": {"Type", "NotifyAccess", "User", "Group", "ExecStart", "ExecStartPre", "ExecReload", "ExecStop",
		"KillSignal", "KillMode", "SendSIGKILL", "FinalKillSignal", "TimeoutStartSec", "TimeoutStopSec", "Restart", "RestartSec",
		"StateDirectory", "StateDirectoryMode", "ConfigurationDirectory", "LogsDirectory", "WorkingDirectory", "UMask",
		"Environment", "EnvironmentFile", "LimitCORE", "LimitNOFILE", "LimitMEMLOCK",
		"NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "ProtectHome", "PrivateTmp",
		"PrivateDevices", "PrivateUsers", "DevicePolicy", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
		"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset", "RestrictAddressFamilies",
		"RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
		"RemoveIPC", "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "ReadWritePaths", "ReadOnlyPaths"},
	"Install": {"WantedBy", "RequiredBy", "Alias"},
}

// unitProblems reads a unit file strictly and checks what Ledger's unit must say.
func unitProblems(src []byte) (map[string]string, []string) {
	opts, err := unit.DeserializeOptions(bytes.NewReader(src))
	if err != nil {
		return nil, []string{err.Error()}
	}
	var p []string
	got := map[string]string{}
	for _, o := range opts {
		known, ok := systemdDirectives[o.Section]
		switch {
		case !ok:
			p = append(p, fmt.Sprintf("unknown section [%s]", o.Section))
		case !contains(known, o.Name):
			p = append(p, fmt.Sprintf("[%s] %s is not a directive systemd knows there", o.Section, o.Name))
		}
		got[o.Section+"."+o.Name] = o.Value
	}
	for k, want := range map[string]string{
		"Service.Type":            "notify", // READY=1 from the server
		"Service.NotifyAccess":    "main",
		"Service.KillSignal":      "SIGTERM", // drain and resign
		"Service.LimitCORE":       "0",
		"Service.NoNewPrivileges": "yes",
		"Service.ProtectSystem":   "strict",
		"Service.ProtectHome":     "yes",
		"Service.PrivateTmp":      "yes",
		"Service.StateDirectory":  "ledger",
		"Service.UMask":           "0077",
	} {
		if got[k] != want {
			p = append(p, fmt.Sprintf("%s=%q, want %q", k, got[k], want))
		}
	}
	if f := strings.Fields(got["Service.ExecStart"]); len(f) != 3 || !filepath.IsAbs(f[0]) || f[1] != "server" || f[2] != "-config=/etc/ledger/ledger.hcl" {
		p = append(p, fmt.Sprintf("ExecStart=%q, want /path/to/ledger server -config=/etc/ledger/ledger.hcl", got["Service.ExecStart"]))
	}
	return got, p
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSystemdUnitAndConfigs: one unit for the three VMs, and each VM's ledger.hcl fits it (its
// data under the unit's StateDirectory, the only place ProtectSystem=strict lets it write).
func TestSystemdUnitAndConfigs(t *testing.T) {
	dir := filepath.Join(deployDir(t), "systemd")
	src, err := os.ReadFile(filepath.Join(dir, "ledger.service"))
	if err != nil {
		t.Fatal(err)
	}
	got, probs := unitProblems(src)
	for _, p := range probs {
		t.Error(p)
	}
	stateDir := "/var/lib/" + got["Service.StateDirectory"]
	ids := map[string]bool{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("ledger%d", i)
		cfg := loadFile(t, filepath.Join(dir, name, "ledger.hcl"))
		if !strings.HasPrefix(cfg.Storage.Path, stateDir+"/") {
			t.Errorf("%s: storage path %s is outside the unit's StateDirectory %s", name, cfg.Storage.Path, stateDir)
		}
		for _, l := range cfg.Listeners {
			if l.TLSDisable || !strings.HasPrefix(l.TLSCertFile, "/etc/ledger/") {
				t.Errorf("%s: listener %s must serve TLS with files under /etc/ledger", name, l.Address)
			}
			if _, _, err := net.SplitHostPort(l.Address); err != nil {
				t.Error(err)
			}
		}
		var routes []string
		for j := 1; j <= 3; j++ {
			routes = append(routes, fmt.Sprintf("nats://ledger%d.example.internal:6222", j))
		}
		if cl := cfg.Storage.Cluster; cfg.NodeID != name || cfg.Storage.Replicas != 3 || cl == nil ||
			!strings.HasSuffix(cl.Listen, ":6222") || !slices.Equal(cl.Routes, routes) {
			t.Errorf("%s: node_id %q, replicas %d, cluster %+v; want %s, 3, listen on :6222 and routes %v", name, cfg.NodeID, cfg.Storage.Replicas, cl, name, routes)
		}
		if !strings.Contains(cfg.APIAddr, name+".") || ids[cfg.APIAddr] {
			t.Errorf("%s: api_addr %q should be this VM's own name", name, cfg.APIAddr)
		}
		ids[cfg.APIAddr] = true
	}
}

func TestSystemdStrictReadingRefusesMistakes(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(deployDir(t), "systemd", "ledger.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"misspelt directive", "\nProtectSystem=strict\n", "\nProtectSytem=strict\n", "ProtectSytem is not a directive"},
		{"not notify", "\nType=notify\n", "\nType=simple\n", `Service.Type="simple", want "notify"`},
		{"core dumps on", "\nLimitCORE=0\n", "\nLimitCORE=infinity\n", "Service.LimitCORE"},
		{"directive in the wrong section", "WantedBy=multi-user.target", "WantedBy=multi-user.target\n[Bogus]\nX=1", "unknown section [Bogus]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(orig), tc.from, tc.to, 1)
			if bad == string(orig) {
				t.Fatalf("%q is not in ledger.service", tc.from)
			}
			_, probs := unitProblems([]byte(bad))
			if all := strings.Join(probs, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", all, tc.want)
			}
		})
	}
	// A line that is no directive at all is a parse error.
	if _, probs := unitProblems([]byte("[Service]\nType notify\n")); len(probs) == 0 {
		t.Error("a line without '=' was accepted")
	}
}

// TestSystemdAnalyze has systemd read the unit itself: `systemd-analyze verify` must print
// nothing (it warns, and exits 0, on an unknown key or a value it cannot parse, which systemd
// would then ignore), and `systemd-analyze security --offline` must rate the sandbox 2.0 or
// better ("OK").
func TestSystemdAnalyze(t *testing.T) {
	analyze := hosttools.Need(t, "systemd-analyze", "systemd")
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(deployDir(t), "systemd", "ledger.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's program to exist; the binary is not installed here.
	unitText := strings.Replace(string(orig), "\nExecStart=/usr/local/bin/ledger ", "\nExecStart="+truePath+" ", 1)
	write := func(name, text string) string {
		dir := t.TempDir()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	verify := func(p string) string {
		out, err := exec.Command(analyze, "verify", "--man=no", p).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := verify(write("ledger.service", unitText)); out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	bad := strings.Replace(unitText, "\nProtectSystem=strict\n", "\nProtectSytem=strict\n", 1)
	if out := verify(write("ledger.service", bad)); !strings.Contains(out, "Unknown key") {
		t.Errorf("systemd-analyze verify accepted a misspelt directive: %q", out)
	}

	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", write("ledger.service", unitText)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for ledger\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want 2.0 or better:\n%s", level, out)
	}
}
