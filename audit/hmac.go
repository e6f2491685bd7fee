package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// HashData returns data, bounded in size (see bound.go), with every string HMACed, at any depth, except the values under a key in
// keep, which are copied as they are (Vault's audit_non_hmac_*_keys); it also lists the keys of
// keep it met (the record's RawRequestKeys). Numbers, booleans and nulls are not sensitive and
// stay. Values are hashed as they would be sent in JSON: a time as its RFC 3339 text, a struct
// or an unusual type through its JSON encoding.
func HashData(kr *ledger.Keyring, data map[string]any, keep map[string]bool) (map[string]any, []string, error) {
	if len(data) == 0 {
		return nil, nil, nil
	}
	w := hasher{h: func(s string) string { return HMAC(kr, s) }, keep: keep, b: bounder{budget: MaxDataBytes}}
	out, err := w.value(data, 0, &note{})
	if err != nil {
		return nil, nil, err
	}
	var kept []string
	for k := range w.found {
		kept = append(kept, k)
	}
	sort.Strings(kept)
	return out.(map[string]any), kept, nil
}

type hasher struct {
	h     func(string) string
	keep  map[string]bool
	found map[string]bool
	b     bounder
}

// value HMACs v within the record's bounds (bound.go); n collects what was cut, for the
// enclosing map's marker.
func (w *hasher) value(v any, depth int, n *note) (any, error) {
	if depth > MaxDepth {
		n.deep = true
		return deepMarker(), nil
	}
	switch t := v.(type) {
	case nil, bool, json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return t, nil
	case string:
		return w.h(t), nil
	case time.Time:
		return w.h(t.Format(time.RFC3339Nano)), nil
	case map[string]any:
		return w.boundMap(t, depth, w.value, n)
	case map[string]string:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = e
		}
		return w.boundMap(m, depth, w.value, n)
	case []any:
		return w.boundList(len(t), func(i int) any { return t[i] }, depth, w.value)
	case []string:
		return w.boundList(len(t), func(i int) any { return t[i] }, depth, w.value)
	}
	// Anything else (structs, typed slices and maps, []byte): hash its JSON form.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit: data does not encode: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var norm any
	if err := dec.Decode(&norm); err != nil {
		return nil, fmt.Errorf("audit: data does not decode: %w", err)
	}
	return w.value(norm, depth, n)
}

func (w *hasher) mark(k string) {
	if w.found == nil {
		w.found = map[string]bool{}
	}
	w.found[k] = true
}

// hashValue HMACs every string in v except under keys in keep; it returns a copy.
func hashValue(h func(string) string, v any, keep map[string]bool) any {
	switch t := v.(type) {
	case string:
		return h(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if keep[k] {
				out[k] = e
				continue
			}
			out[k] = hashValue(h, e, keep)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = hashValue(h, e, keep)
		}
		return out
	}
	return v
}

// emitData applies a device's choice to a record's data: the values the record kept in the
// clear (under a key in raw) stay in the clear only if the device lists the key in its own
// non-HMAC keys; otherwise the device HMACs them, exactly as Vault would have.
func emitData(h func(string) string, data map[string]any, raw, deviceKeep map[string]bool) map[string]any {
	if data == nil {
		return nil
	}
	if len(raw) == 0 {
		return copyValue(data).(map[string]any)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, e := range t {
				switch {
				case raw[k] && deviceKeep[k]:
					out[k] = copyValue(e)
				case raw[k]:
					out[k] = hashValue(h, e, deviceKeep)
				default:
					out[k] = walk(e)
				}
			}
			return out
		case []any:
			out := make([]any, len(t))
			for i, e := range t {
				out[i] = walk(e)
			}
			return out
		}
		return v
	}
	return walk(data).(map[string]any)
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = copyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
