package projections

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ledger-secrets/ledger/ledger"
)

// This file holds what the views share: decoding an event's payload, digesting a snapshot, and
// the per-mount state most engine views keep (state by mount UUID, plus the UUIDs of disabled
// mounts so that a late event for a disabled mount cannot bring it back). The byte formats are
// the views' own: these helpers encode exactly what each view wrote before they existed.

// Decode unmarshals rec's JSON payload into p. The error names the event type, never the
// payload (it may hold sealed values or key material).
func Decode(rec ledger.Record, p any) error {
	if err := json.Unmarshal(rec.Payload, p); err != nil {
		return fmt.Errorf("decode %s: %w", rec.Type, err)
	}
	return nil
}

// DigestOf is View.Digest for a view whose Snapshot is canonical (maps encode with sorted
// keys, lists are sorted): the SHA-256 of the snapshot. A snapshot that does not encode is a
// bug in the view (views hold strings, numbers, times and maps of them), so it panics rather
// than let two different states share the digest of nothing.
func DigestOf(v interface {
	Name() string
	Snapshot() ([]byte, error)
}) [32]byte {
	b, err := v.Snapshot()
	if err != nil {
		panic(v.Name() + " view: snapshot does not encode: " + err.Error())
	}
	return sha256.Sum256(b)
}

// MountState returns the state of mount uuid in mounts, created by fresh on first use, or nil
// when the mount was disabled. The caller holds the view's write lock.
func MountState[S any](mounts map[string]*S, disabled map[string]bool, uuid string, fresh func() *S) *S {
	if disabled[uuid] {
		return nil
	}
	s := mounts[uuid]
	if s == nil {
		s = fresh()
		mounts[uuid] = s
	}
	return s
}

// DisableMount forgets a mount's state and remembers the mount as disabled (a mount UUID is
// never reused). An empty uuid is ignored. The caller holds the view's write lock.
func DisableMount[S any](mounts map[string]S, disabled map[string]bool, uuid string) {
	if uuid == "" {
		return
	}
	delete(mounts, uuid)
	disabled[uuid] = true
}

// SortedKeys returns m's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SortedValues returns m's values ordered by their keys.
func SortedValues[V any](m map[string]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range SortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

// SetOf is the set of the strings in list.
func SetOf(list []string) map[string]bool {
	out := make(map[string]bool, len(list))
	for _, s := range list {
		out[s] = true
	}
	return out
}

// MountsSnapshot is the snapshot format of a view keyed by mount UUID: a format version, each
// mount's state (maps encode with sorted keys), and the disabled mounts, sorted.
type MountsSnapshot[S any] struct {
	Version  int          `json:"v"`
	Mounts   map[string]S `json:"mounts"`
	Disabled []string     `json:"disabled,omitempty"`
}

// EncodeMounts encodes a MountsSnapshot of mounts and disabled.
func EncodeMounts[S any](version int, mounts map[string]S, disabled map[string]bool) ([]byte, error) {
	s := MountsSnapshot[S]{Version: version, Mounts: mounts}
	if len(disabled) > 0 {
		s.Disabled = SortedKeys(disabled)
	}
	return json.Marshal(s)
}

// DecodeMounts decodes what EncodeMounts wrote for view, which must be of format version. The
// caller checks and normalises each state (a state may decode as nil) and installs the result.
func DecodeMounts[S any](view string, version int, data []byte) (map[string]S, map[string]bool, error) {
	var s MountsSnapshot[S]
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, fmt.Errorf("restore %s view: %w", view, err)
	}
	if s.Version != version || s.Mounts == nil {
		return nil, nil, fmt.Errorf("restore %s view: unknown snapshot version %d", view, s.Version)
	}
	return s.Mounts, SetOf(s.Disabled), nil
}

// DecodeMarked is Decode whose error also wraps mark, a view's sentinel for malformed events.
func DecodeMarked(rec ledger.Record, p any, mark error) error {
	if err := json.Unmarshal(rec.Payload, p); err != nil {
		return fmt.Errorf("decode %s: %w: %w", rec.Type, mark, err)
	}
	return nil
}

// EncodeList is the snapshot format of a view that is one map by name: the values as a JSON
// list ordered by name.
func EncodeList[V any](m map[string]V) ([]byte, error) { return json.Marshal(SortedValues(m)) }

// DecodeList decodes what EncodeList wrote for view, keying each value by name(value).
func DecodeList[V any](view string, data []byte, name func(V) string) (map[string]V, error) {
	var list []V
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("restore %s view: %w", view, err)
	}
	m := make(map[string]V, len(list))
	for _, e := range list {
		m[name(e)] = e
	}
	return m, nil
}
