// Package kv is the view of the KV secrets engine (v1 and v2): per mount, the configuration,
// and per secret path its metadata and versions, each version's value sealed under its own data
// key (see ledger.DataKeys). The view never holds plaintext and never a data key: it stores what
// the events carry — ciphertext and key id — and the engine opens a value for the length of a
// request. Destroyed, trimmed and deleted versions lose their ciphertext here, so neither the
// view nor any later snapshot of it holds them; their keys are shredded by the engine.
//
// The view is keyed by mount UUID, then path. It also keeps a per-directory index of the paths
// for LIST, and forgets a mount entirely when it is disabled.
package kv

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Payloads are the *Payload types below; subjects are
// ledger.SubjectFor("kv", mountUUID, path), or ledger.SubjectFor("kv", mountUUID) for config.
const (
	VersionWritten    = "kv.version.written.v1"    // KV v2 data write or patch
	VersionsDeleted   = "kv.versions.deleted.v1"   // soft delete
	VersionsUndeleted = "kv.versions.undeleted.v1" // undo a soft delete
	VersionsDestroyed = "kv.versions.destroyed.v1" // values gone for good
	MetadataWritten   = "kv.metadata.written.v1"
	MetadataDeleted   = "kv.metadata.deleted.v1" // the path, every version and its metadata
	ConfigWritten     = "kv.config.written.v1"
	V1Written         = "kv.v1.written.v1" // KV v1: the value at a path replaced
	V1Deleted         = "kv.v1.deleted.v1"
)

// Payloads. Every payload names its mount by UUID and its path. Shred lists the data keys the
// event makes unreachable; the view ignores it (it drops the ciphertext by itself), the engine's
// shred hook destroys those keys once the event is committed.

// VersionWrittenPayload adds version Version. Trim lists the versions that max_versions pushes
// out, decided by the engine so that what the view drops and what the engine shreds cannot
// differ; Oldest is oldest_version afterwards.
type VersionWrittenPayload struct {
	Mount    string    `json:"mount"`
	Path     string    `json:"path"`
	Version  uint64    `json:"version"`
	Created  time.Time `json:"created"`
	Deletion time.Time `json:"deletion,omitzero"` // from delete_version_after
	KeyID    string    `json:"key_id"`
	Sealed   []byte    `json:"sealed"`
	Trim     []uint64  `json:"trim,omitempty"`
	Oldest   uint64    `json:"oldest"`
	Shred    []string  `json:"shred,omitempty"`
	// Patch marks a version written by PATCH (a merge of the previous one); the view ignores
	// it, change events report it as kv-v2/data-patch.
	Patch bool `json:"patch,omitempty"`
	// Imported marks a version copied from another server by `ledger operator import`: Created
	// is then the source's created_time (the event's own time is when it was imported), and a
	// version without KeyID is one whose value the source would not give (deleted there).
	Imported bool `json:"imported,omitempty"`
}

// VersionsPayload names versions of a path: deleted at Time, undeleted (Time is then the new
// deletion time from delete_version_after, or zero), or destroyed.
type VersionsPayload struct {
	Mount    string    `json:"mount"`
	Path     string    `json:"path"`
	Versions []uint64  `json:"versions"`
	Time     time.Time `json:"time,omitzero"`
	Shred    []string  `json:"shred,omitempty"`
	// Latest marks a soft delete of the current version through DELETE data/:path (Vault's
	// kv-v2/data-delete event) rather than POST delete/:path (kv-v2/delete); the view ignores it.
	Latest bool `json:"latest,omitempty"`
}

// MetadataWrittenPayload sets a path's metadata (absolute values, not a delta). Created is the
// created/updated time used when the path has no metadata yet.
type MetadataWrittenPayload struct {
	Mount              string            `json:"mount"`
	Path               string            `json:"path"`
	MaxVersions        int               `json:"max_versions"`
	CASRequired        bool              `json:"cas_required"`
	DeleteVersionAfter time.Duration     `json:"delete_version_after"`
	CustomMetadata     map[string]string `json:"custom_metadata,omitempty"`
	Created            time.Time         `json:"created"`
	// Patch marks metadata written by PATCH (kv-v2/metadata-patch); the view ignores it.
	Patch bool `json:"patch,omitempty"`
}

// PathPayload removes a path (metadata delete, KV v1 delete).
type PathPayload struct {
	Mount string   `json:"mount"`
	Path  string   `json:"path"`
	Shred []string `json:"shred,omitempty"`
}

// ConfigWrittenPayload sets a mount's configuration.
type ConfigWrittenPayload struct {
	Mount  string `json:"mount"`
	Config Config `json:"config"`
}

// V1WrittenPayload replaces the value at a KV v1 path. Shred holds the replaced value's key.
type V1WrittenPayload struct {
	Mount  string    `json:"mount"`
	Path   string    `json:"path"`
	Time   time.Time `json:"time"`
	KeyID  string    `json:"key_id"`
	Sealed []byte    `json:"sealed"`
	Shred  []string  `json:"shred,omitempty"`
}

// Config is a KV v2 mount's configuration. Zero values mean Vault's defaults.
type Config struct {
	MaxVersions        int           `json:"max_versions"`
	CASRequired        bool          `json:"cas_required"`
	DeleteVersionAfter time.Duration `json:"delete_version_after"` // < 0: disabled for every key
}

// Version is one version of a secret (or a KV v1 value). Sealed is the value sealed under the
// data key KeyID; both are empty once destroyed.
type Version struct {
	Created   time.Time `json:"created"`
	Deletion  time.Time `json:"deletion,omitzero"` // zero: neither deleted nor scheduled
	Destroyed bool      `json:"destroyed,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	Sealed    []byte    `json:"sealed,omitempty"`
}

// Deleted reports whether the version counts as deleted at now: a deletion time that has
// passed, whether set by a delete or scheduled by delete_version_after (as Vault decides).
func (v Version) Deleted(now time.Time) bool { return !v.Deletion.IsZero() && v.Deletion.Before(now) }

// HasValue reports whether the version holds a value: not destroyed, and not a version imported
// without one (the source had it deleted, so its value could not be read).
func (v Version) HasValue() bool { return !v.Destroyed && v.KeyID != "" }

// Secret is a KV v2 path: its metadata and the versions kept.
type Secret struct {
	CurrentVersion     uint64             `json:"current_version"`
	OldestVersion      uint64             `json:"oldest_version"`
	MaxVersions        int                `json:"max_versions"`
	CASRequired        bool               `json:"cas_required"`
	DeleteVersionAfter time.Duration      `json:"delete_version_after"`
	CustomMetadata     map[string]string  `json:"custom_metadata,omitempty"`
	Created            time.Time          `json:"created"`
	Updated            time.Time          `json:"updated"`
	Versions           map[uint64]Version `json:"versions,omitempty"`
}

// secret is how the view stores a KV v2 path: Secret with its versions in a slice in
// ascending order instead of a map. A Go map costs about a kilobyte even for one entry, which
// at a million paths was most of the server's memory. Its times are kept as seconds and
// nanoseconds (see projections.PackTime): 96 bytes where two time.Time made it 120 (a 128-byte class).
type secret struct {
	current, oldest          uint64
	maxVersions              int
	cas                      bool
	dva                      time.Duration
	custom                   map[string]string
	createdSec, updatedSec   int64
	createdNsec, updatedNsec uint32
	versions                 []numbered
}

// find returns the index of version n.
func (s *secret) find(n uint64) (int, bool) {
	i := sort.Search(len(s.versions), func(i int) bool { return s.versions[i].n >= n })
	return i, i < len(s.versions) && s.versions[i].n == n
}

// public is the Secret callers get: a copy they may keep (Sealed is never written in place,
// so sharing it is safe).
func (s *secret) public() Secret {
	c := s.head()
	c.Versions = make(map[uint64]Version, len(s.versions))
	for _, v := range s.versions {
		c.Versions[v.n] = v.version()
	}
	return c
}

// head is public without the versions: the secret's own metadata, copied.
func (s *secret) head() Secret {
	c := Secret{CurrentVersion: s.current, OldestVersion: s.oldest, MaxVersions: s.maxVersions,
		CASRequired: s.cas, DeleteVersionAfter: s.dva, Created: s.created(), Updated: s.updated()}
	if s.custom != nil {
		c.CustomMetadata = maps.Clone(s.custom)
	}
	return c
}

// stored is the view's form of a Secret of mount ms (from a v1 snapshot).
func (ms *mountState) stored(p *Secret) *secret {
	s := &secret{current: p.CurrentVersion, oldest: p.OldestVersion, maxVersions: p.MaxVersions,
		cas: p.CASRequired, dva: p.DeleteVersionAfter, custom: p.CustomMetadata, versions: make([]numbered, 0, len(p.Versions))}
	s.setCreated(p.Created)
	s.setUpdated(p.Updated)
	for n, v := range p.Versions {
		s.versions = append(s.versions, ms.newNumbered(n, v))
	}
	sort.Slice(s.versions, func(i, j int) bool { return s.versions[i].n < s.versions[j].n })
	return s
}

// dir is one directory of the LIST index: its children, folders with a trailing "/".
type dir struct {
	children map[string]struct{}
	sorted   atomic.Pointer[[]string] // cache; nil after a change
}

type mountState struct {
	config  *Config
	secrets map[string]*secret  // KV v2
	values  map[string]*Version // KV v1
	dirs    map[string]*dir     // "" (root), "a/", "a/b/"; nil until built
	// A restored mount's LIST index is built by its first LIST (buildDirs), not by the
	// restore: at 1M secrets building it was ~0.9 s of an unseal's CPU, for an index only LIST
	// reads. Apply keeps a built index current and leaves an unbuilt one alone (the build
	// derives it from secrets and values, which Apply always keeps).
	dirsBuilt atomic.Bool
	dirsMu    sync.Mutex // one builder at a time under the view's read lock
	// prefixes shares the data-key id prefixes of the mount's versions (keyID): one, usually.
	prefixes map[string]string
}

func newMountState() *mountState {
	ms := &mountState{secrets: map[string]*secret{}, values: map[string]*Version{}, dirs: map[string]*dir{}, prefixes: map[string]string{}}
	ms.dirsBuilt.Store(true)
	return ms
}

// restoredMountState is newMountState for a restore: its LIST index is built on first use.
func restoredMountState() *mountState {
	return &mountState{secrets: map[string]*secret{}, values: map[string]*Version{}, prefixes: map[string]string{}}
}

// buildDirs builds the LIST index if it is not built yet. Callers hold the view's lock, read
// or write, so secrets and values do not change meanwhile.
func (ms *mountState) buildDirs() {
	if ms.dirsBuilt.Load() {
		return
	}
	ms.dirsMu.Lock()
	defer ms.dirsMu.Unlock()
	if ms.dirsBuilt.Load() {
		return
	}
	ms.dirs = make(map[string]*dir)
	for p := range ms.secrets {
		ms.addToIndex(p)
	}
	for p := range ms.values {
		ms.addToIndex(p)
	}
	ms.dirsBuilt.Store(true)
}

// View is the KV view.
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*mountState // by mount UUID
	disabled map[string]bool        // UUIDs of disabled mounts: late events for them are ignored
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*mountState{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "kv" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case VersionWritten:
		var p VersionWrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.versionWritten(&p)
	case VersionsDeleted, VersionsUndeleted, VersionsDestroyed:
		var p VersionsPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		ms := v.mount(p.Mount)
		if ms == nil {
			return nil
		}
		s := ms.secrets[p.Path]
		if s == nil {
			return nil
		}
		for _, n := range p.Versions {
			i, ok := s.find(n)
			if !ok || s.versions[i].destroyed {
				continue
			}
			ver := &s.versions[i]
			switch rec.Type {
			case VersionsDeleted, VersionsUndeleted:
				ver.setDeletion(p.Time)
			case VersionsDestroyed:
				ver.destroy()
			}
		}
	case MetadataWritten:
		var p MetadataWrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		ms := v.mount(p.Mount)
		if ms == nil {
			return nil
		}
		s := ms.secrets[p.Path]
		if s == nil {
			s = &secret{}
			s.setCreated(p.Created)
			s.setUpdated(p.Created)
			ms.secrets[p.Path] = s
			ms.index(p.Path)
		}
		s.maxVersions, s.cas, s.dva = p.MaxVersions, p.CASRequired, p.DeleteVersionAfter
		s.custom = nil
		if len(p.CustomMetadata) > 0 {
			s.custom = p.CustomMetadata
		}
	case MetadataDeleted, V1Deleted:
		var p PathPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		ms := v.mount(p.Mount)
		if ms == nil {
			return nil
		}
		if rec.Type == MetadataDeleted {
			delete(ms.secrets, p.Path)
		} else {
			delete(ms.values, p.Path)
		}
		ms.unindex(p.Path)
	case ConfigWritten:
		var p ConfigWrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if ms := v.mount(p.Mount); ms != nil {
			c := p.Config
			ms.config = &c
		}
	case V1Written:
		var p V1WrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		ms := v.mount(p.Mount)
		if ms == nil {
			return nil
		}
		ms.values[p.Path] = &Version{Created: p.Time.UTC(), KeyID: p.KeyID, Sealed: p.Sealed}
		ms.index(p.Path) // idempotent
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		projections.DisableMount(v.mounts, v.disabled, p.UUID)
	}
	return nil
}

// mount returns the state of a mount, creating it, or nil for a disabled mount. Lock held.
func (v *View) mount(uuid string) *mountState {
	return projections.MountState(v.mounts, v.disabled, uuid, newMountState)
}

// Prepare implements projections.Preparer: it decodes a version write — the bulk of any KV
// log — so replay can decode on one core while it applies on another.
func (v *View) Prepare(rec ledger.Record) (any, error) {
	if rec.Type != VersionWritten {
		return nil, nil
	}
	var p VersionWrittenPayload
	if err := projections.Decode(rec, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ApplyPrepared implements projections.Preparer.
func (v *View) ApplyPrepared(rec ledger.Record, prepared any) error {
	if p, ok := prepared.(*VersionWrittenPayload); ok && rec.Type == VersionWritten {
		v.versionWritten(p)
		return nil
	}
	return v.Apply(rec)
}

func (v *View) versionWritten(p *VersionWrittenPayload) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ms := v.mount(p.Mount)
	if ms == nil {
		return
	}
	s := ms.secrets[p.Path]
	if s == nil {
		s = &secret{}
		s.setCreated(p.Created)
		ms.secrets[p.Path] = s
		ms.index(p.Path)
	}
	if _, exists := s.find(p.Version); exists || p.Version <= s.current {
		// Two writers decided the same version (they cannot on one node: the pipeline
		// serialises a path's writes). The first one in the log wins, deterministically.
		return
	}
	// p.Version is above every stored version: appending keeps the order.
	s.versions = append(s.versions, ms.newNumbered(p.Version, Version{Created: p.Created, Deletion: p.Deletion, KeyID: p.KeyID, Sealed: p.Sealed}))
	s.current = p.Version
	s.setUpdated(p.Created)
	if len(p.Trim) > 0 {
		// DeleteFunc zeroes the tail, so no trimmed ciphertext stays reachable from the array.
		s.versions = slices.DeleteFunc(s.versions, func(v numbered) bool { return slices.Contains(p.Trim, v.n) })
	}
	s.oldest = max(s.oldest, p.Oldest)
}

var _ projections.Preparer = (*View)(nil)

// split cuts a path into its directory ("" or ending in "/") and its last element.
func split(p string) (string, string) {
	i := strings.LastIndexByte(p, '/')
	return p[:i+1], p[i+1:]
}

// index adds p to the LIST index, creating its folders up the tree as needed.
func (ms *mountState) index(p string) {
	if ms.dirsBuilt.Load() {
		ms.addToIndex(p)
	}
}

func (ms *mountState) addToIndex(p string) {
	d, name := split(p)
	if name == "" {
		return // a path ending in "/" has no name to list
	}
	for {
		dd := ms.dirs[d]
		fresh := dd == nil
		if fresh {
			dd = &dir{children: map[string]struct{}{}}
			ms.dirs[d] = dd
		}
		if _, ok := dd.children[name]; ok {
			return
		}
		dd.children[name] = struct{}{}
		dd.sorted.Store(nil)
		if !fresh || d == "" {
			return
		}
		// A new directory "a/b/" is the new entry "b/" of "a/".
		parent, n := split(d[:len(d)-1])
		d, name = parent, n+"/"
	}
}

// unindex removes p from the LIST index unless the mount still holds a v1 or v2 entry there,
// and removes the folders it leaves empty.
func (ms *mountState) unindex(p string) {
	if !ms.dirsBuilt.Load() {
		return
	}
	if _, ok := ms.secrets[p]; ok {
		return
	}
	if _, ok := ms.values[p]; ok {
		return
	}
	d, name := split(p)
	if name == "" {
		return
	}
	for {
		dd := ms.dirs[d]
		if dd == nil {
			return
		}
		if _, ok := dd.children[name]; !ok {
			return
		}
		delete(dd.children, name)
		dd.sorted.Store(nil)
		if len(dd.children) > 0 || d == "" {
			return
		}
		delete(ms.dirs, d)
		parent, n := split(d[:len(d)-1])
		d, name = parent, n+"/"
	}
}

// Secret returns a copy of the KV v2 secret at path.
func (v *View) Secret(mountUUID, path string) (Secret, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.secretLocked(mountUUID, path)
	if s == nil {
		return Secret{}, false
	}
	return s.public(), true
}

// secretLocked is the KV v2 secret at path, or nil; v.mu is held.
func (v *View) secretLocked(mountUUID, path string) *secret {
	if ms := v.mounts[mountUUID]; ms != nil {
		return ms.secrets[path]
	}
	return nil
}

// SecretVersion returns a secret's metadata (Versions left nil) and its version n (0: the
// current one), without copying every version as Secret does: what a read needs. ok is false
// when the path or the version does not exist.
func (v *View) SecretVersion(mountUUID, path string, n uint64) (_ Secret, _ uint64, _ Version, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.secretLocked(mountUUID, path)
	if s == nil {
		return Secret{}, 0, Version{}, false
	}
	c := s.head()
	if n == 0 {
		n = s.current
	}
	i, found := s.find(n)
	if !found {
		return c, 0, Version{}, false
	}
	return c, n, s.versions[i].version(), true
}

// Has reports whether a KV v2 secret exists at path, without copying it.
func (v *View) Has(mountUUID, path string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.secretLocked(mountUUID, path) != nil
}

// DropLive removes from ids, in place, those that path still uses — the keys of its KV v2
// versions and of its KV v1 value — and returns the rest: what shredding may destroy. It
// builds no id strings for the few keys of an overwrite's trim; a destroy of many versions
// against many live ones goes through a set.
func (v *View) DropLive(mountUUID, path string, ids []string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil || len(ids) == 0 {
		return ids
	}
	s, val := ms.secrets[path], ms.values[path]
	var versions []numbered
	if s != nil {
		versions = s.versions
	}
	if len(ids)*len(versions) > 1024 {
		live := make(map[string]struct{}, len(versions)+1)
		for i := range versions {
			live[versions[i].key().String()] = struct{}{}
		}
		if val != nil {
			live[val.KeyID] = struct{}{}
		}
		return slices.DeleteFunc(ids, func(id string) bool { _, ok := live[id]; return ok })
	}
	return slices.DeleteFunc(ids, func(id string) bool {
		for i := range versions {
			if versions[i].key().is(id) {
				return true
			}
		}
		return val != nil && val.KeyID == id
	})
}

// Value returns the KV v1 value at path.
func (v *View) Value(mountUUID, path string) (Version, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil {
		return Version{}, false
	}
	val := ms.values[path]
	if val == nil {
		return Version{}, false
	}
	return *val, true
}

// Config returns a mount's configuration (zero values when never written).
func (v *View) Config(mountUUID string) Config {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ms := v.mounts[mountUUID]; ms != nil && ms.config != nil {
		return *ms.config
	}
	return Config{}
}

// List returns the immediate children of prefix in a mount, as Vault lists them: sorted, with
// folders carrying a trailing "/". A prefix without a trailing slash is taken as a folder
// ("a" lists "a/"). Nil when there is nothing under prefix.
func (v *View) List(mountUUID, prefix string) []string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	ms := v.mounts[mountUUID]
	if ms == nil {
		return nil
	}
	ms.buildDirs()
	d := ms.dirs[prefix]
	if d == nil || len(d.children) == 0 {
		return nil
	}
	sorted := d.sorted.Load()
	if sorted == nil {
		// Computed under the read lock; writers, which invalidate it, hold the write lock.
		s := make([]string, 0, len(d.children))
		for name := range d.children {
			s = append(s, name)
		}
		sort.Strings(s)
		d.sorted.Store(&s)
		sorted = &s
	}
	return append([]string(nil), (*sorted)...)
}

// KeyIDs returns the data keys the view still references in a mount ("" for every mount),
// sorted: every key not listed is unreachable and may be shredded (see kv.Reconcile).
func (v *View) KeyIDs(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for uuid, ms := range v.mounts {
		if mountUUID != "" && uuid != mountUUID {
			continue
		}
		for _, s := range ms.secrets {
			for i := range s.versions {
				if x := &s.versions[i]; x.keyPre != "" {
					out = append(out, x.key().String())
				}
			}
		}
		for _, val := range ms.values {
			if val.KeyID != "" {
				out = append(out, val.KeyID)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Keys calls yield with every name the view holds as a key — mount UUIDs, paths and custom
// metadata keys — as the keys of its format 1 (JSON) snapshot were; never a value.
func (v *View) Keys(yield func(string)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for uuid, ms := range v.mounts {
		yield(uuid)
		for p, s := range ms.secrets {
			yield(p)
			for k := range s.custom {
				yield(k)
			}
		}
		for p := range ms.values {
			yield(p)
		}
	}
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
