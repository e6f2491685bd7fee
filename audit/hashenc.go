package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/ledger-secrets/ledger/ledger"
)

// HashedData is a data block as a record stores it — every string HMACed, bounded (bound.go) —
// already encoded as a JSON object. Building it writes each HMAC straight into the encoding:
// the maps HashData returns, and the second walk that encoded them, were a fifth of a read's
// CPU in the handler (BENCHMARKS.md, issue 10).
type HashedData []byte

// AppendHashedData appends data's HashedData to dst: the same block HashData describes, with
// the same bounds and the same clear keys (returned sorted). An object's TruncatedKey entry,
// when there is one, comes last rather than in key order; a decoder reads the same map.
func AppendHashedData(dst []byte, kr *ledger.Keyring, data map[string]any, keep map[string]bool) (HashedData, []string, error) {
	if len(data) == 0 {
		return nil, nil, nil
	}
	w := hashWriter{kr: kr, keep: keep, b: bounder{budget: MaxDataBytes}, buf: dst}
	start := len(dst)
	w.boundMap(data, 0, w.value)
	if w.err != nil {
		return nil, nil, w.err
	}
	var kept []string
	for k := range w.found {
		kept = append(kept, k)
	}
	slices.Sort(kept)
	return HashedData(w.buf[start:]), kept, nil
}

// hmacSize is what an HMACed string costs the budget, as scalarSize counts it.
var hmacSize = len(HMACPrefix) + 64 + 2

// hashWriter writes a data block as HashData bounds it. Each value writer returns what the
// value costs its container's budget (scalarSize of the value written: 8 for a container).
type hashWriter struct {
	kr    *ledger.Keyring
	keep  map[string]bool
	found map[string]bool
	b     bounder
	buf   []byte
	err   error
}

type elemWriter func(v any, depth int, n *note) int

// hmac writes the HMAC of s as a JSON string: hex needs no escaping.
func (w *hashWriter) hmac(s string) int {
	w.buf = append(w.buf, '"')
	w.buf = w.kr.AppendPrefixedMAC(w.buf, HMACPrefix, "audit", s)
	w.buf = append(w.buf, '"')
	return hmacSize
}

func (w *hashWriter) str(s string) int {
	w.buf = segjson.AppendEscape(w.buf, s, segjson.EscapeHTML)
	return len(s) + 2
}

func (w *hashWriter) fail(err error) int {
	if w.err == nil {
		w.err = err
	}
	return 0
}

// value writes v with every string HMACed.
func (w *hashWriter) value(v any, depth int, n *note) int {
	if depth > MaxDepth {
		n.deep = true
		return w.str(deepMarker())
	}
	switch t := v.(type) {
	case string:
		return w.hmac(t)
	case time.Time:
		return w.hmac(t.Format(time.RFC3339Nano))
	}
	if size, ok := w.container(v, depth, w.value); ok {
		return size
	}
	if size, ok := w.scalar(v); ok {
		return size
	}
	// Anything else (structs, typed slices and maps, []byte): hash its JSON form.
	norm, err := normalize(v)
	if err != nil {
		return w.fail(err)
	}
	return w.value(norm, depth, n)
}

// raw writes a value kept in the clear: long strings become their HMAC, the rest is cut like
// hashed data.
func (w *hashWriter) raw(v any, depth int, n *note) int {
	if depth > MaxDepth {
		n.deep = true
		return w.str(deepMarker())
	}
	switch t := v.(type) {
	case string:
		if len(t) > MaxStringBytes {
			n.hashedValues++
			return w.hmac(t)
		}
		return w.str(t)
	}
	if size, ok := w.container(v, depth, w.raw); ok {
		return size
	}
	if size, ok := w.scalar(v); ok {
		return size
	}
	// Anything else was kept as the caller gave it, and is encoded as it is.
	b, err := segjson.Append(w.buf, v, segjson.EscapeHTML|segjson.SortMapKeys)
	if err != nil {
		return w.fail(fmt.Errorf("audit: data does not encode: %w", err))
	}
	w.buf = b
	return scalarSize(v)
}

// container writes a map or a list with elem writing its values; false for any other value.
func (w *hashWriter) container(v any, depth int, elem elemWriter) (int, bool) {
	switch t := v.(type) {
	case map[string]any:
		return w.boundMap(t, depth, elem), true
	case map[string]string:
		return w.boundMap(anyMap(t), depth, elem), true
	case []any:
		return w.boundList(t, depth, elem), true
	case []string:
		return w.boundList(anyList(t), depth, elem), true
	}
	return 0, false
}

// scalar writes null, a boolean or a number; false for any other value.
func (w *hashWriter) scalar(v any) (int, bool) {
	switch t := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
		return 4, true
	case bool:
		w.buf = strconv.AppendBool(w.buf, t)
		return 8, true
	case json.Number:
		if !validNumber(string(t)) {
			return w.fail(fmt.Errorf("audit: data does not encode: invalid number literal %q", string(t))), true
		}
		w.buf = append(w.buf, t...)
		return len(t), true
	case int, int8, int16, int32, int64:
		w.buf = strconv.AppendInt(w.buf, reflect.ValueOf(t).Int(), 10)
	case uint, uint8, uint16, uint32, uint64:
		w.buf = strconv.AppendUint(w.buf, reflect.ValueOf(t).Uint(), 10)
	case float32, float64:
		// Floats as encoding/json writes them; NaN and the infinities do not encode.
		b, err := segjson.Append(w.buf, t, 0)
		if err != nil {
			return w.fail(fmt.Errorf("audit: data does not encode: %w", err)), true
		}
		w.buf = b
	default:
		return 0, false
	}
	return 8, true
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func anyList(l []string) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

// boundMap writes a map in key order within the budget and the field limit, elem writing each
// kept value; keys too long are HMACed; a last TruncatedKey entry says what was cut.
func (w *hashWriter) boundMap(m map[string]any, depth int, elem elemWriter) int {
	var n note
	var small [16]string
	keys := appendSortedKeys(small[:0], m)
	w.buf = append(w.buf, '{')
	written := 0
	for i, k := range keys {
		if i >= MaxFields || !w.b.spend(len(k)+4) {
			n.dropped, n.total = len(keys)-i, len(keys)
			break
		}
		if written > 0 {
			w.buf = append(w.buf, ',')
		}
		written++
		if len(k) > MaxKeyBytes {
			n.hashedKeys++
			w.hmac(k)
		} else {
			w.str(k)
		}
		w.buf = append(w.buf, ':')
		var cost int
		if w.keep[k] {
			w.mark(k)
			cost = w.raw(m[k], depth+1, &n)
		} else {
			cost = elem(m[k], depth+1, &n)
		}
		w.b.spend(cost)
	}
	if n.any() {
		if written > 0 {
			w.buf = append(w.buf, ',')
		}
		w.str(TruncatedKey)
		w.buf = append(w.buf, ':')
		w.str(n.String())
	}
	w.buf = append(w.buf, '}')
	return 8
}

// boundList writes a list within the budget and the field limit; a last string element says
// what was cut.
func (w *hashWriter) boundList(l []any, depth int, elem elemWriter) int {
	var n note
	w.buf = append(w.buf, '[')
	written := 0
	for i, v := range l {
		if i >= MaxFields || !w.b.spend(2) {
			n.dropped, n.total = len(l)-i, len(l)
			break
		}
		if written > 0 {
			w.buf = append(w.buf, ',')
		}
		written++
		w.b.spend(elem(v, depth+1, &n))
	}
	if n.any() {
		if written > 0 {
			w.buf = append(w.buf, ',')
		}
		w.str(TruncatedKey + ": " + n.String())
	}
	w.buf = append(w.buf, ']')
	return 8
}

func (w *hashWriter) mark(k string) {
	if w.found == nil {
		w.found = map[string]bool{}
	}
	w.found[k] = true
}

// normalize turns a value of any other type into what its JSON form decodes to.
func normalize(v any) (any, error) {
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
	return norm, nil
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}
