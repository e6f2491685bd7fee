package audit

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// An audit record never grows with the request beyond a bound: a client that sends 50,000 fields,
// a 900 KB value or a 1,000-deep document gets an audit record of a few KB, saying what was cut.
// The limits apply in HashData (request and response data, of reads, denials and writes alike)
// and, as a last resort, to the whole record in Record.Event. Values are HMACed already, so most
// of what is cut here is keys, breadth, depth and the values some device keeps in the clear
// (audit_non_hmac_*_keys).
const (
	// MaxStringBytes: a string value kept in the clear and longer than this is stored as its
	// HMAC instead (an HMACed value is ~77 bytes and never reaches it).
	MaxStringBytes = 4096
	// MaxKeyBytes: a map key longer than this is stored as its HMAC (keys are not HMACed
	// otherwise, as in Vault).
	MaxKeyBytes = 256
	// MaxFields: a map or list keeps at most this many entries (maps: in key order).
	MaxFields = 256
	// MaxDepth: a value nested deeper than this is replaced by a marker.
	MaxDepth = 16
	// MaxDataBytes bounds the JSON size of one data block (request or response): once spent,
	// the remaining entries are dropped with a marker.
	MaxDataBytes = 8 << 10
	// MaxRecordBytes is the hard bound of a whole encoded record.
	MaxRecordBytes = 32 << 10
)

// TruncatedKey is the map entry that says what was cut from that map; its value is a string, so
// consumers of Vault's audit format parse it like any other field.
const TruncatedKey = "ledger_audit_truncated"

// bounder tracks the data block's remaining budget and notes what it cut.
type bounder struct {
	budget int
}

// note is what one container (map or list) had cut from it.
type note struct {
	dropped, total int
	hashedKeys     int
	hashedValues   int
	deep           bool
}

func (n *note) any() bool { return n.dropped > 0 || n.hashedKeys > 0 || n.hashedValues > 0 || n.deep }

func (n *note) String() string {
	var parts []string
	if n.dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d entries dropped", n.dropped, n.total))
	}
	if n.hashedKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d keys longer than %d bytes replaced by their HMAC", n.hashedKeys, MaxKeyBytes))
	}
	if n.hashedValues > 0 {
		parts = append(parts, fmt.Sprintf("%d values longer than %d bytes replaced by their HMAC", n.hashedValues, MaxStringBytes))
	}
	if n.deep {
		parts = append(parts, fmt.Sprintf("values nested deeper than %d levels replaced", MaxDepth))
	}
	return "audit record bounded: " + strings.Join(parts, "; ")
}

func deepMarker() string {
	return TruncatedKey + ": nested deeper than " + fmt.Sprint(MaxDepth) + " levels"
}

// spend charges the budget with n bytes; false once the budget is gone.
func (b *bounder) spend(n int) bool {
	if b.budget <= 0 {
		return false
	}
	b.budget -= n
	return true
}

// scalarSize approximates the JSON size of a leaf value.
func scalarSize(v any) int {
	switch t := v.(type) {
	case string:
		return len(t) + 2
	case nil:
		return 4
	case json.Number:
		return len(t)
	}
	return 8
}

// appendSortedKeys appends m's keys in order to keys, so what survives a cut is the same every
// time. boundMap passes a small array of its own: most maps in a record have a few keys, and
// sorting them then allocates nothing.
func appendSortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// bounded makes a record that encodes within MaxRecordBytes, cutting what a request could make
// large (data, warnings, metadata, error, path) with markers. b is r's encoding.
func (r Record) bounded(b []byte) ([]byte, error) {
	if len(b) <= MaxRecordBytes {
		return b, nil
	}
	marker := map[string]any{TruncatedKey: fmt.Sprintf("audit record bounded: the record was %d bytes, over %d; data omitted", len(b), MaxRecordBytes)}
	req := *r.Request
	req.Data = marker
	r.Request = &req
	if r.Response != nil {
		resp := *r.Response
		resp.Data = marker
		if len(resp.Warnings) > 0 {
			resp.Warnings = []string{fmt.Sprintf("%s: %d warnings omitted", TruncatedKey, len(resp.Warnings))}
		}
		r.Response = &resp
	}
	nb, err := json.Marshal(r)
	if err != nil || len(nb) <= MaxRecordBytes {
		return nb, err
	}
	// Still too large: what is left that grows with the request is text and metadata.
	cut := func(s string) string {
		if len(s) <= 1024 {
			return s
		}
		return s[:1024] + " …(" + TruncatedKey + ")"
	}
	req.Path = cut(req.Path)
	r.Error = cut(r.Error)
	if r.Auth != nil {
		a := *r.Auth
		a.Metadata = nil
		if len(a.Policies) > MaxFields {
			a.Policies = a.Policies[:MaxFields]
			a.TokenPolicies = a.Policies
		}
		r.Auth = &a
	}
	r.Response = nil
	r.RawRequestKeys, r.RawResponseKeys = nil, nil
	if r.Error == "" {
		r.Error = marker[TruncatedKey].(string)
	}
	nb, err = json.Marshal(r)
	if err != nil || len(nb) <= MaxRecordBytes {
		return nb, err
	}
	return json.Marshal(Record{Time: r.Time, Request: &Request{ID: cut(req.ID), Operation: req.Operation, Path: cut(req.Path), Data: marker},
		Error: marker[TruncatedKey].(string)})
}
