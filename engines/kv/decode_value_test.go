package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
)

// TestDecodeValueMatchesEncodingJSON: a stored value decodes to what encoding/json's Decoder
// with UseNumber gives — numbers kept as written, nested objects and arrays, escapes — and
// the decoded strings do not share memory with the plaintext the caller clears.
func TestDecodeValueMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`null`,
		`{"username":"app","password":"s3cr3t"}`,
		`{"n":12345678901234567890123,"f":-1.5e-300,"z":-0,"i":7}`,
		`{"nested":{"a":[1,"two",true,null,{"b":[]}]},"empty":""}`,
		`{"esc":"\u00e9\ud83d\ude00\n\t\"\\/","html":"<a href='x'>&amp;</a>"}`,
		" \n\t{\"spaced\" : [ 1 , 2 ] } \n",
		`{"dup":1,"dup":2}`,
	} {
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%s: encoding/json: %v", in, err)
		}
		if want == nil {
			want = map[string]any{}
		}
		pt := []byte(in)
		got, err := decodeValue(pt)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		clear(pt)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", in, got, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `[1,2]`, `"str"`, `{"a":1}{"b":2}`, "{\"a\":\"\x00\"}"} {
		if _, err := decodeValue([]byte(bad)); !errors.Is(err, ledger.ErrCorrupt) {
			t.Errorf("%q: err = %v, want ErrCorrupt", bad, err)
		}
	}
}
