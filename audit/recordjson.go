package audit

import (
	"strconv"
	"time"

	segjson "github.com/segmentio/encoding/json"
)

// The record's JSON, written field by field in the structs' order with their omitempty rules,
// so it is byte for byte what encoding/json writes for the same Record (recordjson_test.go
// checks that), except that a Hashed data block is copied in as it was built.

// appendFlags are encoding/json's defaults: HTML characters escaped, map keys sorted.
const appendFlags = segjson.EscapeHTML | segjson.SortMapKeys

// jsonWriter appends one JSON object's fields, with the commas between them.
type jsonWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *jsonWriter) open() {
	w.b = append(w.b, '{')
	w.first = true
}

func (w *jsonWriter) close() {
	w.b = append(w.b, '}')
	w.first = false
}

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(k, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	w.key(k)
	w.b = segjson.AppendEscape(w.b, v, segjson.EscapeHTML)
}

func (w *jsonWriter) int(k string, v int64) {
	if v == 0 {
		return
	}
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = segjson.AppendEscape(w.b, s, segjson.EscapeHTML)
	}
	w.b = append(w.b, ']')
}

// value writes any other value as encoding/json would (maps of data, metadata).
func (w *jsonWriter) value(k string, v any) {
	w.key(k)
	b, err := segjson.Append(w.b, v, appendFlags)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.b = b
}

func (w *jsonWriter) data(h HashedData, m map[string]any) {
	switch {
	case len(h) > 0:
		w.key("data")
		w.b = append(w.b, h...)
	case len(m) > 0:
		w.value("data", m)
	}
}

func (w *jsonWriter) time(k string, t time.Time) {
	w.key(k)
	// time.Time's MarshalJSON refuses years outside 0–9999; so does this.
	if y := t.Year(); y < 0 || y >= 10000 {
		if _, err := t.MarshalJSON(); err != nil && w.err == nil {
			w.err = err
		}
		return
	}
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// mount writes the mount fields a request and a response block share.
func (w *jsonWriter) mount(point, typ, accessor, class string) {
	w.str("mount_point", point, true)
	w.str("mount_type", typ, true)
	w.str("mount_accessor", accessor, true)
	w.str("mount_class", class, true)
}

func (w *jsonWriter) auth(k string, a *Auth) {
	if a == nil {
		return
	}
	w.key(k)
	w.open()
	w.str("client_token", a.ClientToken, true)
	w.str("accessor", a.Accessor, true)
	w.str("display_name", a.DisplayName, true)
	w.strs("policies", a.Policies)
	w.strs("token_policies", a.TokenPolicies)
	if a.PolicyResults != nil {
		w.key("policy_results")
		w.b = append(w.b, `{"allowed":`...)
		w.b = strconv.AppendBool(w.b, a.PolicyResults.Allowed)
		w.b = append(w.b, '}')
	}
	if len(a.Metadata) > 0 {
		w.value("metadata", a.Metadata)
	}
	w.str("entity_id", a.EntityID, true)
	w.int("remaining_uses", int64(a.RemainingUses))
	w.str("token_type", a.TokenType, true)
	w.int("token_ttl", a.TokenTTL)
	w.str("token_issue_time", a.TokenIssueTime, true)
	w.close()
}

// appendJSON appends r's JSON to b.
func (r Record) appendJSON(b []byte) ([]byte, error) {
	w := jsonWriter{b: b}
	w.open()
	w.time("time", r.Time)
	w.auth("auth", r.Auth)
	w.key("request")
	if q := r.Request; q == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.open()
		w.str("id", q.ID, false)
		w.str("operation", q.Operation, false)
		w.mount(q.MountPoint, q.MountType, q.MountAccessor, q.MountClass)
		w.str("client_token", q.ClientToken, true)
		w.str("client_token_accessor", q.ClientTokenAccessor, true)
		if q.Namespace != nil {
			w.key("namespace")
			w.open()
			w.str("id", q.Namespace.ID, false)
			w.close()
		}
		w.str("path", q.Path, false)
		w.data(q.Hashed, q.Data)
		w.str("remote_address", q.RemoteAddress, true)
		w.int("remote_port", int64(q.RemotePort))
		w.close()
	}
	if p := r.Response; p != nil {
		w.key("response")
		w.open()
		w.mount(p.MountPoint, p.MountType, p.MountAccessor, p.MountClass)
		w.auth("auth", p.Auth)
		if p.Secret != nil {
			w.key("secret")
			w.open()
			w.str("lease_id", p.Secret.LeaseID, false)
			w.close()
		}
		w.data(p.Hashed, p.Data)
		w.strs("warnings", p.Warnings)
		w.close()
	}
	w.str("error", r.Error, true)
	w.strs("raw_request_keys", r.RawRequestKeys)
	w.strs("raw_response_keys", r.RawResponseKeys)
	if r.Packed {
		w.key("packed")
		w.b = append(w.b, "true"...)
	}
	w.close()
	return w.b, w.err
}
