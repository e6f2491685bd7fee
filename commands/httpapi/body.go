package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/engines"
)

// Limits bound the work one request body can cause. A zero field takes its default. They are
// the listener options of the same names in the server config.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays (max_json_depth).
	MaxDepth int
	// MaxObjectEntries is the most keys one object may hold (max_json_object_entry_count).
	MaxObjectEntries int
	// MaxArrayElements is the most elements one array may hold (max_json_array_element_count).
	MaxArrayElements int
	// MaxStringLength is the longest string value or key, in bytes
	// (max_json_string_value_length).
	MaxStringLength int
	// MaxFields is the most object keys and array elements in the whole body, counted together
	// (max_request_fields): what bounds the memory a decoded body takes.
	MaxFields int
}

// Defaults of Limits: Vault's for the max_json_* options; max_request_fields is Ledger's.
const (
	DefaultMaxJSONDepth               = 500
	DefaultMaxJSONObjectEntries       = 10000
	DefaultMaxJSONArrayElements       = 10000
	DefaultMaxJSONStringLength        = 1 << 20
	DefaultMaxRequestFields           = 100000
	maxDrainBytes               int64 = DefaultMaxRequestBytes
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxDepth, DefaultMaxJSONDepth)
	def(&l.MaxObjectEntries, DefaultMaxJSONObjectEntries)
	def(&l.MaxArrayElements, DefaultMaxJSONArrayElements)
	def(&l.MaxStringLength, DefaultMaxJSONStringLength)
	def(&l.MaxFields, DefaultMaxRequestFields)
	return l
}

// errBodyTooLarge is a body over max_request_size: 413.
var errBodyTooLarge = errors.New("request body too large")

// body is a request body that is decoded only when the pipeline asks for it, after the
// request's token was found allowed to write there.
type body struct {
	r        io.Reader // limited to max_request_size
	max      int64
	limits   Limits
	declared int64 // Content-Length, -1 when unknown
}

func (a *api) body(c echo.Context) *body {
	r := c.Request()
	return &body{r: http.MaxBytesReader(c.Response(), r.Body, a.opts.MaxRequestBytes), max: a.opts.MaxRequestBytes,
		limits: a.opts.Limits, declared: r.ContentLength}
}

// decodeBody reads a JSON object body at once (the unauthenticated sys endpoints).
func (a *api) decodeBody(c echo.Context) (map[string]any, error) {
	return a.body(c).decode()
}

func (b *body) tooLarge() error {
	return fmt.Errorf("%w: the limit is %d bytes (listener max_request_size)", errBodyTooLarge, b.max)
}

// decode reads the body as one JSON object. Past maxSmallBody it streams, so it stops at the
// first limit crossed instead of holding what the client sent. An empty body (or null) is an
// empty object.
func (b *body) decode() (map[string]any, error) {
	if b.declared > b.max {
		return nil, b.tooLarge()
	}
	data, err := decodeJSONObject(b.r, b.max, b.limits)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, b.tooLarge()
		}
		return nil, err
	}
	return data, nil
}

// drain discards what is left of the body, so that the client reads the answer of a request
// that was refused before its body was read. Memory stays constant; max_request_size and the
// listener's read timeout bound the time.
func (b *body) drain() {
	io.CopyN(io.Discard, b.r, maxDrainBytes)
}

// jsonDecoder builds a value from a token stream, counting as it goes.
type jsonDecoder struct {
	dec    *json.Decoder
	limits Limits
	fields int
}

// errStop marks a limit crossed: the message says which and names its listener option.
func limitErr(format string, args ...any) error {
	return engines.BadRequest("error parsing JSON: "+format, args...)
}

// streamJSONObject decodes one JSON object from r within limits, token by token. Numbers stay
// json.Number, as the engines expect.
func streamJSONObject(r io.Reader, limits Limits) (map[string]any, error) {
	d := &jsonDecoder{dec: json.NewDecoder(r), limits: limits.withDefaults()}
	d.dec.UseNumber()
	tok, err := d.dec.Token()
	switch {
	case err == io.EOF:
		return map[string]any{}, nil
	case err != nil:
		return nil, d.syntax(err)
	case tok == nil:
		if err := d.end(); err != nil {
			return nil, err
		}
		return map[string]any{}, nil // the official client sends null for Write(path, nil)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, engines.BadRequest("error parsing JSON: expected an object")
	}
	obj, err := d.object(1)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return obj, nil
}

func (d *jsonDecoder) end() error {
	if _, err := d.dec.Token(); err != io.EOF {
		if err != nil {
			return d.syntax(err)
		}
		return engines.BadRequest("error parsing JSON: trailing data after the object")
	}
	return nil
}

func (d *jsonDecoder) syntax(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return engines.BadRequest("error parsing JSON: %s", jsonProblem(err))
}

func (d *jsonDecoder) count() error {
	d.fields++
	if d.fields > d.limits.MaxFields {
		return limitErr("more than %d fields in the request (listener max_request_fields)", d.limits.MaxFields)
	}
	return nil
}

func (d *jsonDecoder) str(s string) error {
	if len(s) > d.limits.MaxStringLength {
		return limitErr("a string is longer than %d bytes (listener max_json_string_value_length)", d.limits.MaxStringLength)
	}
	return nil
}

// value decodes the value that starts with tok, at nesting depth depth.
func (d *jsonDecoder) value(tok json.Token, depth int) (any, error) {
	switch t := tok.(type) {
	case json.Delim:
		if depth+1 > d.limits.MaxDepth {
			return nil, limitErr("nested deeper than %d (listener max_json_depth)", d.limits.MaxDepth)
		}
		if t == '{' {
			return d.object(depth + 1)
		}
		return d.array(depth + 1)
	case string:
		return t, d.str(t)
	}
	return tok, nil // json.Number, bool or nil
}

func (d *jsonDecoder) object(depth int) (map[string]any, error) {
	out := map[string]any{}
	for n := 0; ; n++ {
		tok, err := d.dec.Token()
		if err != nil {
			return nil, d.syntax(err)
		}
		if delim, ok := tok.(json.Delim); ok && delim == '}' {
			return out, nil
		}
		key, _ := tok.(string) // the decoder only yields strings in key position
		if n >= d.limits.MaxObjectEntries {
			return nil, limitErr("an object has more than %d keys (listener max_json_object_entry_count)", d.limits.MaxObjectEntries)
		}
		if err := d.count(); err != nil {
			return nil, err
		}
		if err := d.str(key); err != nil {
			return nil, err
		}
		if tok, err = d.dec.Token(); err != nil {
			return nil, d.syntax(err)
		}
		v, err := d.value(tok, depth)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
}

func (d *jsonDecoder) array(depth int) ([]any, error) {
	out := []any{}
	for n := 0; ; n++ {
		tok, err := d.dec.Token()
		if err != nil {
			return nil, d.syntax(err)
		}
		if delim, ok := tok.(json.Delim); ok && delim == ']' {
			return out, nil
		}
		if n >= d.limits.MaxArrayElements {
			return nil, limitErr("an array has more than %d elements (listener max_json_array_element_count)", d.limits.MaxArrayElements)
		}
		if err := d.count(); err != nil {
			return nil, err
		}
		v, err := d.value(tok, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}
