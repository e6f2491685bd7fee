package audit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHashDataBounds: breadth, long keys, long clear values, depth and lists are cut with string
// markers; a record of ordinary size is the same as without bounds.
func TestHashDataBounds(t *testing.T) {
	k := testKeyring(t)
	wide := map[string]any{}
	for i := range 50000 {
		wide[fmt.Sprintf("f%05d", i)] = fmt.Sprintf("v%d", i)
	}
	deep := map[string]any{"leaf": "x"}
	for range 100 {
		deep = map[string]any{"d": deep}
	}
	long := strings.Repeat("k", 1000)
	list := make([]any, 1000)
	for i := range list {
		list[i] = i
	}
	clear := strings.Repeat("c", 900_000)
	cases := map[string]struct {
		data map[string]any
		keep map[string]bool
		want string
	}{
		"wide":       {map[string]any{"data": wide}, nil, "of 50000 entries dropped"},
		"deep":       {deep, nil, "nested deeper than"},
		"long key":   {map[string]any{long: "v"}, nil, "keys longer than"},
		"list":       {map[string]any{"l": list}, nil, "of 1000 entries dropped"},
		"clear huge": {map[string]any{"note": clear}, map[string]bool{"note": true}, "values longer than"},
	}
	for name, c := range cases {
		out, _, err := HashData(k, c.data, c.keep)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := json.Marshal(out)
		if len(b) > MaxDataBytes+2*MaxStringBytes {
			t.Errorf("%s: %d bytes", name, len(b))
		}
		if !strings.Contains(string(b), c.want) || !strings.Contains(string(b), TruncatedKey) {
			t.Errorf("%s: no marker %q in %.300s", name, c.want, b)
		}
		if strings.Contains(string(b), long) || strings.Contains(string(b), clear[:5000]) {
			t.Errorf("%s: a long string survived", name)
		}
	}
	out, _, _ := HashData(k, map[string]any{"note": clear}, map[string]bool{"note": true})
	if out["note"] != HMAC(k, clear) {
		t.Errorf("a huge clear value = %.100v, want its HMAC", out["note"])
	}
	// Ordinary data: no marker, every value HMACed, clear keys kept.
	plain := map[string]any{"a": "1", "b": map[string]any{"c": []any{"x", 2}}, "team": "blue"}
	out, kept, _ := HashData(k, plain, map[string]bool{"team": true})
	want := map[string]any{"a": HMAC(k, "1"), "b": map[string]any{"c": []any{HMAC(k, "x"), json.Number("2")}}, "team": "blue"}
	if !reflect.DeepEqual(out, want) || !reflect.DeepEqual(kept, []string{"team"}) {
		t.Fatalf("plain = %v %v", out, kept)
	}
}

// TestRecordEventHardBound: what HashData does not bound (error text, path, warnings, metadata)
// is cut so an event never exceeds MaxRecordBytes; an ordinary record is stored unchanged.
func TestRecordEventHardBound(t *testing.T) {
	r := Record{Time: time.Now().UTC(), Request: &Request{ID: "id", Operation: "update", Path: "secret/data/x", Data: map[string]any{"a": "hmac-sha256:00"}}}
	ev, err := r.Event()
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(r)
	if string(ev.Payload) != string(plain) {
		t.Fatalf("ordinary record changed: %s", ev.Payload)
	}
	huge := strings.Repeat("e", 200_000)
	r.Error = huge
	r.Request.Path = huge
	r.Auth = &Auth{Metadata: map[string]string{"m": huge}}
	r.Response = &Response{Warnings: []string{huge}}
	ev, err = r.Event()
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Payload) > MaxRecordBytes || !strings.Contains(string(ev.Payload), TruncatedKey) {
		t.Fatalf("record is %d bytes: %.300s", len(ev.Payload), ev.Payload)
	}
	if _, err := Decode(ev.Payload); err != nil {
		t.Fatal(err)
	}
}
