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
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/approle"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/lease"
	"github.com/ledger-secrets/ledger/projections/mount"
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

// View is the fingerprint view.
type View struct {
	mu       sync.RWMutex
	all      []*Location            // in log order: the snapshot's and digest's order
	byFP     map[string][]*Location // fingerprint → locations
	byPath   map[key][]*Location
	byRef    map[string][]*Location
	leases   map[string]string // lease ID → Ref (the database username) of credentials
	backfill BackfillPayload
}

// New returns an empty view.
func New() *View {
	v := &View{}
	v.reset()
	return v
}

func (v *View) reset() {
	v.all = nil
	v.byFP = map[string][]*Location{}
	v.byPath = map[key][]*Location{}
	v.byRef = map[string][]*Location{}
	v.leases = map[string]string{}
	v.backfill = BackfillPayload{}
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
		var p kvview.VersionWrittenPayload
		if err := dec(&p); err != nil {
			return err
		}
		v.setVersions(key{p.Mount, p.Path}, p.Trim, StateDestroyed, nil)
	case kvview.VersionsDeleted, kvview.VersionsUndeleted, kvview.VersionsDestroyed:
		var p kvview.VersionsPayload
		if err := dec(&p); err != nil {
			return err
		}
		switch rec.Type {
		case kvview.VersionsDeleted:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, StateDeleted, []string{StateLive})
		case kvview.VersionsUndeleted:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, StateLive, []string{StateDeleted})
		default:
			v.setVersions(key{p.Mount, p.Path}, p.Versions, StateDestroyed, nil)
		}
	case kvview.MetadataDeleted, kvview.V1Deleted:
		var p kvview.PathPayload
		if err := dec(&p); err != nil {
			return err
		}
		for _, l := range v.byPath[key{p.Mount, p.Path}] {
			if l.Kind == KindKV || l.Kind == KindKVv1 {
				l.State = StateDestroyed
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
		for _, l := range v.byRef[d.Username] {
			if l.Kind == KindCreds && l.Mount == p.MountUUID {
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
			for _, l := range v.byRef[ref] {
				if l.Kind == KindCreds {
					l.State = StateRevoked
				}
			}
			delete(v.leases, p.ID)
		}
	case approle.SecretIDDestroyed:
		var p approle.SecretIDDestroyedPayload
		if err := dec(&p); err != nil {
			return err
		}
		for _, l := range v.byRef[p.MAC] {
			l.State = StateRevoked
		}
	case approle.RoleDeleted:
		var p approle.RoleDeletedPayload
		if err := dec(&p); err != nil {
			return err
		}
		for _, l := range v.byPath[key{p.Mount, "role/" + p.Name + "/secret-id"}] {
			l.State = StateRevoked
		}
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := dec(&p); err != nil {
			return err
		}
		// The engine shreds a disabled KV mount's data keys; database passwords may still
		// work in the database, so their state stays as it was.
		for _, l := range v.all {
			if l.Mount == p.UUID && (l.Kind == KindKV || l.Kind == KindKVv1) {
				l.State = StateDestroyed
			}
		}
	}
	return nil
}

// record adds a value's locations. Recording the same (kind, mount, path, version, ref) again
// — a backfill that raced a write, a retried backfill — replaces the earlier fingerprints
// rather than adding locations. A KV v1 write, a static-role or root rotation supersede the
// path's older values.
func (v *View) record(rec ledger.Record, p RecordedPayload) {
	k := key{p.Mount, p.Path}
	state := StateLive
	for _, l := range v.byPath[k] {
		if l.Kind != p.Kind || l.Ref != p.Ref {
			continue
		}
		if l.Version == p.Version && p.Kind != KindKVv1 && p.Kind != KindRoot {
			if p.Backfilled {
				return // the value is known already, from its write
			}
			v.drop(l)
			continue
		}
		switch p.Kind {
		case KindKVv1:
			l.State = StateDestroyed
		case KindRoot:
			l.State = StateRotated
		case KindStaticRole:
			if l.Version < p.Version {
				l.State = StateRotated
			} else {
				state = StateRotated // an older generation arriving late
			}
		}
	}
	fields := make([]string, 0, len(p.Fields))
	for f := range p.Fields {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		l := &Location{
			Kind: p.Kind, Mount: p.Mount, Path: p.Path, Version: p.Version, Field: f, Ref: p.Ref,
			Accessor: p.Accessor, State: state, Written: p.Time, Actor: rec.Actor, Request: rec.Request,
			Seq: rec.Pos.Seq, FP: p.Fields[f], Backfill: p.Backfilled,
		}
		v.add(l)
	}
}

func (v *View) add(l *Location) {
	v.all = append(v.all, l)
	v.byFP[l.FP] = append(v.byFP[l.FP], l)
	k := key{l.Mount, l.Path}
	v.byPath[k] = append(v.byPath[k], l)
	if l.Ref != "" {
		v.byRef[l.Ref] = append(v.byRef[l.Ref], l)
	}
}

func (v *View) drop(l *Location) {
	del := func(s []*Location) []*Location {
		out := s[:0]
		for _, x := range s {
			if x != l {
				out = append(out, x)
			}
		}
		return out
	}
	v.all = del(v.all)
	if v.byFP[l.FP] = del(v.byFP[l.FP]); len(v.byFP[l.FP]) == 0 {
		delete(v.byFP, l.FP)
	}
	k := key{l.Mount, l.Path}
	v.byPath[k] = del(v.byPath[k])
	if l.Ref != "" {
		v.byRef[l.Ref] = del(v.byRef[l.Ref])
	}
}

// setVersions sets the state of the KV versions of a path, when their state is one of from
// (any state when from is nil; destroyed is final).
func (v *View) setVersions(k key, versions []uint64, state string, from []string) {
	if len(versions) == 0 {
		return
	}
	want := map[uint64]bool{}
	for _, n := range versions {
		want[n] = true
	}
	for _, l := range v.byPath[k] {
		if l.Kind != KindKV || !want[l.Version] || l.State == StateDestroyed {
			continue
		}
		ok := from == nil
		for _, s := range from {
			ok = ok || l.State == s
		}
		if ok {
			l.State = state
		}
	}
}

// Lookup returns copies of the locations recorded for a fingerprint, oldest first.
func (v *View) Lookup(fp string) []Location {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ls := v.byFP[fp]
	out := make([]Location, len(ls))
	for i, l := range ls {
		out[i] = *l
	}
	return out
}

// Path returns the locations recorded for a mount's path, oldest first.
func (v *View) Path(mountUUID, path string) []Location {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ls := v.byPath[key{mountUUID, path}]
	out := make([]Location, len(ls))
	for i, l := range ls {
		out[i] = *l
	}
	return out
}

// Has reports whether a value of kind at mount, path and version has fingerprints.
func (v *View) Has(kind, mountUUID, path string, version uint64) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, l := range v.byPath[key{mountUUID, path}] {
		if l.Kind == kind && l.Version == version {
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

// Len is the number of locations recorded.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.all)
}

type snapshot struct {
	Locations []*Location       `json:"locations"`
	Leases    map[string]string `json:"leases,omitempty"`
	Backfill  BackfillPayload   `json:"backfill"`
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(snapshot{Locations: v.all, Leases: v.leases, Backfill: v.backfill})
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte {
	b, _ := v.Snapshot()
	return sha256.Sum256(b)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore fingerprint view: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reset()
	for _, l := range s.Locations {
		v.add(l)
	}
	v.backfill = s.Backfill
	if s.Leases != nil {
		v.leases = s.Leases
	}
	return nil
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
