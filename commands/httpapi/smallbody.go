package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"

	segjson "github.com/segmentio/encoding/json"
)

// maxSmallBody is the largest body decoded in one piece rather than token by token. Nearly every
// body the API sees is far below it (a secret, a transit plaintext, a token or role request,
// a policy), and holding 16 KiB per request in flight is nothing beside max_request_size, so the
// streaming decoder keeps its purpose — refusing a huge body before it is held — for what is
// above. It also bounds what one body costs the fast path, which decodes before it checks the
// limits: the costliest 16 KiB found for it (empty arrays) costs no more CPU than the costliest
// found for the streaming decoder (arrays of numbers).
const maxSmallBody = 16 << 10

// maxSmallDepth is the deepest nesting decoded on the fast path. segmentio/encoding scans a
// nested value once per enclosing level before decoding it, so a body nested d deep costs up
// to d times its length there; a deeper body goes to the streaming decoder, which stops at
// max_json_depth without that cost. Real bodies (a KV secret's data, a transit batch) are a few
// levels deep.
const maxSmallDepth = 16

// smallBodies holds the buffers small bodies are read into. A buffer is cleared of what was read
// before it goes back, so no body (a secret) outlives its request there.
var smallBodies = sync.Pool{New: func() any { b := make([]byte, maxSmallBody); return &b }}

// decodeJSONObject decodes one JSON object from r within limits. Numbers stay json.Number, as
// the engines expect. r holds at most maxBytes (max_request_size) and fails a read past them.
//
// The token decoder costs several microseconds and a few allocations per field, most of what
// decoding a typical body costs, so a small body is decoded in one piece and its limits checked
// after. Only a body that decodes, is an object and is within every limit takes that path;
// anything else — an error, null, a duplicate key — is decoded again by streamJSONObject, whose
// result or error message is the one a client sees, whichever path answers.
func decodeJSONObject(r io.Reader, maxBytes int64, limits Limits) (map[string]any, error) {
	limits = limits.withDefaults()
	bp := smallBodies.Get().(*[]byte)
	// Never read past maxBytes here: crossing it is left to the streaming decoder, which reads no
	// further than it needs, so a body it refuses for its syntax before the limit is not also marked
	// too large (http.MaxBytesReader closes the connection after the answer when it is).
	buf := (*bp)[:max(min(int64(len(*bp)), maxBytes), 0)]
	n, err := io.ReadFull(r, buf)
	defer func() {
		clear(buf[:n])
		smallBodies.Put(bp)
	}()
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // all of the body is in buf
		if obj, ok := decodeSmall(buf[:n], limits); ok {
			return obj, nil
		}
		return streamJSONObject(bytes.NewReader(buf[:n]), limits)
	case nil: // the body fills buf and may go on
		return streamJSONObject(io.MultiReader(bytes.NewReader(buf), r), limits)
	default:
		// What was read, then the same error (a *http.MaxBytesError for a body over
		// max_request_size): the streaming decoder reports a read error only once it has
		// looked at every byte before it, so it answers as it would have reading r itself.
		return streamJSONObject(io.MultiReader(bytes.NewReader(buf[:n]), errReader{err}), limits)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeSmall decodes a whole body that is one JSON object within limits, or reports false.
// Strings and numbers are copied out of b (no DontCopy flag), so b can be cleared and reused.
func decodeSmall(b []byte, limits Limits) (map[string]any, bool) {
	members, depth, ok := smallShape(b)
	if !ok || depth > maxSmallDepth {
		return nil, false
	}
	// Given no map, the decoder makes one with room for 64 keys. members counts nested keys too,
	// so it only says how small the map can start.
	obj := make(map[string]any, min(members, 8))
	rest, err := segjson.Parse(b, &obj, segjson.UseNumber)
	if err != nil || len(rest) != 0 || obj == nil { // obj is nil for null
		return nil, false
	}
	w := limitWalk{limits: limits}
	if !w.object(obj, 1) || w.members != members {
		return nil, false
	}
	return obj, true
}

// smallShape scans b as JSON text without decoding it: members is the number of object members
// (colons outside strings) and depth the deepest nesting of objects and arrays, the outermost
// being 1. It reports false for text it cannot read that way; its counts mean something only
// for text the decoder accepts, which is all they are used for.
//
// A map holds one entry per distinct key, so the members count is what shows a duplicate key
// (or a value the decoder replaced and the limit walk never saw): the streaming decoder counts
// every member towards the limits, and the answer must not depend on which decoder gave it.
func smallShape(b []byte) (members, depth int, ok bool) {
	d := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, found := stringEnd(b, i+1)
			if !found {
				return 0, 0, false
			}
			i = end
		case ':':
			members++
		case '{', '[':
			d++
			depth = max(depth, d)
		case '}', ']':
			d--
		}
	}
	return members, depth, d == 0
}

// stringEnd returns the index of the quote that closes the string whose text starts at b[i]: the
// first quote after an even run of backslashes.
func stringEnd(b []byte, i int) (int, bool) {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return 0, false
		}
		q += i
		esc := 0
		for j := q - 1; j >= i && b[j] == '\\'; j-- {
			esc++
		}
		if esc%2 == 0 {
			return q, true
		}
		i = q + 1
	}
}

// limitWalk checks a decoded body against the limits, counting as jsonDecoder does.
type limitWalk struct {
	limits  Limits
	fields  int // keys and array elements, towards MaxFields
	members int // keys of every object, to compare with smallShape's count
}

func (w *limitWalk) object(m map[string]any, depth int) bool {
	if len(m) > w.limits.MaxObjectEntries {
		return false
	}
	w.members += len(m)
	if w.fields += len(m); w.fields > w.limits.MaxFields {
		return false
	}
	for k, v := range m {
		if len(k) > w.limits.MaxStringLength || !w.value(v, depth) {
			return false
		}
	}
	return true
}

func (w *limitWalk) value(v any, depth int) bool {
	switch t := v.(type) {
	case map[string]any:
		return depth+1 <= w.limits.MaxDepth && w.object(t, depth+1)
	case []any:
		if depth+1 > w.limits.MaxDepth || len(t) > w.limits.MaxArrayElements {
			return false
		}
		if w.fields += len(t); w.fields > w.limits.MaxFields {
			return false
		}
		for _, e := range t {
			if !w.value(e, depth+1) {
				return false
			}
		}
		return true
	case string:
		return len(t) <= w.limits.MaxStringLength
	case json.Number, bool, nil:
		return true
	}
	return false // a type the streaming decoder never yields
}
