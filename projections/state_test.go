package projections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

func TestMountsSnapshotRoundTrip(t *testing.T) {
	type state struct {
		N int `json:"n"`
	}
	mounts := map[string]*state{"b": {N: 2}, "a": {N: 1}}
	b, err := projections.EncodeMounts(1, mounts, map[string]bool{"z": true, "y": true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"mounts":{"a":{"n":1},"b":{"n":2}},"disabled":["y","z"]}`; string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	got, disabled, err := projections.DecodeMounts[*state]("test", 1, b)
	if err != nil || len(got) != 2 || got["b"].N != 2 || !disabled["y"] || !disabled["z"] || len(disabled) != 2 {
		t.Fatalf("decoded %v %v %v", got, disabled, err)
	}
	if b, _ := projections.EncodeMounts(1, map[string]*state{}, nil); string(b) != `{"v":1,"mounts":{}}` {
		t.Fatalf("empty: %s", b)
	}
	for _, bad := range []string{`{"v":2,"mounts":{}}`, `{"v":1}`, `not json`} {
		if _, _, err := projections.DecodeMounts[*state]("test", 1, []byte(bad)); err == nil || !strings.Contains(err.Error(), "restore test view") {
			t.Fatalf("%s: %v", bad, err)
		}
	}
}

func TestDecodeNamesTheEventNotThePayload(t *testing.T) {
	mark := errors.New("malformed")
	rec := ledger.Record{Event: ledger.Event{Type: "x.written.v1", Payload: []byte(`{"secret":"hunter2-value"`)}}
	var p struct{ Secret string }
	err := projections.DecodeMarked(rec, &p, mark)
	if !errors.Is(err, mark) || !strings.Contains(err.Error(), "x.written.v1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	if err := projections.Decode(rec, &p); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestListSnapshotSortedByName(t *testing.T) {
	type e struct {
		Name string `json:"name"`
	}
	b, err := projections.EncodeList(map[string]e{"b": {"b"}, "a": {"a"}})
	if err != nil || string(b) != `[{"name":"a"},{"name":"b"}]` {
		t.Fatalf("%s %v", b, err)
	}
	if b, _ := projections.EncodeList(map[string]e{}); string(b) != `[]` {
		t.Fatalf("empty: %s", b)
	}
	m, err := projections.DecodeList("test", b, func(x e) string { return x.Name })
	if err != nil || len(m) != 2 || m["b"].Name != "b" {
		t.Fatal(m, err)
	}
}
