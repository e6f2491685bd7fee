// Package fingerprint is the view of value fingerprints: for every secret value Ledger wrote —
// a KV v1/v2 field, a database static role's or root password, a database credential issued,
// an AppRole secret ID — a keyed fingerprint (ledger.Keyring.Fingerprint) and where the value
// lives: mount UUID, path, version, field, kind, and whether it is still live.
//
// A fingerprint is recorded by its own event, fingerprint.recorded.v1, which the deciding
// engine puts beside the event that writes the value (same batch, so both or neither land).
// The view also folds the events that end a value's life — KV delete, undelete, destroy,
// metadata delete and max_versions trims, KV v1 overwrite and delete, static-role and root
// rotation (a newer generation), lease revocation, secret-ID destruction — so a match says
// live, deleted, destroyed, rotated or revoked. Destroyed values keep their fingerprint: the
// question "was this ever ours?" must stay answerable after crypto-shredding.
//
// The view holds no value and nothing from which one could be recovered without the keyring.
package fingerprint

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/approle"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
	segjson "github.com/segmentio/encoding/json"
)

// Event types. Recorded's subject is ledger.SubjectFor("fingerprint", mountUUID, path);
// BackfillProgressed's is Subject.
const (
	Recorded           = "fingerprint.recorded.v1"
	BackfillProgressed = "fingerprint.backfill.progressed.v1"
)

// Subject is the aggregate of the backfill's progress events.
var Subject = ledger.SubjectFor("fingerprint", "backfill")

// Kinds of values.
const (
	KindKV         = "kv"                   // a KV v2 version's field; Version is the KV version
	KindKVv1       = "kv-v1"                // a KV v1 value's field; Version 0
	KindStaticRole = "database-static-role" // Path "static-roles/<name>"; Version the generation
	KindRoot       = "database-root"        // Path "config/<name>"; Version counts rotations
	KindCreds      = "database-creds"       // Path "creds/<role>"; Ref the database username
	KindSecretID   = "approle-secret-id"    // Path "role/<name>/secret-id"; Ref the secret ID's MAC
)

// States of a value.
const (
	StateLive      = "live"
	StateDeleted   = "deleted"   // KV v2 soft delete: recoverable
	StateDestroyed = "destroyed" // crypto-shredded, trimmed, overwritten (KV v1), mount disabled
	StateRotated   = "rotated"   // a newer password replaced it in the database
	StateRevoked   = "revoked"   // lease revoked, secret ID destroyed or expired
)

// RecordedPayload records the fingerprints of one written value. Fields maps a field name
// (nested KV maps joined with ".") to its fingerprint.
type RecordedPayload struct {
	Kind       string            `json:"kind"`
	Mount      string            `json:"mount"` // mount UUID
	Path       string            `json:"path"`  // inside the mount
	Version    uint64            `json:"version"`
	Ref        string            `json:"ref,omitempty"`
	Accessor   string            `json:"accessor,omitempty"` // secret-ID accessor
	Fields     map[string]string `json:"fields"`
	Time       time.Time         `json:"time"`
	Backfilled bool              `json:"backfilled,omitempty"`
}

// BackfillPayload records how far the one-off backfill of values written before fingerprints
// existed has gone: Cursor is the last "<mount UUID>\x00<path>" done, in sorted order; Done
// marks it finished.
type BackfillPayload struct {
	Cursor string `json:"cursor"`
	Done   bool   `json:"done,omitempty"`
	Count  int    `json:"count"`
}

// Location is one place a fingerprint was recorded.
type Location struct {
	Kind     string    `json:"kind"`
	Mount    string    `json:"mount"`
	Path     string    `json:"path"`
	Version  uint64    `json:"version"`
	Field    string    `json:"field"`
	Ref      string    `json:"ref,omitempty"`
	Accessor string    `json:"accessor,omitempty"`
	State    string    `json:"state"`
	Written  time.Time `json:"written"`
	Actor    string    `json:"actor,omitempty"`   // accessor of the writer's token
	Request  string    `json:"request,omitempty"` // request id of the write
	Seq      uint64    `json:"seq"`               // log position of the write
	FP       string    `json:"fp"`
	Backfill bool      `json:"backfilled,omitempty"`
}

// Live reports whether the value still works or can still be read.
func (l Location) Live() bool { return l.State == StateLive || l.State == StateDeleted }

type key struct{ mount, path string }

// The view holds one entry per recorded value and, inside it, one field per fingerprint, with
// the strings that repeat (kind, mount, actor, field name) shared and a standard fingerprint
// ("fp1:" and 64 hex digits) kept as its 32 bytes. Entries chain by path, fields by
// fingerprint, in log order. A Location is built only when asked for: at 100,000 KV secrets a
// Location per field and a slice per index key held over 60 MB, this holds about a third.
//
// Per entry 152 bytes (a 160-byte class; 192 before the time was packed and ref and accessor,
// which only credentials have, moved out), per field 72 (80 before odd became a pointer).
type entry struct {
	kind, mount, path, actor, request string
	cred                              *credRef // nil but for database credentials
	version, seq                      uint64
	writtenSec                        int64  // projections.PackTime
	writtenNsec                       uint32 //
	state                             uint8  // index into states
	backfill                          bool
	fields                            []field
	nextPath                          *entry // the path's next entry
}

// credRef is what only credentials' entries have: the database username and lease accessor.
type credRef struct{ ref, accessor string }

func (e *entry) ref() string {
	if e.cred == nil {
		return ""
	}
	return e.cred.ref
}

func (e *entry) accessor() string {
	if e.cred == nil {
		return ""
	}
	return e.cred.accessor
}

func (e *entry) setCred(ref, accessor string) {
	if ref != "" || accessor != "" {
		e.cred = &credRef{ref: ref, accessor: accessor}
	}
}

func (e *entry) written() time.Time { return projections.UnpackTime(e.writtenSec, e.writtenNsec) }

func (e *entry) setWritten(t time.Time) { e.writtenSec, e.writtenNsec = projections.PackTime(t) }

type field struct {
	e    *entry
	name string
	fp   [32]byte // a standard fingerprint's bytes
	odd  *string  // any other fingerprint text, as is (fp is then zero); nil for a standard one
	next *field   // the next field with the same fingerprint
}

// text is the fingerprint as recorded.
func (f *field) text() string {
	if f.odd != nil {
		return *f.odd
	}
	return ledger.FingerprintPrefix + hex.EncodeToString(f.fp[:])
}

type fpChain struct{ head, tail *field }

// pathChain is a path's entries in log order. skip, when set, is an entry of the chain with
// every entry before it destroyed, which no event changes again (destroyed is final): a path
// rotated for a year holds every version it ever had, and the walks of each write — the new
// version's record, the trimmed one's destruction — start at the versions still kept.
type pathChain struct{ head, tail, skip *entry }

// kept returns the first entry of k's chain that may not be destroyed (or its last entry), and
// remembers it for the next walk.
func (v *View) kept(k key) *entry {
	pc, ok := v.byPath[k]
	if !ok {
		return nil
	}
	e := pc.skip
	if e == nil {
		e = pc.head
	}
	for e.state == destroyed && e.nextPath != nil {
		e = e.nextPath
	}
	if e != pc.skip {
		pc.skip = e
		v.byPath[k] = pc
	}
	return e
}

var states = []string{StateLive, StateDeleted, StateDestroyed, StateRotated, StateRevoked}

const (
	live uint8 = iota
	deleted
	destroyed
	rotated
	revoked
)

// parseFP returns a standard fingerprint's bytes. Only lowercase hex is standard, so the text
// round-trips exactly.
func parseFP(s string) ([32]byte, bool) {
	var out [32]byte
	hexPart, ok := strings.CutPrefix(s, ledger.FingerprintPrefix)
	if !ok || len(hexPart) != 64 {
		return out, false
	}
	for i := 0; i < 64; i++ {
		if c := hexPart[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return out, false
		}
	}
	if _, err := hex.Decode(out[:], []byte(hexPart)); err != nil {
		return out, false
	}
	return out, true
}

// View is the fingerprint view.
type View struct {
	mu       sync.RWMutex
	all      []*entry // in log order: the snapshot's and digest's order
	n        int      // fields in all
	byFP     map[[32]byte]fpChain
	byOdd    map[string]fpChain // fingerprints not in the standard form
	byPath   map[key]pathChain
	byRef    map[string][]*entry
	leases   map[string]string // lease ID → Ref (the database username) of credentials
	strs     map[string]string // interned kinds, mounts, actors, field names
	backfill BackfillPayload
}

// New returns an empty view.
func New() *View {
	v := &View{}
	v.reset()
	return v
}

func (v *View) reset() {
	v.all, v.n = nil, 0
	v.byFP = map[[32]byte]fpChain{}
	v.byOdd = map[string]fpChain{}
	v.byPath = map[key]pathChain{}
	v.byRef = map[string][]*entry{}
	v.leases = map[string]string{}
	v.strs = map[string]string{}
	v.backfill = BackfillPayload{}
}

func (v *View) intern(s string) string {
	if t, ok := v.strs[s]; ok {
		return t
	}
	v.strs[s] = s
	return s
}

// Name implements projections.View.
func (v *View) Name() string { return "fingerprint" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Recorded, BackfillProgressed, kvview.VersionWritten, kvview.VersionsDeleted, kvview.VersionsUndeleted,
		kvview.VersionsDestroyed, kvview.MetadataDeleted, kvview.V1Deleted, lease.Issued, lease.Revoked,
		approle.SecretIDDestroyed, approle.RoleDeleted, mount.Disabled:
	default:
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	dec := func(p any) error {
		if err := json.Unmarshal(rec.Payload, p); err != nil {
			return fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		return nil
	}
	switch rec.Type {
	case Recorded:
		var p RecordedPayload
		if err := dec(&p); err != nil {
			return err
		}
		v.record(rec, p)
	case BackfillProgressed:
		return dec(&v.backfill)
	case kvview.VersionWritten:
		// Only the trimmed versions matter here, and most writes trim none: the payload's
		// sealed value and key id are skipped (segmentio/encoding skips a string at a fraction
		// of encoding/json's cost, which would also base64-decode the value).
		var p struct {
			Mount string   `json:"mount"`
			Path  string   `json:"path"`
			Trim  []uint64 `json:"trim"`
		}
		if err := segjson.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		v.setVersions(key{p.Mount, p.Path}, p.Trim, destroyed, nil)
	case kvview.VersionsDeleted, kvview.VersionsUndeleted, kvview.VersionsDestroyed:
		var p kvview.VersionsPayload
		if err := dec(&p); err != nil {
			return err
		}
		switch rec.Type {
		case kvview.VersionsDeleted:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, deleted, []uint8{live})
		case kvview.VersionsUndeleted:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, live, []uint8{deleted})
		default:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, destroyed, nil)
		}
	case kvview.MetadataDeleted, kvview.V1Deleted:
		var p kvview.PathPayload
		if err := dec(&p); err != nil {
			return err
		}
		for e := v.byPath[key{p.Mount, p.Path}].head; e != nil; e = e.nextPath {
			if e.kind == KindKV || e.kind == KindKVv1 {
				e.state = destroyed
			}
		}
	case lease.Issued:
		// Credentials are fingerprinted before the pipeline names their lease; the lease's
		// internal data names the user (database leases carry "username"), which ties them.
		var p lease.IssuedPayload
		if err := dec(&p); err != nil {
			return err
		}
		var d struct {
			Username string `json:"username"`
		}
		if json.Unmarshal(p.InternalData, &d) != nil || d.Username == "" {
			return nil
		}
		for _, e := range v.byRef[d.Username] {
			if e.kind == KindCreds && e.mount == p.MountUUID {
				v.leases[p.ID] = d.Username
				break
			}
		}
	case lease.Revoked:
		var p lease.RevokedPayload
		if err := dec(&p); err != nil {
			return err
		}
		if ref, ok := v.leases[p.ID]; ok {
			for _, e := range v.byRef[ref] {
				if e.kind == KindCreds {
					e.state = revoked
				}
			}
			delete(v.leases, p.ID)
		}
	case approle.SecretIDDestroyed:
		var p approle.SecretIDDestroyedPayload
		if err := dec(&p); err != nil {
			return err
		}
		for _, e := range v.byRef[p.MAC] {
			e.state = revoked
		}
	case approle.RoleDeleted:
		var p approle.RoleDeletedPayload
		if err := dec(&p); err != nil {
			return err
		}
		for e := v.byPath[key{p.Mount, "role/" + p.Name + "/secret-id"}].head; e != nil; e = e.nextPath {
			e.state = revoked
		}
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := dec(&p); err != nil {
			return err
		}
		// The engine shreds a disabled KV mount's data keys; database passwords may still
		// work in the database, so their state stays as it was.
		for _, e := range v.all {
			if e.mount == p.UUID && (e.kind == KindKV || e.kind == KindKVv1) {
				e.state = destroyed
			}
		}
	}
	return nil
}

// record adds a value's entry. Recording the same (kind, mount, path, version, ref) again — a
// backfill that raced a write, a retried backfill — replaces the earlier fingerprints rather
// than adding an entry. A KV v1 write, a static-role or root rotation supersede the path's
// older values.
func (v *View) record(rec ledger.Record, p RecordedPayload) {
	k := key{p.Mount, p.Path}
	state := live
	first := v.byPath[k].head
	if p.Kind == KindKV && !p.Backfilled {
		// A write's own record replaces only an entry of its version not yet destroyed; a
		// backfill must see destroyed ones too (it adds nothing for a version already known).
		first = v.kept(k)
	}
	for e := first; e != nil; {
		next := e.nextPath
		if e.kind != p.Kind || e.ref() != p.Ref {
			e = next
			continue
		}
		if e.version == p.Version && p.Kind != KindKVv1 && p.Kind != KindRoot {
			if p.Backfilled {
				return // the value is known already, from its write
			}
			v.drop(e)
			e = next
			continue
		}
		switch p.Kind {
		case KindKVv1:
			e.state = destroyed
		case KindRoot:
			e.state = rotated
		case KindStaticRole:
			if e.version < p.Version {
				e.state = rotated
			} else {
				state = rotated // an older generation arriving late
			}
		}
		e = next
	}
	if len(p.Fields) == 0 {
		return
	}
	e := &entry{
		kind: v.intern(p.Kind), mount: v.intern(p.Mount), path: p.Path,
		actor: v.intern(rec.Actor), request: rec.Request, version: p.Version, seq: rec.Pos.Seq,
		state: state, backfill: p.Backfilled,
	}
	e.setCred(p.Ref, p.Accessor)
	e.setWritten(p.Time)
	e.fields = make([]field, 0, len(p.Fields))
	for _, name := range projections.SortedKeys(p.Fields) {
		e.fields = append(e.fields, v.newField(e, name, p.Fields[name]))
	}
	v.add(e)
}

func (v *View) newField(e *entry, name, fp string) field {
	f := field{e: e, name: v.intern(name)}
	var ok bool
	if f.fp, ok = parseFP(fp); !ok {
		f.odd = &fp
	}
	return f
}

func (v *View) add(e *entry) {
	v.all = append(v.all, e)
	v.n += len(e.fields)
	k := key{e.mount, e.path}
	pc := v.byPath[k]
	if pc.tail == nil {
		pc.head = e
	} else {
		pc.tail.nextPath = e
	}
	pc.tail = e
	v.byPath[k] = pc
	if ref := e.ref(); ref != "" {
		v.byRef[ref] = append(v.byRef[ref], e)
	}
	for i := range e.fields {
		f := &e.fields[i]
		var c fpChain
		if f.odd != nil {
			c = v.byOdd[*f.odd]
		} else {
			c = v.byFP[f.fp]
		}
		if c.tail == nil {
			c.head = f
		} else {
			c.tail.next = f
		}
		c.tail = f
		if f.odd != nil {
			v.byOdd[*f.odd] = c
		} else {
			v.byFP[f.fp] = c
		}
	}
}

// drop removes an entry (rare: a value recorded again).
func (v *View) drop(e *entry) {
	out := v.all[:0]
	for _, x := range v.all {
		if x != e {
			out = append(out, x)
		}
	}
	clear(v.all[len(out):])
	v.all = out
	v.n -= len(e.fields)
	k := key{e.mount, e.path}
	pc := v.byPath[k]
	var prev *entry
	for x := pc.head; x != nil; prev, x = x, x.nextPath {
		if x != e {
			continue
		}
		if prev == nil {
			pc.head = x.nextPath
		} else {
			prev.nextPath = x.nextPath
		}
		if pc.tail == x {
			pc.tail = prev
		}
		if pc.skip == x {
			pc.skip = x.nextPath // everything before x was destroyed, so is everything before its next
		}
		break
	}
	if pc.head == nil {
		delete(v.byPath, k)
	} else {
		v.byPath[k] = pc
	}
	if ref := e.ref(); ref != "" {
		refs := v.byRef[ref][:0]
		for _, x := range v.byRef[ref] {
			if x != e {
				refs = append(refs, x)
			}
		}
		if len(refs) == 0 {
			delete(v.byRef, ref)
		} else {
			v.byRef[ref] = refs
		}
	}
	for i := range e.fields {
		f := &e.fields[i]
		var c fpChain
		if f.odd != nil {
			c = v.byOdd[*f.odd]
		} else {
			c = v.byFP[f.fp]
		}
		var prev *field
		for x := c.head; x != nil; prev, x = x, x.next {
			if x != f {
				continue
			}
			if prev == nil {
				c.head = x.next
			} else {
				prev.next = x.next
			}
			if c.tail == x {
				c.tail = prev
			}
			break
		}
		switch {
		case c.head == nil && f.odd != nil:
			delete(v.byOdd, *f.odd)
		case c.head == nil:
			delete(v.byFP, f.fp)
		case f.odd != nil:
			v.byOdd[*f.odd] = c
		default:
			v.byFP[f.fp] = c
		}
	}
}

// setVersions sets the state of the KV versions of a path, when their state is one of from
// (any state when from is nil; destroyed is final).
func (v *View) setVersions(k key, versions []uint64, state uint8, from []uint8) {
	if len(versions) == 0 {
		return
	}
	for e := v.kept(k); e != nil; e = e.nextPath {
		if e.kind != KindKV || !slices.Contains(versions, e.version) || e.state == destroyed {
			continue
		}
		if from == nil || slices.Contains(from, e.state) {
			e.state = state
		}
	}
}

func (f *field) location() Location {
	e := f.e
	return Location{
		Kind: e.kind, Mount: e.mount, Path: e.path, Version: e.version, Field: f.name, Ref: e.ref(),
		Accessor: e.accessor(), State: states[e.state], Written: e.written(), Actor: e.actor, Request: e.request,
		Seq: e.seq, FP: f.text(), Backfill: e.backfill,
	}
}

// Lookup returns copies of the locations recorded for a fingerprint, oldest first.
func (v *View) Lookup(fp string) []Location {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var c fpChain
	if b, ok := parseFP(fp); ok {
		c = v.byFP[b]
	} else {
		c = v.byOdd[fp]
	}
	out := []Location{}
	for f := c.head; f != nil; f = f.next {
		out = append(out, f.location())
	}
	return out
}

// Path returns the locations recorded for a mount's path, oldest first.
func (v *View) Path(mountUUID, path string) []Location {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := []Location{}
	for e := v.byPath[key{mountUUID, path}].head; e != nil; e = e.nextPath {
		for i := range e.fields {
			out = append(out, e.fields[i].location())
		}
	}
	return out
}

// Has reports whether a value of kind at mount, path and version has fingerprints.
func (v *View) Has(kind, mountUUID, path string, version uint64) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for e := v.byPath[key{mountUUID, path}].head; e != nil; e = e.nextPath {
		if e.kind == kind && e.version == version {
			return true
		}
	}
	return false
}

// Backfill is the backfill's recorded progress.
func (v *View) Backfill() BackfillPayload {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.backfill
}

// Len is the number of locations (fingerprinted fields) recorded.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.n
}

// FieldFingerprints fingerprints the fields of a KV value with fp: each string leaf by its
// exact bytes; a number, boolean or other scalar by its JSON text (12345678 → "12345678", as
// it would appear in a file); nested maps by their leaves, named "outer.inner". Lists and null
// are skipped: they are not one value that could leak as a string.
func FieldFingerprints(value map[string]any, fp func([]byte) string) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			name := prefix + k
			switch x := val.(type) {
			case string:
				out[name] = fp([]byte(x))
			case map[string]any:
				walk(name+".", x)
			case nil, []any:
			case json.Number:
				out[name] = fp([]byte(x.String()))
			default:
				b, err := json.Marshal(x)
				if err == nil {
					out[name] = fp(b)
				}
			}
		}
	}
	walk("", value)
	return out
}

// Event builds the fingerprint.recorded.v1 event for p, with the writing event's actor and
// request.
func Event(p RecordedPayload, actor, request string, now time.Time) (ledger.Event, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", Recorded, err)
	}
	return ledger.Event{Type: Recorded, Subject: ledger.SubjectFor("fingerprint", p.Mount, p.Path), Time: now,
		Actor: actor, Request: request, Payload: b}, nil
}
