package audit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRecordJSONMatchesEncodingJSON: the field-by-field encoding of a record is byte for byte
// what encoding/json writes for it, over records with every field set, unset or awkward.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "secret/data/x", "<tag>&\"quote\"\\", "ünïcødé", "\u2028\u2029", "\x01ctl", "hmac-sha256:00ff"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	list := func() []string {
		if rng.IntN(3) == 0 {
			return nil
		}
		l := make([]string, rng.IntN(3))
		for i := range l {
			l[i] = str()
		}
		return l
	}
	data := func() map[string]any {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return map[string]any{}
		}
		return map[string]any{"z": str(), "a": json.Number("1.5e3"), "m": map[string]any{"k": []any{true, nil, str()}}, "<": 3}
	}
	auth := func() *Auth {
		if rng.IntN(3) == 0 {
			return nil
		}
		a := &Auth{ClientToken: str(), Accessor: str(), DisplayName: str(), Policies: list(), TokenPolicies: list(),
			EntityID: str(), RemainingUses: rng.IntN(3) - 1, TokenType: str(), TokenTTL: int64(rng.IntN(3)), TokenIssueTime: str()}
		if rng.IntN(2) == 0 {
			a.PolicyResults = &PolicyResults{Allowed: rng.IntN(2) == 0}
		}
		if rng.IntN(2) == 0 {
			a.Metadata = map[string]string{"role": str(), "b&": str()}
		}
		return a
	}
	for i := range 2000 {
		r := Record{Time: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("x", rng.IntN(7200))),
			Auth: auth(), Error: str(), RawRequestKeys: list(), RawResponseKeys: list(), Packed: rng.IntN(2) == 0}
		if rng.IntN(10) > 0 {
			r.Request = &Request{ID: str(), Operation: str(), MountPoint: str(), MountType: str(), MountAccessor: str(),
				MountClass: str(), ClientToken: str(), ClientTokenAccessor: str(), Path: str(), Data: data(),
				RemoteAddress: str(), RemotePort: rng.IntN(3)}
			if rng.IntN(2) == 0 {
				r.Request.Namespace = &Namespace{ID: str()}
			}
		}
		if rng.IntN(2) == 0 {
			r.Response = &Response{MountPoint: str(), MountType: str(), MountAccessor: str(), MountClass: str(),
				Auth: auth(), Data: data(), Warnings: list()}
			if rng.IntN(2) == 0 {
				r.Response.Secret = &Secret{LeaseID: str()}
			}
		}
		got, err := r.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// What encoding/json refuses, so does the record.
	if _, err := (Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Request: &Request{}}).appendJSON(nil); err == nil {
		t.Error("a time past year 9999 encoded")
	}
	if _, err := (Record{Request: &Request{Data: map[string]any{"c": make(chan int)}}}).appendJSON(nil); err == nil {
		t.Error("unencodable data encoded")
	}
}

// TestHashedDataInRecord: a record carrying its data as Hashed decodes to the same record as
// one carrying HashData's map, bounds and clear keys included.
func TestHashedDataInRecord(t *testing.T) {
	k := testKeyring(t)
	wide := map[string]any{}
	for i := range 400 {
		wide[fmt.Sprintf("f%03d", i)] = i
	}
	deep := map[string]any{"leaf": "x"}
	for range 20 {
		deep = map[string]any{"d": deep, "s": []any{deep}}
	}
	type point struct{ X, Label string }
	cases := []struct {
		data map[string]any
		keep map[string]bool
	}{
		{map[string]any{"data": map[string]any{"username": "app", "password": "p"}, "metadata": map[string]any{"created_time": "t", "version": 1, "destroyed": false, "custom_metadata": nil}}, nil},
		{map[string]any{"data": wide}, nil},
		{deep, map[string]bool{"s": true}},
		{map[string]any{strings.Repeat("k", 300): "v", "team": strings.Repeat("c", 5000), "n": json.Number("-0.5e-7")}, map[string]bool{"team": true}},
		{map[string]any{"p": point{"1", "<a>"}, "b": []byte("x"), "m": map[string]string{"a": "b"}, "l": []string{"x"}, "f": 1.25, "u": uint8(7), "t": time.Unix(5, 0).UTC()}, nil},
		{map[string]any{"team": map[string]any{"x": []any{"a", 2, map[string]string{"q": "r"}}}, TruncatedKey: "forged"}, map[string]bool{"team": true}},
	}
	for i, c := range cases {
		h, kept, err := AppendHashedData(nil, k, c.data, c.keep)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		m, kept2, err := HashData(k, c.data, c.keep)
		if err != nil || !reflect.DeepEqual(kept, kept2) {
			t.Fatalf("case %d: %v %v %v", i, err, kept, kept2)
		}
		if !json.Valid(h) {
			t.Fatalf("case %d: invalid JSON %.300s", i, h)
		}
		for _, s := range []string{"<a>", "password\":\"p", strings.Repeat("c", 5000), strings.Repeat("k", 300)} {
			if strings.Contains(string(h), s) {
				t.Fatalf("case %d: %q in the clear", i, s)
			}
		}
		rec := Record{Time: time.Unix(1, 0).UTC(), Request: &Request{ID: "r", Path: "p", Hashed: h}, Response: &Response{Hashed: h}}
		b, err := rec.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got.Request.Data, m) || !reflect.DeepEqual(got.Response.Data, m) {
			t.Fatalf("case %d: decoded %v, want %v", i, got.Request.Data, m)
		}
	}
	// The hard bound still cuts a record whose hashed data is over it.
	huge := map[string]any{}
	for i := range 200 {
		huge[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", 3000)
	}
	h, _, err := AppendHashedData(nil, k, huge, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, 2000)
	for i := range many {
		many[i] = string(h[:40])
	}
	ev, err := Record{Time: time.Unix(1, 0).UTC(), Request: &Request{ID: "r", Path: "p", Hashed: h}, Response: &Response{Hashed: h, Warnings: many}}.Event()
	if err != nil || len(ev.Payload) > MaxRecordBytes || !strings.Contains(string(ev.Payload), TruncatedKey) {
		t.Fatalf("bounded: %d bytes, %v", len(ev.Payload), err)
	}
}

// TestPackedRecordDecodesWhole: a record stored packed decodes to the record with every field
// it left out, and is smaller for it; an unpacked record decodes as it was.
func TestPackedRecordDecodesWhole(t *testing.T) {
	tok := "hmac-sha256:" + strings.Repeat("ab", 32)
	full := Record{Time: time.Unix(7, 0).UTC(),
		Auth: &Auth{ClientToken: tok, Accessor: "acc", DisplayName: "token", Policies: []string{"default", "app"},
			TokenPolicies: []string{"default", "app"}, PolicyResults: &PolicyResults{Allowed: true}, TokenType: "service"},
		Request: &Request{ID: "r1", Operation: "read", MountPoint: "secret/", MountType: "kv", MountAccessor: "kv_1",
			MountClass: "secret", ClientToken: tok, ClientTokenAccessor: "acc", Namespace: &Namespace{ID: "root"},
			Path: "secret/data/x", RemoteAddress: "127.0.0.1", RemotePort: 4000},
		Response: &Response{MountPoint: "secret/", MountType: "kv", MountAccessor: "kv_1", MountClass: "secret",
			Data: map[string]any{"data": map[string]any{"k": tok}}},
	}
	packed := Record{Time: full.Time, Packed: true,
		Auth:     &Auth{DisplayName: "token", Policies: []string{"default", "app"}, PolicyResults: &PolicyResults{Allowed: true}, TokenType: "service"},
		Request:  &Request{ID: "r1", Operation: "read", MountPoint: "secret/", MountType: "kv", MountAccessor: "kv_1", MountClass: "secret", ClientToken: tok, ClientTokenAccessor: "acc", Path: "secret/data/x", RemoteAddress: "127.0.0.1", RemotePort: 4000},
		Response: &Response{Data: map[string]any{"data": map[string]any{"k": tok}}},
	}
	pe, err := packed.Event()
	if err != nil {
		t.Fatal(err)
	}
	fe, err := full.Event()
	if err != nil {
		t.Fatal(err)
	}
	if len(pe.Payload) >= len(fe.Payload)-150 {
		t.Errorf("packed %d bytes, whole %d", len(pe.Payload), len(fe.Payload))
	}
	for name, payload := range map[string][]byte{"packed": pe.Payload, "whole": fe.Payload} {
		got, err := Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, full) {
			t.Errorf("%s decodes to\n%+v\nwant\n%+v", name, got, full)
		}
	}
}

// TestHashedDataNumbers: Go integers of every width stay numbers, written in full.
func TestHashedDataNumbers(t *testing.T) {
	h, _, err := AppendHashedData(nil, testKeyring(t), map[string]any{
		"a": int64(-3), "b": uint64(1 << 63), "c": int8(-1), "d": uint16(9), "e": 42, "f": uint(7), "g": float32(0.5)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":-3,"b":9223372036854775808,"c":-1,"d":9,"e":42,"f":7,"g":0.5}`; string(h) != want {
		t.Fatalf("got %s, want %s", h, want)
	}
}
