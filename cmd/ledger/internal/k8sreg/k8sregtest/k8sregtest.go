// Package k8sregtest is the part of a Kubernetes API server that service registration talks
// to, for tests: one pod, read with GET and changed with an RFC 6902 JSON patch, over TLS with
// a bearer token. The patch is applied to the pod's JSON document and the result decoded
// strictly into corev1.Pod, and label keys and values are validated as the API server
// validates them, so a patch the real server would refuse is refused here too.
package k8sregtest

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Server is the stand-in API server. URL, CAFile and TokenFile are what a pod would find in
// KUBERNETES_SERVICE_HOST/PORT and its service account's directory.
type Server struct {
	URL       string
	CAFile    string
	TokenFile string
	srv       *httptest.Server

	mu      sync.Mutex
	pod     *corev1.Pod
	token   string
	deny    int // answer 403 to this many more requests
	patches [][]byte
}

// New serves pod until the test ends.
func New(t testing.TB, pod *corev1.Pod) *Server {
	t.Helper()
	a := &Server{pod: pod, token: "sa-token-1"}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes a test means to fail
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	dir := t.TempDir()
	a.CAFile = filepath.Join(dir, "ca.crt")
	a.TokenFile = filepath.Join(dir, "token")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
	if err := os.WriteFile(a.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	a.SetToken(t, "sa-token-1")
	return a
}

// SetToken rotates the token: the file the pod reads and the one the server accepts.
func (a *Server) SetToken(t testing.TB, tok string) {
	t.Helper()
	a.mu.Lock()
	a.token = tok
	a.mu.Unlock()
	if err := os.WriteFile(a.TokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Deny answers the next n requests 403, as a cluster without the Role would.
func (a *Server) Deny(n int) {
	a.mu.Lock()
	a.deny = n
	a.mu.Unlock()
}

// Patches are the bodies of the JSON patches received, in order.
func (a *Server) Patches() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]byte(nil), a.patches...)
}

// Labels are the pod's labels now.
func (a *Server) Labels() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for k, v := range a.pod.Labels {
		out[k] = v
	}
	return out
}

func status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)})
}

func (a *Server) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		status(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
		return
	}
	want := "/api/v1/namespaces/" + a.pod.Namespace + "/pods/" + a.pod.Name
	if r.URL.Path != want {
		status(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("pods %q not found", strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/")))
		return
	}
	if a.deny > 0 {
		a.deny--
		status(w, http.StatusForbidden, metav1.StatusReasonForbidden,
			fmt.Sprintf(`pods %q is forbidden: User "system:serviceaccount:%s:ledger" cannot %s resource "pods"`, a.pod.Name, a.pod.Namespace, strings.ToLower(r.Method)))
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json-patch+json" {
			status(w, http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, "the body of the request was in an unknown format")
			return
		}
		body, _ := io.ReadAll(r.Body)
		a.patches = append(a.patches, body)
		next, err := applyJSONPatch(a.pod, body)
		if err != nil {
			status(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
			return
		}
		a.pod = next
	default:
		status(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "method not allowed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a.pod)
}

// applyJSONPatch applies add, replace and remove operations (all that label changes need)
// to pod's JSON document, then decodes the result strictly and validates its labels.
func applyJSONPatch(pod *corev1.Pod, body []byte) (*corev1.Pod, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ops); err != nil {
		return nil, fmt.Errorf("decode JSON patch: %w", err)
	}
	raw, _ := json.Marshal(pod)
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	for _, op := range ops {
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		for i, p := range parts {
			parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		}
		parent := doc
		for _, p := range parts[:len(parts)-1] {
			next, ok := parent[p].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("jsonpatch %s operation does not apply: doc is missing path: %q", op.Op, op.Path)
			}
			parent = next
		}
		last := parts[len(parts)-1]
		switch op.Op {
		case "add", "replace":
			if _, exists := parent[last]; op.Op == "replace" && !exists {
				return nil, fmt.Errorf("jsonpatch replace operation does not apply: doc is missing key: %q", op.Path)
			}
			var v any
			if err := json.Unmarshal(op.Value, &v); err != nil {
				return nil, fmt.Errorf("jsonpatch %s: bad value: %w", op.Op, err)
			}
			parent[last] = v
		case "remove":
			delete(parent, last)
		default:
			return nil, fmt.Errorf("unexpected kind: %s", op.Op)
		}
	}
	raw, _ = json.Marshal(doc)
	var out corev1.Pod
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("patched pod does not decode: %w", err)
	}
	for k, v := range out.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("metadata.labels: Invalid value: %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("metadata.labels: Invalid value: %q: %s", v, strings.Join(errs, "; "))
		}
	}
	return &out, nil
}
