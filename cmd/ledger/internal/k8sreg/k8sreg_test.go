package k8sreg

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/k8sreg/k8sregtest"
)

const version = "1.17.0+ledger.0.1.0"

func testPod(labels map[string]string) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "ledger-1", Namespace: "ledger", Labels: labels}}
}

// syncBuffer is a log sink safe for the registration's goroutine and the test to share.
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

func newRegistration(t *testing.T, a *k8sregtest.Server, logs *syncBuffer) *Registration {
	t.Helper()
	r, err := New(Config{Namespace: "ledger", PodName: "ledger-1", Host: a.URL, TokenFile: a.TokenFile,
		CAFile: a.CAFile, Version: version, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually polls cond until it holds or 10 s pass (the machine may be loaded).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasLabels(a *k8sregtest.Server, want map[string]string) func() bool {
	return func() bool {
		got := a.Labels()
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	}
}

func TestLabelsFollowSealAndHAState(t *testing.T) {
	a := k8sregtest.New(t, testPod(map[string]string{"app.kubernetes.io/name": "ledger"}))
	logs := &syncBuffer{}
	r := newRegistration(t, a, logs)
	if err := r.Check(t.Context()); err != nil {
		t.Fatal(err)
	}

	var st atomic.Value
	st.Store(State{Sealed: true}) // started, not initialised
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, func() State { return st.Load().(State) }) }()

	eventually(t, "sealed, uninitialised labels", hasLabels(a, map[string]string{
		"vault-sealed": "true", "vault-initialized": "false", "vault-active": "false", "vault-perf-standby": "false",
		"ledger-sealed": "true", "ledger-initialized": "false", "ledger-active": "false", "ledger-perf-standby": "false",
		"vault-version": "1.17.0", "ledger-version": "0.1.0",
	}))

	steps := []struct {
		name  string
		state State
		want  map[string]string
	}{
		{"initialised, still sealed", State{Initialized: true, Sealed: true},
			map[string]string{"vault-initialized": "true", "ledger-initialized": "true", "vault-sealed": "true", "ledger-active": "false"}},
		{"unsealed and active", State{Initialized: true, Active: true},
			map[string]string{"vault-sealed": "false", "ledger-sealed": "false", "vault-active": "true", "ledger-active": "true"}},
		{"demoted to performance standby", State{Initialized: true, PerfStandby: true},
			map[string]string{"vault-active": "false", "ledger-active": "false", "vault-perf-standby": "true", "ledger-perf-standby": "true"}},
		{"sealed again", State{Initialized: true, Sealed: true},
			map[string]string{"vault-sealed": "true", "ledger-perf-standby": "false", "ledger-active": "false"}},
	}
	for _, s := range steps {
		st.Store(s.state)
		r.Notify()
		eventually(t, s.name, hasLabels(a, s.want))
	}
	if got := a.Labels()["app.kubernetes.io/name"]; got != "ledger" {
		t.Errorf("the pod's own label was changed: app.kubernetes.io/name=%q", got)
	}

	cancel()
	<-done
	if !hasLabels(a, map[string]string{"vault-sealed": "true", "vault-active": "false", "vault-initialized": "false",
		"ledger-sealed": "true", "ledger-active": "false", "ledger-initialized": "false"})() {
		t.Errorf("after Run returned the pod still says %v; want it marked stopped", a.Labels())
	}
	if strings.Contains(logs.String(), "sa-token") {
		t.Error("the service account token reached the log")
	}
}

func TestUnchangedStateIsNotPatchedAgain(t *testing.T) {
	a := k8sregtest.New(t, testPod(map[string]string{"app": "ledger"}))
	r := newRegistration(t, a, &syncBuffer{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, func() State { return State{Initialized: true, Active: true} }) }()
	eventually(t, "active labels", hasLabels(a, map[string]string{"ledger-active": "true"}))
	for range 5 {
		r.Notify()
	}
	time.Sleep(200 * time.Millisecond) // ten poll intervals; nothing must be sent meanwhile
	if n := len(a.Patches()); n != 1 {
		t.Errorf("%d patches for one state; want 1", n)
	}
	cancel()
	<-done
}

func TestPodWithoutLabelsGetsALabelMap(t *testing.T) {
	a := k8sregtest.New(t, testPod(nil))
	r := newRegistration(t, a, &syncBuffer{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, func() State { return State{Initialized: true, Active: true} }) }()
	eventually(t, "labels on a pod that had none", hasLabels(a, map[string]string{"ledger-active": "true", "vault-active": "true"}))
	cancel()
	<-done
	if first := a.Patches()[0]; !strings.Contains(string(first), `{"op":"add","path":"/metadata/labels","value":{}}`) {
		t.Errorf("first patch did not create the label map: %s", first)
	}
}

func TestForbiddenIsExplainedAndRetried(t *testing.T) {
	a := k8sregtest.New(t, testPod(map[string]string{"app": "ledger"}))
	logs := &syncBuffer{}
	r := newRegistration(t, a, logs)

	a.Deny(1)
	err := r.Check(t.Context())
	if !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "get and patch on pods") {
		t.Fatalf("Check with no RBAC: %v; want a 403 that names the Role to add", err)
	}

	// RBAC arrives while the server runs: the labels follow without a restart.
	a.Deny(2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, func() State { return State{Initialized: true, Active: true} }) }()
	eventually(t, "labels once RBAC allows them", hasLabels(a, map[string]string{"ledger-active": "true"}))
	// The recovery line is written after the patch the API server has already applied.
	eventually(t, "the recovery logged", func() bool { return strings.Contains(logs.String(), "pod labelled again") })
	cancel()
	<-done
	if n := strings.Count(logs.String(), "cannot label the pod"); n != 1 {
		t.Errorf("the same refusal was logged %d times; want once:\n%s", n, logs.String())
	}
}

func TestRotatedTokenIsReadAgain(t *testing.T) {
	a := k8sregtest.New(t, testPod(map[string]string{"app": "ledger"}))
	r := newRegistration(t, a, &syncBuffer{})
	var st atomic.Value
	st.Store(State{Initialized: true, Sealed: true})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, func() State { return st.Load().(State) }) }()
	eventually(t, "sealed labels", hasLabels(a, map[string]string{"ledger-sealed": "true"}))
	a.SetToken(t, "sa-token-2") // the kubelet rotated the projected token
	st.Store(State{Initialized: true, Active: true})
	r.Notify()
	eventually(t, "labels with the rotated token", hasLabels(a, map[string]string{"ledger-sealed": "false", "ledger-active": "true"}))
	cancel()
	<-done
}

func TestWrongPodAndBadConfig(t *testing.T) {
	a := k8sregtest.New(t, testPod(nil))
	base := Config{Namespace: "ledger", PodName: "ledger-9", Host: a.URL, TokenFile: a.TokenFile, CAFile: a.CAFile, Version: version}

	r, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "own pod") {
		t.Errorf("Check of a pod that does not exist: %v", err)
	}

	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"pod name not a DNS name", func(c *Config) { c.PodName = "Ledger_0" }, `pod_name "Ledger_0" is not a valid name`},
		{"empty namespace", func(c *Config) { c.Namespace = "" }, `namespace "" is not a valid name`},
		{"plain http API server", func(c *Config) { c.Host = strings.Replace(a.URL, "https", "http", 1) }, "must be an https:// URL"},
		{"no CA file", func(c *Config) { c.CAFile = a.CAFile + ".missing" }, "read the API server's CA"},
		{"CA file without a certificate", func(c *Config) { c.CAFile = a.TokenFile }, "holds no PEM certificate"},
		{"version that is no label value", func(c *Config) { c.Version = "1.17.0 beta" }, `-version="1.17.0 beta"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error containing %q", err, tc.want)
			}
		})
	}

	// A CA that did not sign the server's certificate: the connection is refused, not trusted.
	c := base
	c.CAFile = filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(c.CAFile, selfSignedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Check against a server the CA did not sign: %v", err)
	}
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another cluster's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestFromEnvironment(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	inPod := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

	c, err := FromEnvironment("from-file", "pod-from-file", env(inPod))
	if err != nil || c.Namespace != "from-file" || c.PodName != "pod-from-file" || c.Host != "https://10.96.0.1:443" ||
		c.TokenFile != DefaultTokenFile || c.CAFile != DefaultCAFile {
		t.Errorf("stanza values: %+v, %v", c, err)
	}

	withVault := map[string]string{"VAULT_K8S_NAMESPACE": "vault-ns", "VAULT_K8S_POD_NAME": "vault-0"}
	for k, v := range inPod {
		withVault[k] = v
	}
	if c, _ := FromEnvironment("from-file", "pod-from-file", env(withVault)); c.Namespace != "vault-ns" || c.PodName != "vault-0" {
		t.Errorf("Vault's variables should win over the file: %+v", c)
	}
	withVault["LEDGER_K8S_NAMESPACE"], withVault["LEDGER_K8S_POD_NAME"] = "ledger-ns", "ledger-0"
	if c, _ := FromEnvironment("", "", env(withVault)); c.Namespace != "ledger-ns" || c.PodName != "ledger-0" {
		t.Errorf("Ledger's variables should win over Vault's: %+v", c)
	}

	inV6 := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
	if c, _ := FromEnvironment("a", "b", env(inV6)); c.Host != "https://[fd00::1]:443" {
		t.Errorf("IPv6 API server address: %s", c.Host)
	}

	_, err = FromEnvironment("", "", env(nil))
	for _, want := range []string{"LEDGER_K8S_NAMESPACE", "LEDGER_K8S_POD_NAME", "KUBERNETES_SERVICE_HOST"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("outside a pod: %v; want it to name %s", err, want)
		}
	}
}

func TestVersionLabels(t *testing.T) {
	for _, tc := range []struct{ in, vault, ledger string }{
		{"1.17.0+ledger.0.1.0", "1.17.0", "0.1.0"},
		{"1.17.0", "1.17.0", "1.17.0"},
	} {
		l := State{}.Labels(tc.in)
		if l["vault-version"] != tc.vault || l["ledger-version"] != tc.ledger {
			t.Errorf("%s: vault-version=%s ledger-version=%s", tc.in, l["vault-version"], l["ledger-version"])
		}
	}
}
