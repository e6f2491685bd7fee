package kv

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"time"

	"github.com/ledger-secrets/ledger/projections"
)

// The KV view is most of a node's state (a million paths is ordinary), and unseal loads it
// from a snapshot before the first read, so its snapshot is a compact binary encoding rather
// than JSON: decoding JSON spent seconds per 100,000 paths on reflection and base64.
//
// Format 2 (this build writes it; format 1, the JSON of earlier builds, still restores):
//
//	0x02
//	uvarint n, n × string                      disabled mount UUIDs, sorted
//	uvarint n, n × mount                        sorted by UUID
//	mount   = string uuid, config, uvarint n, n × (string path, secret) sorted by path,
//	          uvarint n, n × (string path, version) sorted by path (KV v1 values)
//	config  = 0x00 (none) | 0x01 varint max_versions, bool cas_required, varint delete_version_after
//	secret  = uvarint current, uvarint oldest, varint max_versions, bool cas_required,
//	          varint delete_version_after, uvarint n, n × (string, string) custom metadata sorted,
//	          time created, time updated, uvarint n, n × (uvarint number, version) ascending
//	version = time created, time deletion, bool destroyed, string key_id, bytes sealed
//	time    = 0x00 (zero) | 0x01 varint unix seconds, uvarint nanoseconds (UTC)
//	string, bytes = uvarint length, the bytes
//
// Everything is sorted, so equal states encode to equal bytes and the digest is the hash of it.
const snapshotBinary = 2

var errSnapshot = errors.New("restore kv view: truncated or malformed snapshot")

// mountSnapshot and the JSON below are format 1.
type mountSnapshot struct {
	Config  *Config             `json:"config,omitempty"`
	Secrets map[string]*Secret  `json:"secrets,omitempty"`
	Values  map[string]*Version `json:"values,omitempty"`
}

// Snapshot implements projections.View. It holds ciphertext and key ids only, never a value of
// a destroyed or trimmed version.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	size := 64
	for _, ms := range v.mounts {
		size += 64 * (len(ms.secrets) + len(ms.values))
		for _, s := range ms.secrets {
			for _, ver := range s.versions {
				size += len(ver.Sealed) + len(ver.KeyID)
			}
		}
		for _, val := range ms.values {
			size += len(val.Sealed) + len(val.KeyID)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, snapshotBinary)
	disabled := projections.SortedKeys(v.disabled)
	b = binary.AppendUvarint(b, uint64(len(disabled)))
	for _, uuid := range disabled {
		b = appendString(b, uuid)
	}
	var uuids []string
	for uuid, ms := range v.mounts {
		if ms.config != nil || len(ms.secrets) > 0 || len(ms.values) > 0 {
			uuids = append(uuids, uuid)
		}
	}
	sort.Strings(uuids)
	b = binary.AppendUvarint(b, uint64(len(uuids)))
	for _, uuid := range uuids {
		ms := v.mounts[uuid]
		b = appendString(b, uuid)
		if c := ms.config; c == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendVarint(b, int64(c.MaxVersions))
			b = appendBool(b, c.CASRequired)
			b = binary.AppendVarint(b, int64(c.DeleteVersionAfter))
		}
		paths := projections.SortedKeys(ms.secrets)
		b = binary.AppendUvarint(b, uint64(len(paths)))
		for _, p := range paths {
			s := ms.secrets[p]
			b = appendString(b, p)
			b = binary.AppendUvarint(b, s.current)
			b = binary.AppendUvarint(b, s.oldest)
			b = binary.AppendVarint(b, int64(s.maxVersions))
			b = appendBool(b, s.cas)
			b = binary.AppendVarint(b, int64(s.dva))
			keys := projections.SortedKeys(s.custom)
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = appendString(appendString(b, k), s.custom[k])
			}
			b = appendTime(appendTime(b, s.created), s.updated)
			b = binary.AppendUvarint(b, uint64(len(s.versions)))
			for _, ver := range s.versions {
				b = appendVersion(binary.AppendUvarint(b, ver.n), &ver.Version)
			}
		}
		paths = projections.SortedKeys(ms.values)
		b = binary.AppendUvarint(b, uint64(len(paths)))
		for _, p := range paths {
			b = appendVersion(appendString(b, p), ms.values[p])
		}
	}
	return b, nil
}

// Restore implements projections.View. It reads format 2 and format 1 (JSON).
func (v *View) Restore(data []byte) error {
	var (
		mounts   map[string]*mountState
		disabled map[string]bool
		err      error
	)
	if len(data) > 0 && data[0] == snapshotBinary {
		mounts, disabled, err = decodeBinary(data[1:])
	} else {
		mounts, disabled, err = decodeJSON(data)
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

func decodeJSON(data []byte) (map[string]*mountState, map[string]bool, error) {
	snap, disabled, err := projections.DecodeMounts[*mountSnapshot]("kv", 1, data)
	if err != nil {
		return nil, nil, err
	}
	mounts := make(map[string]*mountState, len(snap))
	for uuid, m := range snap {
		if m == nil {
			continue
		}
		ms := newMountState()
		ms.config = m.Config
		for p, sec := range m.Secrets {
			if sec == nil {
				continue
			}
			ms.secrets[p] = stored(sec)
			ms.index(p)
		}
		for p, val := range m.Values {
			if val == nil {
				continue
			}
			if _, ok := ms.secrets[p]; !ok {
				ms.index(p)
			}
			ms.values[p] = val
		}
		mounts[uuid] = ms
	}
	return mounts, disabled, nil
}

func decodeBinary(data []byte) (map[string]*mountState, map[string]bool, error) {
	r := reader{b: data}
	n := r.count()
	disabled := make(map[string]bool, n)
	for range n {
		disabled[r.string()] = true
	}
	n = r.count()
	mounts := make(map[string]*mountState, n)
	for range n {
		uuid := r.string()
		ms := newMountState()
		if r.bool() {
			ms.config = &Config{MaxVersions: int(r.varint()), CASRequired: r.bool(), DeleteVersionAfter: time.Duration(r.varint())}
		}
		secrets := r.count()
		ms.secrets = make(map[string]*secret, secrets)
		for range secrets {
			p := r.string()
			s := &secret{current: r.uvarint(), oldest: r.uvarint(), maxVersions: int(r.varint()), cas: r.bool(), dva: time.Duration(r.varint())}
			if k := r.count(); k > 0 {
				s.custom = make(map[string]string, k)
				for range k {
					key := r.string()
					s.custom[key] = r.string()
				}
			}
			s.created, s.updated = r.time(), r.time()
			vn := r.count()
			s.versions = make([]numbered, vn)
			for i := range s.versions {
				s.versions[i].n = r.uvarint()
				r.version(&s.versions[i].Version)
			}
			if r.err != nil {
				break
			}
			ms.secrets[p] = s
			ms.index(p)
		}
		values := r.count()
		for range values {
			p := r.string()
			var val Version
			r.version(&val)
			if r.err != nil {
				break
			}
			if _, ok := ms.secrets[p]; !ok {
				ms.index(p)
			}
			ms.values[p] = &val
		}
		mounts[uuid] = ms
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errSnapshot
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return mounts, disabled, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	t = t.UTC()
	return binary.AppendUvarint(binary.AppendVarint(append(b, 1), t.Unix()), uint64(t.Nanosecond()))
}

func appendVersion(b []byte, v *Version) []byte {
	b = appendTime(appendTime(b, v.Created), v.Deletion)
	b = appendString(appendBool(b, v.Destroyed), v.KeyID)
	return append(binary.AppendUvarint(b, uint64(len(v.Sealed))), v.Sealed...)
}

// reader decodes format 2. The first error sticks; later reads return zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err, r.b = errSnapshot, nil }

func (r *reader) uvarint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) varint() int64 {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}

// count reads a length that must fit in what is left (every item takes at least one byte),
// so a corrupt count cannot make the decoder allocate without bound.
func (r *reader) count() int {
	x := r.uvarint()
	if x > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(x)
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// bool reads a flag byte, which must be 0 or 1: one state, one encoding.
func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail()
	return false
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) time() time.Time {
	if !r.bool() {
		return time.Time{}
	}
	sec, nsec := r.varint(), r.uvarint()
	if nsec >= 1e9 || sec == math.MinInt64 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *reader) version(v *Version) {
	v.Created, v.Deletion = r.time(), r.time()
	v.Destroyed, v.KeyID = r.bool(), r.string()
	if sealed := r.bytes(); len(sealed) > 0 {
		// A copy: a view must not keep the whole decoded snapshot alive through one value.
		v.Sealed = append([]byte(nil), sealed...)
	}
}
