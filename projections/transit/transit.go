// Package transit is the view of the transit secrets engine: per mount, the named keys with
// their configuration and every live version's key material and creation time.
//
// Key material exists in two places only: inside the event payloads that the log seals under
// the keyring, and here, in memory (and in the sealed snapshots of this view). The engine
// generates material when it decides an event, so Apply only copies what the event carries and
// stays deterministic. Trimmed versions and deleted keys are dropped from the view, so no later
// snapshot holds them; the events that created them remain in the log, sealed.
//
// The view forgets a mount entirely when it is disabled, and reports keys whose
// auto_rotate_period has elapsed (Due) so the active node can rotate them.
package transit

import (
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Subjects are ledger.SubjectFor("transit", mountUUID, name).
const (
	KeyCreated       = "transit.key.created.v1"        // keys/:name, or an upsert by encrypt
	KeyRotated       = "transit.key.rotated.v1"        // keys/:name/rotate, or auto-rotation
	KeyConfigUpdated = "transit.key.config.updated.v1" // keys/:name/config
	KeyTrimmed       = "transit.key.trimmed.v1"        // keys/:name/trim
	KeyDeleted       = "transit.key.deleted.v1"        // DELETE keys/:name
	KeyRestored      = "transit.key.restored.v1"       // restore[/:name]
)

// Config holds a key's tunables, set at creation and changed by keys/:name/config. Payloads
// carry absolute values, never deltas.
type Config struct {
	MinDecryptionVersion int           `json:"min_decryption_version"`
	MinEncryptionVersion int           `json:"min_encryption_version"`
	DeletionAllowed      bool          `json:"deletion_allowed"`
	Exportable           bool          `json:"exportable"`
	AllowPlaintextBackup bool          `json:"allow_plaintext_backup"`
	AutoRotatePeriod     time.Duration `json:"auto_rotate_period"`
}

// Version is one generation of a key. Key is the secret material in the engine's encoding for
// the key type (raw bytes for symmetric and HMAC keys, the seed for ed25519, the scalar for
// ECDSA, PKCS #1 DER for RSA); HMACKey backs the hmac endpoint for keys of every type.
// PublicKey is the public half, as Vault formats it, for asymmetric types.
type Version struct {
	Created   time.Time `json:"created"`
	Key       []byte    `json:"key"`
	HMACKey   []byte    `json:"hmac_key,omitempty"`
	PublicKey string    `json:"public_key,omitempty"`
}

// Info records when a key was restored and at which version.
type Info struct {
	Time    time.Time `json:"time"`
	Version int       `json:"version"`
}

// Key is a named transit key. Versions holds the versions from MinAvailableVersion (or 1) to
// LatestVersion. Values returned by the view share their Versions map and byte slices with it:
// callers must not modify them (the view never does either; it replaces them).
type Key struct {
	Name                 string          `json:"name"`
	Type                 string          `json:"type"`
	Derived              bool            `json:"derived"`
	ConvergentEncryption bool            `json:"convergent_encryption"`
	KeySize              int             `json:"key_size,omitempty"` // hmac keys only, in bytes
	Config               Config          `json:"config"`
	MinAvailableVersion  int             `json:"min_available_version"`
	LatestVersion        int             `json:"latest_version"`
	Versions             map[int]Version `json:"versions"`
	RestoreInfo          *Info           `json:"restore_info,omitempty"`
}

// KeyRef names a key: its mount's UUID and its name.
type KeyRef struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

// Payloads. Every payload names its mount by UUID and the key by name.

// KeyPayload creates (KeyCreated) or replaces (KeyRestored) a whole key, material included.
type KeyPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
	Key   Key    `json:"key"`
}

// RotatedPayload adds version Version, which must be the key's latest version plus one.
type RotatedPayload struct {
	Mount    string  `json:"mount"`
	Name     string  `json:"name"`
	Version  int     `json:"version"`
	Material Version `json:"material"`
}

// ConfigPayload replaces a key's tunables.
type ConfigPayload struct {
	Mount  string `json:"mount"`
	Name   string `json:"name"`
	Config Config `json:"config"`
}

// TrimmedPayload drops every version below MinAvailableVersion.
type TrimmedPayload struct {
	Mount               string `json:"mount"`
	Name                string `json:"name"`
	MinAvailableVersion int    `json:"min_available_version"`
}

// DeletedPayload removes a key.
type DeletedPayload struct {
	Mount string `json:"mount"`
	Name  string `json:"name"`
}

// View is the transit view.
type View struct {
	mu       sync.RWMutex
	mounts   map[string]map[string]*Key // mount UUID → name → key (replaced, never edited)
	disabled map[string]bool            // UUIDs of disabled mounts: late events are ignored
}

// New returns an empty view.
func New() *View {
	return &View{mounts: map[string]map[string]*Key{}, disabled: map[string]bool{}}
}

// Name implements projections.View.
func (v *View) Name() string { return "transit" }

// Apply implements projections.View. A key is never edited in place: each change installs a
// new *Key, so values handed out earlier stay consistent.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case KeyCreated, KeyRestored:
		var p KeyPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		keys := v.mount(p.Mount)
		if keys == nil || p.Name == "" {
			return nil
		}
		if _, exists := keys[p.Name]; exists && rec.Type == KeyCreated {
			// Two upserts decided the same key (on two nodes): the first in the log wins.
			return nil
		}
		k := normalise(p.Key)
		k.Name = p.Name
		keys[p.Name] = &k
	case KeyRotated:
		var p RotatedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		old := v.key(p.Mount, p.Name)
		if old == nil || p.Version != old.LatestVersion+1 {
			// A second rotation decided against the same latest version lost the race.
			return nil
		}
		k := old.clone()
		k.Versions[p.Version] = normaliseVersion(p.Material)
		k.LatestVersion = p.Version
		v.mounts[p.Mount][p.Name] = &k
	case KeyConfigUpdated:
		var p ConfigPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		old := v.key(p.Mount, p.Name)
		if old == nil {
			return nil
		}
		k := *old // Versions is shared: it does not change here
		k.Config = p.Config
		v.mounts[p.Mount][p.Name] = &k
	case KeyTrimmed:
		var p TrimmedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		old := v.key(p.Mount, p.Name)
		if old == nil || p.MinAvailableVersion <= old.MinAvailableVersion {
			return nil
		}
		k := old.clone()
		for n := range k.Versions {
			if n < p.MinAvailableVersion {
				delete(k.Versions, n)
			}
		}
		k.MinAvailableVersion = p.MinAvailableVersion
		v.mounts[p.Mount][p.Name] = &k
	case KeyDeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if keys := v.mounts[p.Mount]; keys != nil {
			delete(keys, p.Name)
			if len(keys) == 0 {
				delete(v.mounts, p.Mount)
			}
		}
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

// mount returns a mount's keys, creating the map, or nil for a disabled mount. Lock held.
func (v *View) mount(uuid string) map[string]*Key {
	if v.disabled[uuid] {
		return nil
	}
	keys := v.mounts[uuid]
	if keys == nil {
		keys = map[string]*Key{}
		v.mounts[uuid] = keys
	}
	return keys
}

// key returns a key or nil. Lock held.
func (v *View) key(mountUUID, name string) *Key {
	if keys := v.mounts[mountUUID]; keys != nil {
		return keys[name]
	}
	return nil
}

func (k *Key) clone() Key {
	c := *k
	c.Versions = maps.Clone(k.Versions)
	if c.Versions == nil {
		c.Versions = map[int]Version{}
	}
	return c
}

// normalise makes times UTC and maps non-nil, so a key decoded from a payload and the same key
// decoded from a snapshot are equal (and digest equally).
func normalise(k Key) Key {
	vs := make(map[int]Version, len(k.Versions))
	for n, ver := range k.Versions {
		vs[n] = normaliseVersion(ver)
	}
	k.Versions = vs
	if k.RestoreInfo != nil {
		ri := *k.RestoreInfo
		ri.Time = ri.Time.UTC()
		k.RestoreInfo = &ri
	}
	return k
}

func normaliseVersion(ver Version) Version {
	ver.Created = ver.Created.UTC()
	return ver
}

// Get returns the key name of a mount. See Key about sharing.
func (v *View) Get(mountUUID, name string) (Key, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k := v.key(mountUUID, name)
	if k == nil {
		return Key{}, false
	}
	return *k, true
}

// List returns the names of a mount's keys, sorted; nil when there are none.
func (v *View) List(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	keys := v.mounts[mountUUID]
	if len(keys) == 0 {
		return nil
	}
	out := make([]string, 0, len(keys))
	for name := range keys {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Due returns the keys, of every mount, whose auto_rotate_period has elapsed at now since their
// latest version was created, sorted by mount and name. Only the active node acts on it (see
// the engine's RotateDue); replaying the log never rotates anything.
func (v *View) Due(now time.Time) []KeyRef {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []KeyRef
	for uuid, keys := range v.mounts {
		for name, k := range keys {
			if k.Config.AutoRotatePeriod <= 0 {
				continue
			}
			latest, ok := k.Versions[k.LatestVersion]
			if !ok {
				continue
			}
			if !now.Before(latest.Created.Add(k.Config.AutoRotatePeriod)) {
				out = append(out, KeyRef{Mount: uuid, Name: name})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Mount != out[j].Mount {
			return out[i].Mount < out[j].Mount
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Snapshot implements projections.View. It holds key material (the runner's snapshots are
// sealed); trimmed versions and deleted keys are not in it. Maps encode with sorted keys, so
// equal states encode equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	mounts := make(map[string]map[string]*Key, len(v.mounts))
	for uuid, keys := range v.mounts {
		if len(keys) > 0 {
			mounts[uuid] = keys
		}
	}
	return projections.EncodeMounts(1, mounts, v.disabled)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	snap, disabled, err := projections.DecodeMounts[map[string]*Key]("transit", 1, data)
	if err != nil {
		return err
	}
	mounts := make(map[string]map[string]*Key, len(snap))
	for uuid, keys := range snap {
		m := make(map[string]*Key, len(keys))
		for name, k := range keys {
			if k == nil {
				continue
			}
			nk := normalise(*k)
			nk.Name = name
			m[name] = &nk
		}
		if len(m) > 0 {
			mounts[uuid] = m
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
