package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

// FuzzDecodeJSONObject: the body decoder never panics, refuses with a 400 (never anything
// else), and what it accepts is what encoding/json reads, within the limits. The seeds run in
// every `go test`; `go test -fuzz=FuzzDecodeJSONObject ./commands/httpapi/` runs longer.
func FuzzDecodeJSONObject(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `{"data":{"k":"v"}}`, `{"a":[1,2,{"b":null}]}`, `{"a":1}{"b":2}`, `[1]`, `"s"`,
		`{"a":`, `{"a" 1}`, `{"a":1,}`, `{"\u00ff":"\xff"}`, `{"a":{"b":{"c":{"d":{"e":{"f":{}}}}}}}`,
		`{"n":1e400}`, `{"n":-0.0}`, `{"a":[[[[[[[[]]]]]]]]}`, ` {"a":true} `, `{"a":1} x`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxDepth: 6, MaxObjectEntries: 20, MaxArrayElements: 20, MaxStringLength: 64, MaxFields: 50}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := decodeJSONObject(bytes.NewReader(in), DefaultMaxRequestBytes, lim)
		if err != nil {
			if !errors.Is(err, engines.ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if got == nil {
			t.Fatal("nil object without an error")
		}
		if len(bytes.TrimSpace(in)) == 0 || string(bytes.TrimSpace(in)) == "null" {
			return
		}
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if !bytes.Equal(a, b) {
			t.Fatalf("decoded %s, encoding/json reads %s", a, b)
		}
	})
}
