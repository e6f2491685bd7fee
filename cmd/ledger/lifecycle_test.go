package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/k8sreg"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/k8sreg/k8sregtest"
	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
)

// TestSystemdNotifyRealProcess runs the real binary as systemd would with Type=notify: a
// unixgram socket in NOTIFY_SOCKET, READY=1 only once the API answers, STATUS following the
// seal state, STOPPING=1 on SIGTERM, and a clean exit. It also reads the process's core
// limit, which the server sets to zero itself.
func TestSystemdNotifyRealProcess(t *testing.T) {
	bin := ledgerBinary(t)
	// A unix socket path must fit in 108 bytes; t.TempDir's may not.
	sockDir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "ledger.hcl")
	src := fmt.Sprintf("storage \"jetstream\" { path = %q }\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\nlog_level = \"warn\"\n",
		filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`Listener 1: (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()

	// next reads datagrams until one contains want.
	next := func(want string) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q from the server: %v", want, err)
			}
			if msg := string(buf[:n]); strings.Contains(msg, want) {
				return msg
			}
		}
	}

	ready := next("READY=1")
	if !strings.Contains(ready, "STATUS=not initialized") {
		t.Errorf("READY message %q should say the server waits for init", ready)
	}
	var addr string
	select {
	case addr = <-addrs:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not print its listener address")
	}
	// Ready means serving: the API answers at once, as Vault's 501 for an uninitialised node.
	resp, err := http.Get(addr + "/v1/sys/health")
	if err != nil {
		t.Fatalf("READY=1 was sent before the API answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("sys/health after READY: %d, want 501", resp.StatusCode)
	}

	var init struct {
		Keys []string `json:"keys_base64"`
	}
	s := &childServer{t: t, addr: addr}
	s.call(http.MethodPut, "sys/init", "", `{"secret_shares":1,"secret_threshold":1}`, &init)
	next("STATUS=sealed")
	s.call(http.MethodPut, "sys/unseal", "", `{"key":"`+init.Keys[0]+`"}`, nil)
	next("STATUS=unsealed, active")

	if runtime.GOOS == "linux" {
		limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^Max core file size\s+0\s+0\s`).Match(limits) {
			t.Errorf("the server left core dumps enabled:\n%s", limits)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not exit within 60s of SIGTERM")
	}
}

// TestServiceRegistrationFollowsSeal runs a real server core with service registration
// against the stand-in API server: the pod's labels follow init, unseal and seal, and the pod
// is left sealed and inactive when the server stops.
func TestServiceRegistrationFollowsSeal(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "") // not under systemd, whatever runs the tests
	api := k8sregtest.New(t, &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "ledger-0", Namespace: "ledger", Labels: map[string]string{"app.kubernetes.io/name": "ledger"}}})
	u, _ := url.Parse(api.URL)
	env := map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": u.Port(),
		"VAULT_K8S_POD_NAME": "ledger-0", "VAULT_K8S_NAMESPACE": "ledger"}
	rc, err := k8sreg.FromEnvironment("", "", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := newLogger(logs, "debug")
	rc.TokenFile, rc.CAFile, rc.Version, rc.Logger, rc.PollInterval = api.TokenFile, api.CAFile, commands.Version, logger, 50*time.Millisecond
	reg, err := k8sreg.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Check(t.Context()); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(t.Context(), logger, ledger.Options{Dir: t.TempDir()}, commands.Options{}, "", []listenerSpec{{alreadyListening: ln}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(context.Background())
	l := startLifecycle(t.Context(), logger, s.core, nil, reg)

	labelsAre := func(what string, want map[string]string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() bool {
			got := api.Labels()
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		})
	}
	labelsAre("uninitialised and sealed", map[string]string{"ledger-initialized": "false", "ledger-sealed": "true", "vault-sealed": "true", "ledger-active": "false"})

	res, err := s.core.Init(t.Context(), commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	labelsAre("initialised, sealed", map[string]string{"ledger-initialized": "true", "vault-initialized": "true", "ledger-sealed": "true"})
	if _, err := s.core.Unseal(t.Context(), res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	labelsAre("unsealed and active", map[string]string{"ledger-sealed": "false", "vault-sealed": "false", "ledger-active": "true", "vault-active": "true"})
	s.core.Seal()
	labelsAre("sealed again", map[string]string{"ledger-sealed": "true", "ledger-active": "false", "vault-active": "false"})
	if _, err := s.core.Unseal(t.Context(), res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	labelsAre("unsealed again", map[string]string{"ledger-active": "true"})

	l.stopping()
	if got := api.Labels(); got["ledger-active"] != "false" || got["vault-active"] != "false" || got["ledger-sealed"] != "true" || got["app.kubernetes.io/name"] != "ledger" {
		t.Errorf("after stopping the pod says %v; want it inactive and sealed, its own labels kept", got)
	}
	if strings.Contains(logs.String(), "sa-token") || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(res.Keys[0])) {
		t.Error("a token or unseal key reached the log")
	}
}

// TestNodeStateFollowsTheElector: with a real elector over an embedded log, an unsealed node is
// active while it holds the lease and a performance standby once it resigned; a sealed node is
// neither, whatever the lease says.
func TestNodeStateFollowsTheElector(t *testing.T) {
	ctx := t.Context()
	lg, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	changes := make(chan bool, 8)
	e, err := lg.NewElector(ctx, ledger.ElectorOptions{Node: "n1", OnChange: func(active bool, _ uint64) { changes <- active }})
	if err != nil {
		t.Fatal(err)
	}
	core, err := commands.New(ctx, lg, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()

	e.Start()
	waitChange := func(want bool) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("elector says active=%v, want %v", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the elector did not report active=%v", want)
		}
	}
	waitChange(true)
	if st := nodeState(core, e); st.Active || st.PerfStandby || !st.Sealed {
		t.Errorf("sealed node holding the lease: %+v; want sealed, neither active nor standby", st)
	}
	res, err := core.Init(ctx, commands.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	if st := nodeState(core, e); !st.Active || st.PerfStandby || st.Sealed || !st.Initialized {
		t.Errorf("unsealed lease holder: %+v; want active", st)
	}
	if statusLine(nodeState(core, e)) != "unsealed, active" {
		t.Errorf("STATUS %q", statusLine(nodeState(core, e)))
	}
	e.Stop(ctx)
	waitChange(false)
	if st := nodeState(core, e); st.Active || !st.PerfStandby {
		t.Errorf("unsealed node without the lease: %+v; want a performance standby", st)
	}
	if statusLine(nodeState(core, e)) != "unsealed, performance standby" {
		t.Errorf("STATUS %q", statusLine(nodeState(core, e)))
	}
	if st := nodeState(core, nil); !st.Active {
		t.Errorf("without HA an unsealed node is active: %+v", st)
	}
}
