package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ledger-secrets/ledger/projections"
)

// The view has an entry for every secret value ever written, so at a million secrets it is as
// large as the KV view and its snapshot is binary like the KV view's: the JSON of earlier
// builds held 256 MB in one buffer while a checkpoint was written at 100,000 secrets, and
// took seconds to decode at unseal.
//
// Format 2 (this build writes it; format 1, the JSON of earlier builds, still restores):
//
//	0x02
//	uvarint n, n × entry                   in log order
//	entry  = string kind, mount, path, uvarint version, string ref, accessor, byte state,
//	         time written, string actor, request, uvarint seq, bool backfilled,
//	         uvarint n, n × (string field, fp)   fields sorted by name
//	fp     = 0x00 32 bytes (a standard "fp1:" fingerprint) | 0x01 string (any other text)
//	uvarint n, n × (string lease ID, string ref)   sorted by lease ID
//	string cursor, bool done, varint count   the backfill's progress
//
// (strings, bools and times as projections.AppendString etc.). Equal states encode to equal
// bytes, and the digest is the hash of them.
const snapshotBinary = 2

var errSnapshot = errors.New("restore fingerprint view: truncated or malformed snapshot")

// encode writes format 2, handing the bytes to flush every 64 KiB and at the end; flush
// returns the buffer to go on with.
func (v *View) encode(b []byte, flush func([]byte) []byte) []byte {
	b = append(b, snapshotBinary)
	b = binary.AppendUvarint(b, uint64(len(v.all)))
	for _, e := range v.all {
		b = projections.AppendString(b, e.kind)
		b = projections.AppendString(b, e.mount)
		b = projections.AppendString(b, e.path)
		b = binary.AppendUvarint(b, e.version)
		b = projections.AppendString(b, e.ref())
		b = projections.AppendString(b, e.accessor())
		b = append(b, e.state)
		b = projections.AppendTime(b, e.written())
		b = projections.AppendString(b, e.actor)
		b = projections.AppendString(b, e.request)
		b = binary.AppendUvarint(b, e.seq)
		b = projections.AppendBool(b, e.backfill)
		b = binary.AppendUvarint(b, uint64(len(e.fields)))
		for i := range e.fields {
			f := &e.fields[i]
			b = projections.AppendString(b, f.name)
			if f.odd != nil {
				b = projections.AppendString(append(b, 1), *f.odd)
			} else {
				b = append(append(b, 0), f.fp[:]...)
			}
		}
		if len(b) >= 64<<10 {
			b = flush(b)
		}
	}
	ids := projections.SortedKeys(v.leases)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = projections.AppendString(projections.AppendString(b, id), v.leases[id])
	}
	b = projections.AppendString(b, v.backfill.Cursor)
	b = projections.AppendBool(b, v.backfill.Done)
	b = binary.AppendVarint(b, int64(v.backfill.Count))
	return flush(b)
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	// The exact size of what encode writes, so the snapshot is one allocation: an estimate
	// that fell short made append copy it into one twice as large while the runner was held
	// (45 MB of transient for 20 MB of snapshot at 100,000 secrets).
	size := 1 + projections.UvarintLen(uint64(len(v.all)))
	for _, e := range v.all {
		size += projections.StringLen(e.kind) + projections.StringLen(e.mount) + projections.StringLen(e.path) + projections.UvarintLen(e.version) + projections.StringLen(e.ref()) +
			projections.StringLen(e.accessor()) + 1 + projections.TimeLen(e.written()) + projections.StringLen(e.actor) +
			projections.StringLen(e.request) + projections.UvarintLen(e.seq) + 1 + projections.UvarintLen(uint64(len(e.fields)))
		for i := range e.fields {
			f := &e.fields[i]
			size += projections.StringLen(f.name) + 1
			if f.odd != nil {
				size += projections.StringLen(*f.odd)
			} else {
				size += len(f.fp)
			}
		}
	}
	size += 64 + projections.UvarintLen(uint64(len(v.leases))) + projections.StringLen(v.backfill.Cursor)
	for id, ref := range v.leases {
		size += projections.StringLen(id) + projections.StringLen(ref)
	}
	return v.encode(make([]byte, 0, size), func(b []byte) []byte { return b }), nil
}

// Digest implements projections.View: the SHA-256 of Snapshot's bytes, hashed as they are
// encoded rather than held whole.
func (v *View) Digest() [32]byte {
	v.mu.RLock()
	defer v.mu.RUnlock()
	h := sha256.New()
	v.encode(make([]byte, 0, 72<<10), func(b []byte) []byte {
		h.Write(b)
		return b[:0]
	})
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Restore implements projections.View. It reads format 2 and format 1 (JSON).
func (v *View) Restore(data []byte) error {
	fresh := New()
	var err error
	if len(data) > 0 && data[0] == snapshotBinary {
		err = fresh.decodeBinary(data[1:])
	} else {
		err = fresh.decodeJSON(data)
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.all, v.n, v.byFP, v.byOdd, v.byPath, v.byRef = fresh.all, fresh.n, fresh.byFP, fresh.byOdd, fresh.byPath, fresh.byRef
	v.leases, v.strs, v.backfill = fresh.leases, fresh.strs, fresh.backfill
	return nil
}

func (v *View) decodeBinary(data []byte) error {
	r := projections.NewReader(data, errSnapshot)
	n := r.Count()
	v.all = make([]*entry, 0, n)
	for range n {
		e := &entry{kind: v.intern(r.String()), mount: v.intern(r.String()), path: r.String(), version: r.Uvarint()}
		e.setCred(r.String(), r.String())
		e.state = r.Byte()
		e.setWritten(r.Time())
		e.actor, e.request, e.seq, e.backfill = v.intern(r.String()), r.String(), r.Uvarint(), r.Bool()
		if int(e.state) >= len(states) {
			r.Fail()
		}
		k := r.Count()
		e.fields = make([]field, k)
		for i := range e.fields {
			f := &e.fields[i]
			f.e, f.name = e, v.intern(r.String())
			if r.Bool() {
				if odd := r.String(); odd == "" {
					r.Fail()
				} else {
					f.odd = &odd
				}
			} else {
				copy(f.fp[:], r.Fixed(32))
			}
		}
		if r.Err != nil {
			return r.Err
		}
		v.add(e)
	}
	for range r.Count() {
		id := r.String()
		v.leases[id] = r.String()
	}
	v.backfill = BackfillPayload{Cursor: r.String(), Done: r.Bool(), Count: int(r.Varint())}
	if r.Err == nil && r.Rest() != 0 {
		r.Fail()
	}
	return r.Err
}

// snapshotJSON is format 1: every location in log order.
type snapshotJSON struct {
	Locations []*Location       `json:"locations"`
	Leases    map[string]string `json:"leases,omitempty"`
	Backfill  BackfillPayload   `json:"backfill"`
}

// decodeJSON reads format 1. The fields of one value were consecutive locations that differ
// only in field and fingerprint; they become one entry again.
func (v *View) decodeJSON(data []byte) error {
	var s snapshotJSON
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore fingerprint view: %w", err)
	}
	var cur *entry
	for _, l := range s.Locations {
		if l == nil {
			return errSnapshot
		}
		st := -1
		for i, name := range states {
			if l.State == name {
				st = i
			}
		}
		if st < 0 {
			return fmt.Errorf("restore fingerprint view: unknown state %q", l.State)
		}
		e := &entry{kind: v.intern(l.Kind), mount: v.intern(l.Mount), path: l.Path, version: l.Version,
			state: uint8(st), actor: v.intern(l.Actor), request: l.Request, seq: l.Seq, backfill: l.Backfill}
		e.setCred(l.Ref, l.Accessor)
		e.setWritten(l.Written)
		if cur != nil && sameValue(cur, e) {
			cur.fields = append(cur.fields, v.newField(cur, l.Field, l.FP))
			continue
		}
		if cur != nil {
			v.add(cur)
		}
		cur = e
		cur.fields = []field{v.newField(cur, l.Field, l.FP)}
	}
	if cur != nil {
		v.add(cur)
	}
	for id, ref := range s.Leases {
		v.leases[id] = ref
	}
	v.backfill = s.Backfill
	return nil
}

func sameValue(a, b *entry) bool {
	return a.kind == b.kind && a.mount == b.mount && a.path == b.path && a.version == b.version && a.ref() == b.ref() &&
		a.accessor() == b.accessor() && a.state == b.state && a.written().Equal(b.written()) && a.actor == b.actor &&
		a.request == b.request && a.seq == b.seq && a.backfill == b.backfill
}

// Keys calls yield with every name the view holds as a key — the lease IDs of credentials —
// as the keys of its format 1 (JSON) snapshot were; never a value. (The scan for names with
// invalid UTF-8 uses it instead of decoding the snapshot.)
func (v *View) Keys(yield func(string)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for id := range v.leases {
		yield(id)
	}
}
