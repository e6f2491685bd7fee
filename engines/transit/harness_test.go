package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// harness plays the pipeline around one backend with a real view: existence check (update →
// create), decide, then apply the decided events to the view at increasing positions, as the
// runner would after the log appended them. It keeps every applied record, so a test can
// replay the session through the view conformance suite.
type harness struct {
	t     testing.TB
	view  *transitview.View
	b     *Backend
	mount engines.Mount
	now   time.Time
	seq   uint64
	reqs  int
	recs  []ledger.Record
	// noCreate drops the "create" capability: an update stays an update (no upsert).
	noCreate bool
}

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, view: transitview.New(), now: epoch}
	h.mount = engines.Mount{Path: "transit/", Type: "transit", UUID: "mount-uuid-1", Accessor: "transit_1"}
	h.b = New(h.view, h.mount)
	return h
}

func (h *harness) req(op engines.Operation, path string, data map[string]any) *engines.Request {
	h.reqs++
	h.now = h.now.Add(time.Millisecond)
	if data == nil {
		data = map[string]any{}
	}
	// As the HTTP edge decodes it: JSON numbers stay json.Number.
	b, err := json.Marshal(data)
	if err != nil {
		h.t.Fatalf("encode request: %v", err)
	}
	data = body(string(b))
	return &engines.Request{ID: fmt.Sprintf("req-%d", h.reqs), Op: op, Path: path, Data: data, Mount: h.mount,
		Caller: &engines.Caller{Accessor: "accessor-1"}, Now: h.now}
}

// apply folds events into the view at the next positions.
func (h *harness) apply(events []ledger.Event) {
	h.t.Helper()
	h.seq++
	for i, ev := range events {
		if want := ledger.SubjectFor("transit", h.mount.UUID, subjectName(h.t, ev)); ev.Subject != want {
			h.t.Fatalf("%s: subject %q, want %q", ev.Type, ev.Subject, want)
		}
		rec := ledger.Record{Event: ev, Pos: ledger.Position{Seq: h.seq, Index: uint32(i)}}
		if err := h.view.Apply(rec); err != nil {
			h.t.Fatalf("apply %s: %v", ev.Type, err)
		}
		h.recs = append(h.recs, rec)
	}
}

func subjectName(t testing.TB, ev ledger.Event) string {
	var p struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatalf("payload of %s: %v", ev.Type, err)
	}
	return p.Name
}

// do runs one request: existence check, decide, apply.
func (h *harness) do(op engines.Operation, path string, data map[string]any) (*engines.Response, error) {
	h.t.Helper()
	ctx := context.Background()
	req := h.req(op, path, data)
	if req.Op == engines.OpUpdate && !h.noCreate {
		exists, err := h.b.Exists(ctx, req)
		if err != nil {
			h.t.Fatalf("exists %s: %v", path, err)
		}
		if !exists {
			req.Op = engines.OpCreate
		}
	}
	resp, err := h.b.HandleRequest(ctx, req)
	if err != nil {
		if resp != nil {
			h.t.Fatalf("%s %s: response and error", op, path)
		}
		return nil, err
	}
	if resp == nil {
		h.t.Fatalf("%s %s: nil response without error", op, path)
	}
	if len(resp.Events) > 0 {
		if op == engines.OpRead || op == engines.OpList {
			h.t.Fatalf("%s %s: a read decided events", op, path)
		}
		h.apply(resp.Events)
	}
	return resp, nil
}

func (h *harness) ok(op engines.Operation, path string, data map[string]any) *engines.Response {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err != nil {
		h.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

func (h *harness) write(path string, data map[string]any) map[string]any {
	h.t.Helper()
	resp := h.ok(engines.OpUpdate, path, data)
	if resp.Status != 0 && resp.Status != 200 {
		h.t.Fatalf("write %s: status %d: %s", path, resp.Status, wire(h.t, resp))
	}
	return roundTrip(h.t, resp.Data)
}

func (h *harness) read(path string) map[string]any {
	h.t.Helper()
	return roundTrip(h.t, h.ok(engines.OpRead, path, nil).Data)
}

// fails runs a request that must fail with kind and, when msg is not empty, exactly msg.
func (h *harness) fails(op engines.Operation, path string, data map[string]any, kind error, msg string) error {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err == nil {
		h.t.Fatalf("%s %s: succeeded (%s), want %v", op, path, wire(h.t, resp), kind)
	}
	if !errors.Is(err, kind) {
		h.t.Fatalf("%s %s: error %v, want %v", op, path, err, kind)
	}
	if msg != "" && err.Error() != msg {
		h.t.Fatalf("%s %s: message %q, want %q", op, path, err.Error(), msg)
	}
	return err
}

func (h *harness) bad(path string, data map[string]any, msg string) error {
	h.t.Helper()
	return h.fails(engines.OpUpdate, path, data, engines.ErrBadRequest, msg)
}

// wire renders response data as a client would see it.
func wire(t testing.TB, resp *engines.Response) string {
	t.Helper()
	b, err := json.Marshal(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// roundTrip returns data as it decodes on the client side (numbers as json.Number).
func roundTrip(t testing.TB, data map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return body(string(b))
}

// body decodes JSON the way the HTTP edge does (numbers kept as json.Number).
func body(s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t testing.TB, s any) string {
	t.Helper()
	str, ok := s.(string)
	if !ok {
		t.Fatalf("not a string: %#v", s)
	}
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		t.Fatalf("not base64: %q", str)
	}
	return string(b)
}

// encrypt and decrypt are the common round trip.
func (h *harness) encrypt(key, plaintext string, extra map[string]any) string {
	h.t.Helper()
	data := map[string]any{"plaintext": b64(plaintext)}
	for k, v := range extra {
		data[k] = v
	}
	ct, _ := h.write("encrypt/"+key, data)["ciphertext"].(string)
	if ct == "" {
		h.t.Fatalf("encrypt %s: no ciphertext", key)
	}
	return ct
}

func (h *harness) decrypt(key, ciphertext string, extra map[string]any) string {
	h.t.Helper()
	data := map[string]any{"ciphertext": ciphertext}
	for k, v := range extra {
		data[k] = v
	}
	return unb64(h.t, h.write("decrypt/"+key, data)["plaintext"])
}

// batchResults returns a batch response's status and items.
func batchResults(t testing.TB, resp *engines.Response) (int, []map[string]any) {
	t.Helper()
	d := roundTrip(t, resp.Data)
	raw, ok := d["batch_results"].([]any)
	if !ok {
		t.Fatalf("no batch_results in %s", wire(t, resp))
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	status := resp.Status
	if status == 0 {
		status = 200
	}
	return status, out
}
