package audit

import (
	"encoding/json"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

func rec(t *testing.T, seq uint64, typ string, payload any) ledger.Record {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Pos: ledger.Position{Seq: seq}, Event: ledger.Event{Type: typ, Payload: b}}
}

func TestViewConformance(t *testing.T) {
	recs := []ledger.Record{
		rec(t, 2, DeviceEnabled, Device{Path: "file/", Type: "file", UUID: "u1", Options: map[string]string{"file_path": "/a", "audit_non_hmac_request_keys": "team"}}),
		rec(t, 3, "kv.version.written.v1", map[string]any{}),
		rec(t, 4, DeviceEnabled, Device{Path: "sock/", Type: "socket", UUID: "u2", Options: map[string]string{"address": "x"}}),
		rec(t, 5, Checkpointed, Checkpoint{Seq: 4, Hash: "ab"}),
		rec(t, 6, DeviceDisabled, DisabledPayload{Path: "sock/", UUID: "u2"}),
		rec(t, 7, "kv.version.written.v1", map[string]any{}),
	}
	viewtest.Conformance(t, func() projections.View { return NewView() }, recs)

	v := NewView()
	changed := v.Changed()
	for _, r := range recs[:1] {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
	default:
		t.Fatal("enabling a device did not signal a change")
	}
	d, ok := v.Get("file/")
	if !ok || d.LogStart != 2 {
		t.Fatalf("device %+v: LogStart should be the enabling batch", d)
	}
	due := v.DueAfter(2)
	for _, r := range recs[1:] {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-due:
	default:
		t.Fatal("DueAfter(2) not signalled")
	}
	since, last := v.SinceCheckpoint()
	if since != 2 || last.Seq != 4 || last.At.Seq != 5 {
		t.Fatalf("since checkpoint %d, last %+v", since, last)
	}
	if cp, ok := v.Vouched(4); !ok || cp.Hash != "ab" {
		t.Fatal("checkpoint at 4 not found")
	}
	if _, ok := v.Vouched(3); ok {
		t.Fatal("seq 3 vouched for")
	}
	req, resp := v.NonHMACKeys()
	if !req["team"] || resp != nil || len(v.Devices()) != 1 {
		t.Fatalf("keys %v %v, devices %v", req, resp, v.Devices())
	}
	if err := v.Apply(rec(t, 9, DeviceEnabled, "not a device")); err == nil {
		t.Fatal("a bad payload was accepted")
	}
}
