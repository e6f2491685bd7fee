// Package k8sreg owns Kubernetes service registration: a server running in a pod labels its
// own pod with its seal and HA state, so that Services can select the active node
// (ledger-active: "true") the way Vault's `service_registration "kubernetes"` does.
//
// It speaks the Kubernetes API's wire format over plain HTTPS (a GET and a JSON patch of one
// pod, decoded into k8s.io/api's types) instead of pulling in client-go, which would be most
// of the binary's size for two requests.
package k8sreg

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Where a pod finds its service account's credentials (the in-cluster convention).
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// Environment variables naming the pod, Vault's first and then Ledger's own; a value in the
// environment wins over the config file, as in Vault, so the downward API can fill them.
var (
	namespaceEnv = []string{"LEDGER_K8S_NAMESPACE", "VAULT_K8S_NAMESPACE"}
	podNameEnv   = []string{"LEDGER_K8S_POD_NAME", "VAULT_K8S_POD_NAME"}
)

// Label prefixes. Both families are set: vault-* so that tooling written for Vault's Helm
// chart (its vault-active Service, the agent injector's docs) works unchanged, and ledger-*
// for Ledger's own manifests in deploy/kubernetes.
var prefixes = []string{"vault-", "ledger-"}

// Config says which pod to label and how to reach the API server.
type Config struct {
	Namespace string
	PodName   string
	// Host is the API server's base URL, https://host:port.
	Host      string
	TokenFile string // read again before every request: bound tokens rotate
	CAFile    string
	// Version is the server's Vault-style version, "1.17.0+ledger.0.1.0": vault-version gets
	// the part before '+', ledger-version the part after "+ledger.".
	Version string
	Logger  *slog.Logger
	// PollInterval bounds how long a state change can go unnoticed when nobody calls Notify.
	PollInterval time.Duration
}

// FromEnvironment completes the stanza's namespace and pod_name from the environment (which
// wins, as in Vault) and the API server's address and credentials from the in-cluster
// convention. It reports what is missing in terms of what to set.
func FromEnvironment(namespace, podName string, getenv func(string) string) (Config, error) {
	pick := func(names []string, fromFile string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return fromFile
	}
	c := Config{Namespace: pick(namespaceEnv, namespace), PodName: pick(podNameEnv, podName),
		TokenFile: DefaultTokenFile, CAFile: DefaultCAFile}
	var missing []string
	if c.Namespace == "" {
		missing = append(missing, `namespace (set it in service_registration "kubernetes" or LEDGER_K8S_NAMESPACE from the downward API's metadata.namespace)`)
	}
	if c.PodName == "" {
		missing = append(missing, `pod_name (set it in service_registration "kubernetes" or LEDGER_K8S_POD_NAME from the downward API's metadata.name)`)
	}
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		missing = append(missing, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set by Kubernetes in every pod; is this server running in one?)")
	} else {
		c.Host = "https://" + net.JoinHostPort(host, port)
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("kubernetes service registration needs %s", strings.Join(missing, ", and "))
	}
	return c, nil
}

// State is what the labels say about the server.
type State struct {
	Initialized bool
	Sealed      bool
	Active      bool
	PerfStandby bool
}

// Stopped is the state a pod is left in when its server stops, as Vault leaves it.
var Stopped = State{Sealed: true}

// Labels are the pod labels for s, in both families.
func (s State) Labels(version string) map[string]string {
	vaultVersion, ledgerVersion := splitVersion(version)
	out := map[string]string{}
	for _, p := range prefixes {
		out[p+"active"] = fmt.Sprint(s.Active)
		out[p+"initialized"] = fmt.Sprint(s.Initialized)
		out[p+"sealed"] = fmt.Sprint(s.Sealed)
		out[p+"perf-standby"] = fmt.Sprint(s.PerfStandby)
	}
	out["vault-version"], out["ledger-version"] = vaultVersion, ledgerVersion
	return out
}

// splitVersion turns "1.17.0+ledger.0.1.0" into "1.17.0" and "0.1.0"; a label value may not
// hold '+'.
func splitVersion(v string) (vault, ledger string) {
	vault, build, _ := strings.Cut(v, "+")
	ledger = strings.TrimPrefix(build, "ledger.")
	if ledger == "" {
		ledger = vault
	}
	return vault, ledger
}

// Registration keeps one pod's labels in step with the server's state.
type Registration struct {
	cfg    Config
	client *http.Client
	kick   chan struct{}
}

// New checks cfg and loads the API server's CA. It does not contact the API server; Check
// does.
func New(cfg Config) (*Registration, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	for what, v := range map[string]string{"namespace": cfg.Namespace, "pod_name": cfg.PodName} {
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			return nil, fmt.Errorf("kubernetes service registration: %s %q is not a valid name: %s", what, v, strings.Join(errs, "; "))
		}
	}
	for k, v := range Stopped.Labels(cfg.Version) {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("kubernetes service registration: label %s=%q: %s", k, v, strings.Join(errs, "; "))
		}
	}
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubernetes service registration: API server address %q must be an https:// URL", cfg.Host)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("kubernetes service registration: read the API server's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubernetes service registration: %s holds no PEM certificate", cfg.CAFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Proxy: nil}
	return &Registration{cfg: cfg, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, kick: make(chan struct{}, 1)}, nil
}

// Notify tells the registration that the state may have changed; it never blocks. Callers
// are the seal lifecycle and, with HA, the active/standby transitions.
func (r *Registration) Notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// ErrAPI is wrapped by errors the API server answered with.
var ErrAPI = errors.New("kubernetes API")

type apiError struct {
	code   int
	status metav1.Status
}

func (e *apiError) Error() string {
	msg := e.status.Message
	if msg == "" {
		msg = http.StatusText(e.code)
	}
	return fmt.Sprintf("kubernetes API answered %d: %s", e.code, msg)
}

func (e *apiError) Unwrap() error { return ErrAPI }

// StatusCode is the HTTP status the API server answered with.
func (e *apiError) StatusCode() int { return e.code }

// Check reads the pod once, so that a server whose service account may not read its own pod,
// or that names the wrong pod, fails at startup with what to fix rather than later in a log.
func (r *Registration) Check(ctx context.Context) error {
	_, err := r.getPod(ctx)
	return err
}

// Run labels the pod with state() now and after every change, until ctx ends; then it labels
// the pod Stopped (sealed, inactive) so that no Service keeps routing to it. A failed update
// is logged and retried with backoff; Run returns only when ctx ends.
func (r *Registration) Run(ctx context.Context, state func() State) {
	var (
		applied   *State
		haveMap   bool // the pod has a labels map: a JSON patch cannot add into a missing one
		checked   bool
		backoff   time.Duration
		lastError string
	)
	try := func(ctx context.Context, want State) error {
		if !checked {
			pod, err := r.getPod(ctx)
			if err != nil {
				return err
			}
			haveMap, checked = pod.Labels != nil, true
		}
		if err := r.patch(ctx, want, haveMap); err != nil {
			checked = false // someone may have changed the pod: look again
			return err
		}
		haveMap = true
		return nil
	}
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
loop:
	for ctx.Err() == nil {
		if want := state(); applied == nil || *applied != want {
			if err := try(ctx, want); err != nil {
				if ctx.Err() != nil {
					break
				}
				if err.Error() != lastError {
					r.cfg.Logger.Warn("kubernetes service registration: cannot label the pod; retrying", "pod", r.cfg.Namespace+"/"+r.cfg.PodName, "err", err)
					lastError = err.Error()
				}
				backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				continue
			}
			if lastError != "" {
				r.cfg.Logger.Info("kubernetes service registration: pod labelled again", "pod", r.cfg.Namespace+"/"+r.cfg.PodName)
			}
			applied, backoff, lastError = &want, 0, ""
			r.cfg.Logger.Debug("kubernetes service registration: labels updated", "active", want.Active, "sealed", want.Sealed, "initialized", want.Initialized)
		}
		select {
		case <-ctx.Done():
			break loop
		case <-r.kick:
		case <-ticker.C:
		}
	}
	// The server is going away: its pod must stop looking active at once, whatever Run's
	// caller's context says.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := try(fctx, Stopped); err != nil {
		r.cfg.Logger.Warn("kubernetes service registration: could not mark the pod stopped", "err", err)
	}
}

func (r *Registration) podURL() string {
	return strings.TrimSuffix(r.cfg.Host, "/") + "/api/v1/namespaces/" + url.PathEscape(r.cfg.Namespace) + "/pods/" + url.PathEscape(r.cfg.PodName)
}

func (r *Registration) getPod(ctx context.Context) (*corev1.Pod, error) {
	return r.do(ctx, http.MethodGet, "", nil)
}

// patchOp is one RFC 6902 operation, the body of a application/json-patch+json request.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patch sets every label with "add", which in a JSON patch also replaces, so the patch does
// not depend on which labels the pod already has; only a missing labels map must be created
// first.
func (r *Registration) patch(ctx context.Context, s State, haveMap bool) error {
	var ops []patchOp
	if !haveMap {
		ops = append(ops, patchOp{Op: "add", Path: "/metadata/labels", Value: map[string]string{}})
	}
	labels := s.Labels(r.cfg.Version)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		ops = append(ops, patchOp{Op: "add", Path: "/metadata/labels/" + escapePointer(k), Value: labels[k]})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	pod, err := r.do(ctx, http.MethodPatch, "application/json-patch+json", body)
	if err != nil {
		return err
	}
	for k, v := range labels {
		if pod.Labels[k] != v {
			return fmt.Errorf("kubernetes API returned the pod with %s=%q after the patch set %q", k, pod.Labels[k], v)
		}
	}
	return nil
}

func (r *Registration) do(ctx context.Context, method, contentType string, body []byte) (*corev1.Pod, error) {
	token, err := os.ReadFile(r.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("read the service account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.podURL(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s pod %s/%s: %w", strings.ToLower(method), r.cfg.Namespace, r.cfg.PodName, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read the API server's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{code: resp.StatusCode}
		_ = json.Unmarshal(raw, &e.status) // a body that is not a Status still leaves the code
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, fmt.Errorf("%w (the pod's service account needs a Role allowing get and patch on pods, bound by a RoleBinding; see deploy/kubernetes)", e)
		case http.StatusNotFound:
			return nil, fmt.Errorf("%w (pod_name and namespace must name this server's own pod)", e)
		}
		return nil, e
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, fmt.Errorf("decode the pod the API server returned: %w", err)
	}
	return &pod, nil
}

// escapePointer escapes a label key for a JSON pointer (RFC 6901): prefixed keys hold '/'.
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
