package kv

import (
	"encoding/binary"
	"errors"
	"sort"
	"time"
	"unsafe"

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
			for i := range s.versions {
				size += s.versions[i].encodedLen()
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
		b = projections.AppendString(b, uuid)
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
		b = projections.AppendString(b, uuid)
		if c := ms.config; c == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendVarint(b, int64(c.MaxVersions))
			b = projections.AppendBool(b, c.CASRequired)
			b = binary.AppendVarint(b, int64(c.DeleteVersionAfter))
		}
		paths := projections.SortedKeys(ms.secrets)
		b = binary.AppendUvarint(b, uint64(len(paths)))
		for _, p := range paths {
			s := ms.secrets[p]
			b = projections.AppendString(b, p)
			b = binary.AppendUvarint(b, s.current)
			b = binary.AppendUvarint(b, s.oldest)
			b = binary.AppendVarint(b, int64(s.maxVersions))
			b = projections.AppendBool(b, s.cas)
			b = binary.AppendVarint(b, int64(s.dva))
			keys := projections.SortedKeys(s.custom)
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = projections.AppendString(projections.AppendString(b, k), s.custom[k])
			}
			b = projections.AppendTime(projections.AppendTime(b, s.created()), s.updated())
			b = binary.AppendUvarint(b, uint64(len(s.versions)))
			for i := range s.versions {
				ver := &s.versions[i]
				b = ver.appendTo(binary.AppendUvarint(b, ver.n))
			}
		}
		paths = projections.SortedKeys(ms.values)
		b = binary.AppendUvarint(b, uint64(len(paths)))
		for _, p := range paths {
			b = appendVersion(projections.AppendString(b, p), ms.values[p])
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
		ms := restoredMountState()
		ms.config = m.Config
		for p, sec := range m.Secrets {
			if sec == nil {
				continue
			}
			ms.secrets[p] = ms.stored(sec)
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
	r := projections.NewReader(data, errSnapshot)
	var a restoreArena
	n := r.Count()
	disabled := make(map[string]bool, n)
	for range n {
		disabled[r.String()] = true
	}
	n = r.Count()
	mounts := make(map[string]*mountState, n)
	for range n {
		uuid := r.String()
		ms := restoredMountState()
		if r.Bool() {
			ms.config = &Config{MaxVersions: int(r.Varint()), CASRequired: r.Bool(), DeleteVersionAfter: time.Duration(r.Varint())}
		}
		secrets := r.Count()
		ms.secrets = make(map[string]*secret, secrets)
		slab := make([]secret, secrets)
		for i := range secrets {
			p := a.str(r.Bytes())
			s := &slab[i]
			*s = secret{current: r.Uvarint(), oldest: r.Uvarint(), maxVersions: int(r.Varint()), cas: r.Bool(), dva: time.Duration(r.Varint())}
			if k := r.Count(); k > 0 {
				s.custom = make(map[string]string, k)
				for range k {
					key := r.String()
					s.custom[key] = r.String()
				}
			}
			s.setCreated(r.Time())
			s.setUpdated(r.Time())
			s.versions = a.versions(r.Count())
			for i := range s.versions {
				x := &s.versions[i]
				x.n = r.Uvarint()
				x.createdSec, x.createdNsec = projections.PackTime(r.Time())
				x.deletionSec, x.deletionNsec = projections.PackTime(r.Time())
				x.destroyed = r.Bool()
				x.setKey(splitKeyID(ms, r.Bytes()))
				if sealed := r.Bytes(); len(sealed) > 0 {
					// A copy: a view must not keep the whole decoded snapshot alive.
					x.sealed = a.bytes(sealed)
				}
			}
			if r.Err != nil {
				break
			}
			ms.secrets[p] = s
			ms.index(p)
		}
		values := r.Count()
		for range values {
			p := r.String()
			var val Version
			readVersion(r, &val)
			if r.Err != nil {
				break
			}
			if _, ok := ms.secrets[p]; !ok {
				ms.index(p)
			}
			ms.values[p] = &val
		}
		mounts[uuid] = ms
	}
	if r.Err == nil && r.Rest() != 0 {
		r.Err = errSnapshot
	}
	if r.Err != nil {
		return nil, nil, r.Err
	}
	return mounts, disabled, nil
}

// restoreArena hands decodeBinary the secrets' paths, versions and sealed values out of a few
// large allocations instead of three or four small ones per secret: at 100k secrets those were
// 400,000 allocations and most of a checkpoint's restore. Each piece is capped at its own
// length (an append to it reallocates, never writes into a neighbour), and the bytes behind
// a path string are never written again. A chunk stays in memory while any piece of it is
// referenced, so a restored view can hold on to what later writes replaced — at most what the
// checkpoint itself held, until the next restart.
type restoreArena struct {
	buf []byte
	vs  []numbered
}

const (
	arenaBytes    = 256 << 10
	arenaVersions = 4096
)

func (a *restoreArena) bytes(b []byte) []byte {
	if len(b) > arenaBytes/4 {
		return append([]byte(nil), b...)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, arenaBytes)
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n : n+len(b) : n+len(b)]
}

func (a *restoreArena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c := a.bytes(b)
	return unsafe.String(&c[0], len(c))
}

func (a *restoreArena) versions(n int) []numbered {
	if n > arenaVersions/4 {
		return make([]numbered, n)
	}
	if cap(a.vs)-len(a.vs) < n {
		a.vs = make([]numbered, 0, arenaVersions)
	}
	k := len(a.vs)
	a.vs = a.vs[:k+n]
	return a.vs[k : k+n : k+n]
}

func readVersion(r *projections.Reader, v *Version) {
	v.Created, v.Deletion = r.Time(), r.Time()
	v.Destroyed, v.KeyID = r.Bool(), r.String()
	if sealed := r.Bytes(); len(sealed) > 0 {
		// A copy: a view must not keep the whole decoded snapshot alive through one value.
		v.Sealed = append([]byte(nil), sealed...)
	}
}

func appendVersion(b []byte, v *Version) []byte {
	b = projections.AppendTime(projections.AppendTime(b, v.Created), v.Deletion)
	b = projections.AppendString(projections.AppendBool(b, v.Destroyed), v.KeyID)
	return projections.AppendBytes(b, v.Sealed)
}
