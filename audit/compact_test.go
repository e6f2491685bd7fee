package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/ledger-secrets/ledger/ledger"
)

// compactCases are records as writes make them: a KV write, a login, a lease, one bounded
// for size, and one with next to nothing in it.
func compactCases(t *testing.T) map[string]Record {
	kr, err := ledger.NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hd := func(m map[string]any) HashedData {
		h, _, err := AppendHashedData(nil, kr, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	now := time.Date(2026, 12, 7, 9, 9, 20, 429463080, time.UTC)
	auth := &Auth{DisplayName: "token", Policies: []string{"default", "app-writer"}, TokenType: "service", TokenTTL: 3600,
		PolicyResults: &PolicyResults{Allowed: true}, TokenIssueTime: "2026-12-07T09:09:13Z", Metadata: map[string]string{"team": "payments"}}
	req := func(op, mount, typ, path string, data map[string]any) *Request {
		return &Request{ID: "e3bff962-1396-706e-f4da-14a37c2ddc4a", Operation: op, MountPoint: mount, MountType: typ,
			MountAccessor: typ + "_3b9782dd", ClientToken: HMAC(kr, "hvs.client"), ClientTokenAccessor: "Xh3kq9s0aLrT2vBn8mQpZc1D",
			Path: path, Hashed: hd(data), RemoteAddress: "10.1.2.3", RemotePort: 36298}
	}
	return map[string]Record{
		"kv write": {Time: now, Auth: auth, Packed: true,
			Request:  req("create", "secret/", "kv", "secret/data/app/db", map[string]any{"data": map[string]any{"username": "app", "password": "s3cr3t"}}),
			Response: &Response{Hashed: hd(map[string]any{"created_time": now.Format(time.RFC3339Nano), "deletion_time": "", "destroyed": false, "version": 3})}},
		"login": {Time: now, Packed: true, Request: req("update", "auth/approle/", "approle", "auth/approle/login", map[string]any{"role_id": "r", "secret_id": "s"}),
			Response: &Response{Auth: &Auth{ClientToken: HMAC(kr, "hvs.new"), Accessor: "acc", Policies: []string{"default"}, TokenType: "service", TokenTTL: 2764800}}},
		"lease": {Time: now, Auth: auth, Packed: true, Request: req("read", "database/", "database", "database/creds/app", nil),
			Response:        &Response{Secret: &Secret{LeaseID: "database/creds/app/abc"}, Hashed: hd(map[string]any{"username": "v-app-1", "password": "pw"})},
			RawResponseKeys: []string{"username"}},
		"bounded": {Time: now, Packed: true, Request: req("update", "secret/", "kv", "secret/data/"+strings.Repeat("p", 4000), nil),
			Error: strings.Repeat("e", 40_000)},
		"bare": {Time: now, Request: &Request{ID: "x", Operation: "update", Path: "sys/unseal"}},
	}
}

// A compressed record decodes to what its plain form decodes to, and a KV write's takes at
// most 60% of the bytes.
func TestCompactEventRoundTrip(t *testing.T) {
	for name, r := range compactCases(t) {
		plain, err := r.Event()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		packed, err := r.CompactEvent()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if packed.Type != Recorded || packed.Subject != plain.Subject || !packed.Time.Equal(plain.Time) {
			t.Errorf("%s: event %s %s %v, want %s %s %v", name, packed.Type, packed.Subject, packed.Time, plain.Type, plain.Subject, plain.Time)
		}
		if packed.Payload[0] != compactV1 {
			t.Errorf("%s: stored form starts with %#x", name, packed.Payload[0])
		}
		want, err := Decode(plain.Payload)
		if err != nil {
			t.Fatalf("%s: plain: %v", name, err)
		}
		got, err := Decode(packed.Payload)
		if err != nil {
			t.Fatalf("%s: compressed: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Errorf("%s: decoded\n%s\nwant\n%s", name, gj, wj)
		}
		if name == "kv write" && len(packed.Payload)*10 > len(plain.Payload)*6 {
			t.Errorf("kv write: %d bytes compressed from %d", len(packed.Payload), len(plain.Payload))
		}
	}
}

// Stored records must stay readable: the dictionary they were compressed against is fixed.
func TestCompactDictionaryUnchanged(t *testing.T) {
	sum := sha256.Sum256([]byte(compactDictV1))
	if got := hex.EncodeToString(sum[:]); got != compactDictV1SHA256 {
		t.Fatalf("compactDictV1 changed (sha256 %s): records stored under it would no longer decode; add a new dictionary with a new first byte instead", got)
	}
}

// Damaged compressed records are errors, never a panic or a record; one that claims to expand
// past the record bound is refused before it is expanded. (An altered byte inside a block may
// still expand: the payload's integrity is the seal's, checked before it is decoded.)
func TestCompactBadInput(t *testing.T) {
	good, err := compactCases(t)["kv write"].CompactEvent()
	if err != nil {
		t.Fatal(err)
	}
	huge := append([]byte{compactV1}, s2.Encode(nil, make([]byte, MaxRecordBytes+1))...)
	garbage := []byte{compactV1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}
	for name, p := range map[string][]byte{
		"marker only": {compactV1},
		"truncated":   good.Payload[:len(good.Payload)/2],
		"over bound":  huge,
		"garbage":     garbage,
	} {
		if _, err := Decode(p); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := expandRecord(huge); err == nil || !strings.Contains(err.Error(), "record bound") {
		t.Errorf("over bound: %v", err)
	}
}

func FuzzExpandRecord(f *testing.F) {
	f.Add([]byte{compactV1})
	f.Add(compactRecord([]byte(`{"time":"2026-01-01T00:00:00Z","request":{"id":"x","operation":"read","path":"p"}}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, err := expandRecord(append([]byte{compactV1}, b...)); err == nil && len(out) > MaxRecordBytes {
			t.Fatalf("expanded to %d bytes", len(out))
		}
	})
}
