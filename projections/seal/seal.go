// Package seal is the seal-state view: whether the log was initialised, the unseal share
// parameters, and the keyring wrapped under the root key. It is built from raw events only, so
// a sealed node can build it without any key.
package seal

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types.
const (
	Initialized    = "seal.initialized.v1"
	KeyringRotated = "keyring.rotated.v1"
	// SnapshotRestored replaces the whole seal state with a snapshot's: from its batch on, the
	// node's state is the snapshot (stored in the LEDGER_SNAPSHOTS object store) plus the events
	// after that batch. Everything before the batch no longer counts.
	SnapshotRestored = "snapshot.restored.v1"
	// Rekeyed puts a new unseal-key split in force (sys/rekey): the same keyring, wrapped under
	// a new root key, and the new share parameters. From its batch on the old shares open
	// nothing.
	Rekeyed = "seal.rekeyed.v1"
	// RekeyBackupDeleted drops the PGP-encrypted backup of the last rekey's keys.
	RekeyBackupDeleted = "seal.rekey_backup.deleted.v1"
	// Migrated replaces the seal configuration (type, wrapped root key, share counts, recovery
	// keys, and the keyring when it was rewrapped): `operator unseal -migrate` finished.
	Migrated = "seal.migrated.v1"
	// RecoveryRekeyed installs a new recovery key (share counts, check blob, escrow).
	RecoveryRekeyed = "seal.recovery.rekeyed.v1"
	// EscrowUsed records that the recovery-key quorum unsealed the node instead of the
	// auto-seal (the external key was unusable). It changes nothing in the state; it is there
	// for the audit trail.
	EscrowUsed = "seal.escrow.used.v1"
)

// RekeyedPayload is the payload of Rekeyed. Nothing in it is secret: the keyring is wrapped
// under the new root key, and the backup (PGP ciphertexts of the new shares) is sealed under
// the keyring itself, so only an unsealed node can hand it out.
type RekeyedPayload struct {
	Shares    int    `json:"shares"`
	Threshold int    `json:"threshold"`
	Keyring   []byte `json:"keyring"`
	// Term is the keyring term that was wrapped; a rekey that raced a rotation (an older term)
	// is ignored, and the node that appended it tells its caller so.
	Term   uint32    `json:"term"`
	Nonce  string    `json:"nonce"`
	Time   time.Time `json:"time"`
	Backup []byte    `json:"backup,omitempty"`
}

// Recovery describes the recovery keys of an auto-sealed log. Nothing in it is secret: Check
// and Escrow are sealed under the recovery key, which exists only as shares held by people.
type Recovery struct {
	Shares    int `json:"shares"`
	Threshold int `json:"threshold"`
	// Check is a fixed text sealed under the recovery key: opening it proves a set of
	// recovery shares is right without touching the root key.
	Check []byte `json:"check"`
	// Escrow, when set (opt-in at init), is the root key sealed under the recovery key, so the
	// recovery quorum can unseal when the external key is gone.
	Escrow []byte `json:"escrow,omitempty"`
}

// AutoSeal is the part of the state an auto-seal adds: which seal wraps the root key, and
// the wrapped root key. Empty Type means the Shamir seal.
type AutoSeal struct {
	Type        string    `json:"type,omitempty"`
	KeyID       string    `json:"key_id,omitempty"`
	WrappedRoot []byte    `json:"wrapped_root,omitempty"`
	Recovery    *Recovery `json:"recovery,omitempty"`
}

// MigratedPayload is the payload of Migrated: the whole new seal configuration.
type MigratedPayload struct {
	AutoSeal
	From      string `json:"from"`
	Shares    int    `json:"shares"`
	Threshold int    `json:"threshold"`
	// Keyring is set when the migration rewrapped the keyring under a new root key (to Shamir).
	Keyring []byte    `json:"keyring,omitempty"`
	Time    time.Time `json:"time"`
}

// RecoveryRekeyedPayload is the payload of RecoveryRekeyed.
type RecoveryRekeyedPayload struct {
	Recovery Recovery `json:"recovery"`
}

// InitializedPayload is the payload of Initialized. Nothing in it is secret: the keyring is
// wrapped under the root key, which exists only as shares held by people.
type InitializedPayload struct {
	Shares    int       `json:"shares"`
	Threshold int       `json:"threshold"`
	Keyring   []byte    `json:"keyring"`
	ClusterID string    `json:"cluster_id"`
	Time      time.Time `json:"time"`
	AutoSeal
}

// RotatedPayload is the payload of KeyringRotated: the whole new keyring, wrapped.
type RotatedPayload struct {
	Term    uint32 `json:"term"`
	Keyring []byte `json:"keyring"`
	// Rekeys is the number of rekeys of the root key it was wrapped under (State.Rekeys): a
	// rotation wrapped under a root key a rekey has since replaced is ignored, so it cannot
	// bring the old unseal keys back.
	Rekeys int `json:"rekeys,omitempty"`
}

// RestoredPayload is the payload of SnapshotRestored: the snapshot's seal configuration (its
// keyring wrapped under its own root key, so the snapshot's unseal keys open the node) and
// where the snapshot is stored. Nothing in it is secret.
type RestoredPayload struct {
	Shares    int       `json:"shares"`
	Threshold int       `json:"threshold"`
	Keyring   []byte    `json:"keyring"`
	Term      uint32    `json:"term"`
	ClusterID string    `json:"cluster_id"`
	InitTime  time.Time `json:"init_time"`
	// Object names the snapshot in the LEDGER_SNAPSHOTS object store; SHA256 is the hex digest
	// of the file as uploaded.
	Object string `json:"object"`
	SHA256 string `json:"sha256"`
	// SnapshotSeq and SnapshotHash are the position the snapshot was taken at, in the log of
	// the cluster that took it (informative: this log continues from the restore's batch).
	SnapshotSeq  uint64    `json:"snapshot_seq"`
	SnapshotHash string    `json:"snapshot_hash"`
	SnapshotTime time.Time `json:"snapshot_time"`
	// PreviousClusterID is the cluster this log belonged to before ("" when uninitialised).
	PreviousClusterID string `json:"previous_cluster_id,omitempty"`
	Forced            bool   `json:"forced,omitempty"`
	// AutoSeal is the snapshot's auto-seal (empty for Shamir): the restored node unseals with
	// the seal that wrapped the snapshot's root key.
	AutoSeal
}

// Restore is where the node's state starts when a snapshot was restored into its log.
type Restore struct {
	Seq          uint64    `json:"seq"` // the batch holding the SnapshotRestored event
	Object       string    `json:"object"`
	SHA256       string    `json:"sha256"`
	SnapshotSeq  uint64    `json:"snapshot_seq"`
	SnapshotHash string    `json:"snapshot_hash"`
	SnapshotTime time.Time `json:"snapshot_time"`
}

// State is the seal configuration.
type State struct {
	Initialized bool      `json:"initialized"`
	Shares      int       `json:"shares"`
	Threshold   int       `json:"threshold"`
	Keyring     []byte    `json:"keyring"`
	Term        uint32    `json:"term"`
	ClusterID   string    `json:"cluster_id"`
	InitTime    time.Time `json:"init_time"`
	// Restore is set once a snapshot was restored into the log: the latest restore.
	Restore *Restore `json:"restore,omitempty"`
	// Rekeys counts the rekeys in force; RekeyBackup is the last one's sealed backup, if any.
	Rekeys      int    `json:"rekeys,omitempty"`
	RekeyBackup []byte `json:"rekey_backup,omitempty"`
	AutoSeal
}

// SealType is the seal the log records: "shamir" or an auto-seal type.
func (s State) SealType() string {
	if s.Type == "" {
		return "shamir"
	}
	return s.Type
}

// View holds the seal State.
type View struct {
	mu sync.RWMutex
	s  State
}

// New returns an empty (uninitialised) view.
func New() *View { return &View{} }

// Name implements projections.View.
func (v *View) Name() string { return "seal" }

// State returns a copy of the current state.
func (v *View) State() State {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.s
	s.Keyring = append([]byte(nil), v.s.Keyring...)
	s.RekeyBackup = append([]byte(nil), v.s.RekeyBackup...)
	s.WrappedRoot = append([]byte(nil), v.s.WrappedRoot...)
	if v.s.Recovery != nil {
		r := *v.s.Recovery
		s.Recovery = &r
	}
	if v.s.Restore != nil {
		r := *v.s.Restore
		s.Restore = &r
	}
	return s
}

// Initialized reports whether the log holds an init, without copying the state: every request
// asks (State copies the wrapped keyring and backups).
func (v *View) Initialized() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.s.Initialized
}

// ClusterID is the cluster's id, empty before init; it copies nothing else.
func (v *View) ClusterID() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.s.ClusterID
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Initialized:
		var p InitializedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.s.Initialized {
			return nil // a second init lost the race; the first one stands
		}
		v.s = State{Initialized: true, Shares: p.Shares, Threshold: p.Threshold, Keyring: p.Keyring,
			Term: 1, ClusterID: p.ClusterID, InitTime: p.Time, AutoSeal: p.AutoSeal}
	case KeyringRotated:
		var p RotatedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if p.Term > v.s.Term && p.Rekeys == v.s.Rekeys {
			v.s.Keyring, v.s.Term = p.Keyring, p.Term
		}
	case Rekeyed:
		var p RekeyedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		if len(p.Keyring) == 0 || p.Threshold < 1 || p.Shares < p.Threshold {
			return fmt.Errorf("decode %s: incomplete payload", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.s.Initialized || p.Term != v.s.Term {
			return nil // raced a rotation (or a restore): the keyring it wrapped is not current
		}
		v.s.Shares, v.s.Threshold, v.s.Keyring = p.Shares, p.Threshold, p.Keyring
		v.s.Rekeys++
		v.s.RekeyBackup = p.Backup
	case RekeyBackupDeleted:
		v.mu.Lock()
		defer v.mu.Unlock()
		v.s.RekeyBackup = nil
	case Migrated:
		var p MigratedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.s.Initialized || p.From != v.s.SealType() {
			return nil // a second migration of the same source lost the race
		}
		v.s.AutoSeal = p.AutoSeal
		v.s.Shares, v.s.Threshold = p.Shares, p.Threshold
		if len(p.Keyring) > 0 {
			v.s.Keyring = p.Keyring
		}
	case RecoveryRekeyed:
		var p RecoveryRekeyedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.s.Recovery != nil {
			r := p.Recovery
			v.s.Recovery = &r
		}
	case SnapshotRestored:
		var p RestoredPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		if p.Object == "" || len(p.Keyring) == 0 || p.Threshold < 1 || p.Term < 1 {
			return fmt.Errorf("decode %s: incomplete payload", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.s = State{Initialized: true, Shares: p.Shares, Threshold: p.Threshold, Keyring: p.Keyring,
			Term: p.Term, ClusterID: p.ClusterID, InitTime: p.InitTime, Restore: &Restore{
				Seq: rec.Pos.Seq, Object: p.Object, SHA256: p.SHA256, SnapshotSeq: p.SnapshotSeq,
				SnapshotHash: p.SnapshotHash, SnapshotTime: p.SnapshotTime}, AutoSeal: p.AutoSeal}
	}
	return nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(v.s)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore seal view: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.s = s
	return nil
}
