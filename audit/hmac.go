package audit

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/ledger-secrets/ledger/ledger"
)

// HashData returns data, bounded in size (see bound.go), with every string HMACed, at any depth, except the values under a key in
// keep, which are copied as they are (Vault's audit_non_hmac_*_keys); it also lists the keys of
// keep it met (the record's RawRequestKeys). Numbers, booleans and nulls are not sensitive and
// stay. Values are hashed as they would be sent in JSON: a time as its RFC 3339 text, a struct
// or an unusual type through its JSON encoding.
func HashData(kr *ledger.Keyring, data map[string]any, keep map[string]bool) (map[string]any, []string, error) {
	b, kept, err := AppendHashedData(nil, kr, data, keep)
	if err != nil || b == nil {
		return nil, nil, err
	}
	out, err := b.Map()
	if err != nil {
		return nil, nil, err
	}
	return out, kept, nil
}

// Map decodes the block, numbers as json.Number: the data a reader of the record gets.
func (h HashedData) Map() (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(h))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("audit: hashed data does not decode: %w", err)
	}
	return out, nil
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
