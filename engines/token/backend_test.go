package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// harness is the pipeline in miniature: it calls the backend, then applies the returned
// events to a real view at increasing positions, as the runner would after the append.
type harness struct {
	t       *testing.T
	kr      *ledger.Keyring
	view    *tokenview.View
	b       *Backend
	mount   engines.Mount
	seq     uint64
	now     time.Time
	rootTok string
	secrets []string // every token string handed out, to check no error or event carries one
	events  []ledger.Event
}

var epoch = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	kr, err := ledger.NewKeyring(epoch)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, kr: kr, view: tokenview.New(), now: epoch,
		mount: engines.Mount{Path: "auth/token/", Type: "token", UUID: "u-token", Accessor: "auth_token_1"},
	}
	h.b = New(h.view, kr, h.mount, func(name string) bool { return name == "default" || name == "web" }, opts...)
	// Init issues the root token with CreatedEvent, outside the engine.
	tok, acc := NewToken()
	h.rootTok = tok
	h.secrets = append(h.secrets, tok)
	h.apply([]ledger.Event{CreatedEvent(tokenview.CreatedPayload{
		MAC: kr.MAC("token", tok), Accessor: acc, Policies: []string{"root"}, Orphan: true,
		DisplayName: "root", Path: "auth/token/root", CreationTime: epoch, Type: "service",
	}, "")})
	return h
}

func (h *harness) apply(evs []ledger.Event) {
	h.t.Helper()
	h.seq++
	for i, ev := range evs {
		if ev.Subject == "" || !strings.HasPrefix(ev.Subject, "token.") {
			h.t.Fatalf("event %s has subject %q", ev.Type, ev.Subject)
		}
		rec := ledger.Record{Event: ev, Pos: ledger.Position{Seq: h.seq, Index: uint32(i)}}
		if err := h.view.Apply(rec); err != nil {
			h.t.Fatalf("apply %s: %v", ev.Type, err)
		}
	}
	h.events = append(h.events, evs...)
}

// caller builds the pipeline's Caller for a token string.
func (h *harness) caller(tok string) *engines.Caller {
	h.t.Helper()
	e, ok := h.view.ByMAC(h.kr.MAC("token", tok))
	if !ok {
		h.t.Fatal("caller token not in view")
	}
	return &engines.Caller{
		TokenMAC: e.MAC, Accessor: e.Accessor, Policies: e.Policies, DisplayName: e.DisplayName,
		Root: contains(e.Policies, "root"), Orphan: e.ParentMAC == "",
	}
}

// body decodes JSON the way the HTTP adapter does (numbers as json.Number).
func body(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("test body %s: %v", s, err)
	}
	return m
}

func (h *harness) do(ctx context.Context, c *engines.Caller, op engines.Operation, path string, data map[string]any) (*engines.Response, error) {
	h.t.Helper()
	req := &engines.Request{ID: "req-1", Op: op, Path: path, Mount: h.mount, Data: data, Caller: c, Now: h.now}
	resp, err := h.b.HandleRequest(ctx, req)
	if err != nil {
		for _, s := range h.secrets {
			if strings.Contains(err.Error(), s) {
				h.t.Fatalf("error %q carries a token string", err)
			}
		}
		return nil, err
	}
	if resp.Auth != nil && resp.Auth.ClientToken != "" {
		h.secrets = append(h.secrets, resp.Auth.ClientToken)
	}
	for _, ev := range resp.Events {
		if ev.Actor != c.Accessor || ev.Request != "req-1" {
			h.t.Fatalf("event %s not stamped with the caller and request: %+v", ev.Type, ev)
		}
	}
	h.apply(resp.Events)
	return resp, nil
}

// write is an update with a JSON body, failing the test on error.
func (h *harness) write(c *engines.Caller, path, js string) *engines.Response {
	h.t.Helper()
	resp, err := h.do(context.Background(), c, engines.OpUpdate, path, body(h.t, js))
	if err != nil {
		h.t.Fatalf("%s %s: %v", path, js, err)
	}
	return resp
}

func (h *harness) root() *engines.Caller { return h.caller(h.rootTok) }

// create makes a token as c and returns its string and auth block.
func (h *harness) create(c *engines.Caller, js string) (string, *engines.Auth) {
	h.t.Helper()
	resp := h.write(c, "create", js)
	if resp.Auth == nil || resp.Auth.ClientToken == "" {
		h.t.Fatalf("create %s: no token in %+v", js, resp)
	}
	return resp.Auth.ClientToken, resp.Auth
}

func (h *harness) lookup(tok string) map[string]any {
	h.t.Helper()
	return h.write(h.root(), "lookup", `{"token": "`+tok+`"}`).Data
}

// wantErr checks an error's kind and exact client-visible message.
func wantErr(t *testing.T, err error, kind error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %q", kind, msg)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("error %q, want %q", err, msg)
	}
}

func TestNewToken(t *testing.T) {
	tokRE := regexp.MustCompile(`^hvs\.[0-9A-Za-z]{24}$`)
	accRE := regexp.MustCompile(`^[0-9A-Za-z]{24}$`)
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		tok, acc := NewToken()
		if !tokRE.MatchString(tok) || !accRE.MatchString(acc) {
			t.Fatalf("NewToken = %q, %q", tok, acc)
		}
		if seen[tok] || seen[acc] {
			t.Fatal("NewToken repeated itself")
		}
		seen[tok], seen[acc] = true, true
	}
}

func TestPathsSpecialAndLocks(t *testing.T) {
	h := newHarness(t)
	if got := h.b.Sudo(); strings.Join(got, ",") != "accessors*,revoke-orphan/*" {
		t.Fatalf("Sudo = %v", got)
	}
	if got := h.b.Unauthenticated(); len(got) != 0 {
		t.Fatalf("Unauthenticated = %v", got)
	}
	for path, want := range map[string]string{
		"create": "", "create-orphan": "", "renew-self": TreeLock, "revoke": TreeLock,
		"revoke-orphan": TreeLock, "lookup": "", "lookup-self": "", "lookup-accessor": "",
	} {
		if got := h.b.LockKey(&engines.Request{Op: engines.OpUpdate, Path: path}); got != want {
			t.Errorf("LockKey(update %s) = %q, want %q", path, got, want)
		}
	}
	if got := h.b.LockKey(&engines.Request{Op: engines.OpRead, Path: "lookup-self"}); got != "" {
		t.Errorf("LockKey(read) = %q", got)
	}
}

func TestEventsNeverCarryTokens(t *testing.T) {
	h := newHarness(t)
	a, _ := h.create(h.root(), `{"policies": ["web"], "ttl": "1h"}`)
	b, _ := h.create(h.caller(a), `{}`)
	h.write(h.caller(b), "renew-self", `{"increment": "30m"}`)
	h.write(h.root(), "revoke", `{"token": "`+a+`"}`)
	if len(h.events) < 5 {
		t.Fatalf("only %d events", len(h.events))
	}
	for _, ev := range h.events {
		for _, s := range h.secrets {
			if bytes.Contains(ev.Payload, []byte(s)) || strings.Contains(ev.Subject, s) {
				t.Fatalf("event %s carries a token string", ev.Type)
			}
		}
	}
}
