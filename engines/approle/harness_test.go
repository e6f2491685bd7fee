package approle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	approleview "github.com/ledger-secrets/ledger/projections/approle"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// harness is the pipeline in miniature: it takes the backend's lock key for writes, calls the
// backend, then applies the returned events to real views (AppRole and token) at increasing
// positions, as the runner would after the append, before releasing the lock.
type harness struct {
	t      *testing.T
	kr     *ledger.Keyring
	view   *approleview.View
	tokens *tokenview.View
	b      *Backend
	mount  engines.Mount

	mu      sync.Mutex // guards everything below
	seq     uint64
	now     time.Time
	reqs    int
	recs    []ledger.Record
	secrets []string // every secret ID and token handed out, to check no event or error has one

	locks sync.Map // lock key → *sync.Mutex
}

var epoch = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	t.Helper()
	kr, err := ledger.NewKeyring(epoch)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, kr: kr, view: approleview.New(), tokens: tokenview.New(), now: epoch,
		mount: engines.Mount{Path: "auth/approle/", Type: "approle", UUID: "u-approle", Accessor: "auth_approle_1",
			DefaultLeaseTTL: 768 * time.Hour, MaxLeaseTTL: 768 * time.Hour},
	}
	h.b = New(h.view, h.tokens, kr, h.mount)
	return h
}

// advance moves the harness clock.
func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// call is one request: path relative to the mount, JSON body (decoded as the HTTP edge does),
// remote address. Requests on unauthenticated paths carry no caller.
type call struct {
	op     engines.Operation
	path   string
	body   string
	remote string
}

func (h *harness) do(c call) (*engines.Response, error) {
	h.t.Helper()
	data := map[string]any{}
	if c.body != "" {
		dec := json.NewDecoder(strings.NewReader(c.body))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			h.t.Fatalf("bad test body %q: %v", c.body, err)
		}
	}
	if c.remote == "" {
		c.remote = "127.0.0.1:50000"
	}
	h.mu.Lock()
	h.reqs++
	req := &engines.Request{ID: fmt.Sprintf("req-%d", h.reqs), Op: c.op, Path: c.path, Mount: h.mount, Data: data,
		RemoteAddr: c.remote, Now: h.now}
	h.mu.Unlock()
	if !matches(h.b.Unauthenticated(), c.path) {
		req.Caller = &engines.Caller{Accessor: "admin-accessor", Policies: []string{"root"}, Root: true}
	}
	if c.op != engines.OpRead && c.op != engines.OpList {
		if key := h.b.LockKey(req); key != "" {
			mu, _ := h.locks.LoadOrStore(key, &sync.Mutex{})
			mu.(*sync.Mutex).Lock()
			defer mu.(*sync.Mutex).Unlock()
		}
	}
	resp, err := h.b.HandleRequest(context.Background(), req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		h.t.Fatalf("%s %s: nil response without error", c.op, c.path)
	}
	if len(resp.Events) > 0 && (c.op == engines.OpRead || c.op == engines.OpList) {
		h.t.Fatalf("%s %s: a read decided events", c.op, c.path)
	}
	h.apply(resp.Events)
	h.mu.Lock()
	if resp.Auth != nil {
		h.secrets = append(h.secrets, resp.Auth.ClientToken)
	}
	if s, ok := resp.Data["secret_id"].(string); ok {
		h.secrets = append(h.secrets, s)
	}
	h.mu.Unlock()
	return resp, nil
}

// apply folds events into the views at the next position.
func (h *harness) apply(evs []ledger.Event) {
	h.t.Helper()
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	for i, ev := range evs {
		if !strings.HasPrefix(ev.Subject, "approle.") && !strings.HasPrefix(ev.Subject, "token.") && !strings.HasPrefix(ev.Subject, "fingerprint.") {
			h.t.Fatalf("event %s has subject %q", ev.Type, ev.Subject)
		}
		if ev.Time.IsZero() {
			h.t.Fatalf("event %s has no time", ev.Type)
		}
		rec := ledger.Record{Event: ev, Pos: ledger.Position{Seq: h.seq, Index: uint32(i)}}
		for _, v := range []interface{ Apply(ledger.Record) error }{h.view, h.tokens} {
			if err := v.Apply(rec); err != nil {
				h.t.Fatalf("apply %s: %v", ev.Type, err)
			}
		}
		h.recs = append(h.recs, rec)
	}
}

func matches(patterns []string, path string) bool {
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(path, pre) || p == path {
			return true
		}
	}
	return false
}

func (h *harness) ok(c call) *engines.Response {
	h.t.Helper()
	resp, err := h.do(c)
	if err != nil {
		h.t.Fatalf("%s %s: %v", c.op, c.path, err)
	}
	return resp
}

// fails runs c, which must fail with kind and, when msg is not empty, exactly that message.
func (h *harness) fails(c call, kind error, msg string) error {
	h.t.Helper()
	resp, err := h.do(c)
	if err == nil {
		h.t.Fatalf("%s %s: succeeded (%+v), want %v", c.op, c.path, resp, kind)
	}
	if !errors.Is(err, kind) {
		h.t.Fatalf("%s %s: error %v, want %v", c.op, c.path, err, kind)
	}
	if msg != "" && err.Error() != msg {
		h.t.Fatalf("%s %s: message %q, want %q", c.op, c.path, err.Error(), msg)
	}
	h.noSecretIn(err.Error())
	return err
}

// noSecretIn fails if s carries any secret handed out so far.
func (h *harness) noSecretIn(s string) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sec := range h.secrets {
		if sec != "" && strings.Contains(s, sec) {
			h.t.Fatalf("a secret leaked into %q", s)
		}
	}
}

// noSecretInEvents checks every event decided so far.
func (h *harness) noSecretInEvents() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, rec := range h.recs {
		for _, sec := range h.secrets {
			if bytes.Contains(rec.Payload, []byte(sec)) {
				h.t.Fatalf("event %s carries a secret in clear", rec.Type)
			}
		}
	}
}

func write(path, body string) call { return call{op: engines.OpUpdate, path: path, body: body} }
func read(path string) call        { return call{op: engines.OpRead, path: path} }
func del(path string) call         { return call{op: engines.OpDelete, path: path} }
func listing(path string) call     { return call{op: engines.OpList, path: path} }

// loginFrom is a login from a remote address.
func loginFrom(remote, roleID, secretID string) call {
	b, _ := json.Marshal(map[string]string{"role_id": roleID, "secret_id": secretID})
	return call{op: engines.OpUpdate, path: "login", body: string(b), remote: remote}
}

func (h *harness) roleID(role string) string {
	h.t.Helper()
	return h.ok(read("role/" + role + "/role-id")).Data["role_id"].(string)
}

// secretID generates a secret ID for role with body.
func (h *harness) secretID(role, body string) (secretID, accessor string) {
	h.t.Helper()
	d := h.ok(write("role/"+role+"/secret-id", body)).Data
	return d["secret_id"].(string), d["secret_id_accessor"].(string)
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
