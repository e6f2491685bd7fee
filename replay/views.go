package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/seal"
)

// ErrDigest: a view restored from a snapshot does not have the digest the snapshot recorded
// (the view's format changed between the build that wrote the snapshot and this one).
var ErrDigest = errors.New("restored view does not match its recorded digest")

// Cut is every view of a runner at one position.
type Cut struct {
	Seq   uint64
	Hash  [32]byte
	Views []Part
}

// Capture cuts every view of r at one position, between two batches: each view's digest and,
// with data, its serialised state. The runner waits meanwhile; sealing and writing happen
// after, on the returned bytes.
func Capture(r *projections.Runner, data bool) (Cut, error) {
	var c Cut
	err := r.Hold(func(seq uint64, hash [32]byte) error {
		c.Seq, c.Hash = seq, hash
		for _, v := range r.Views() {
			p := Part{Name: v.Name(), Digest: v.Digest()}
			if data {
				b, err := v.Snapshot()
				if err != nil {
					return fmt.Errorf("snapshot view %s: %w", v.Name(), err)
				}
				p.Data = b
			}
			c.Views = append(c.Views, p)
		}
		return nil
	})
	return c, err
}

// RestoreOptions tune Snapshot.Restore.
type RestoreOptions struct {
	// AllowMissing accepts a snapshot that lacks some of views (views this build added since
	// it was taken): they start empty and are returned as missing.
	AllowMissing bool
	// SkipDigests skips comparing each restored view's digest with the one recorded at
	// capture. The sections are authenticated, so this guards only against a view whose
	// Restore loses state; computing a digest serialises the view again, which for large views
	// costs a third of the load. Unseal skips it; replay verify compares snapshot + tail with
	// the live views anyway.
	SkipDigests bool
}

// Restore replaces the state of views with the snapshot's and, unless o.SkipDigests, checks
// each against the digest recorded at capture. A view the snapshot lacks is an error unless
// o.AllowMissing.
func (s *Snapshot) Restore(views []projections.View, o RestoreOptions) (missing []string, err error) {
	parts := make([]Part, len(views))
	have := make([]bool, len(views))
	for i, v := range views {
		if parts[i], have[i] = s.View(v.Name()); !have[i] {
			if !o.AllowMissing {
				return nil, fmt.Errorf("snapshot lacks view %s", v.Name())
			}
			missing = append(missing, v.Name())
		}
	}
	errs := make([]error, len(views))
	var wg sync.WaitGroup
	for i, v := range views {
		if !have[i] {
			continue
		}
		p := parts[i]
		// Views are independent: restore them side by side.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.Restore(p.Data); err != nil {
				errs[i] = fmt.Errorf("restore view %s: %w", v.Name(), err)
				return
			}
			if !o.SkipDigests && v.Digest() != p.Digest {
				errs[i] = fmt.Errorf("view %s: %w", v.Name(), ErrDigest)
			}
		}()
	}
	wg.Wait()
	return missing, errors.Join(errs...)
}

// BatchHash is the hash of the log's batch at seq, as the Runner chains batches.
func BatchHash(ctx context.Context, js jetstream.JetStream, seq uint64) ([32]byte, error) {
	st, err := js.Stream(ctx, ledger.StreamName)
	if err != nil {
		return [32]byte{}, fmt.Errorf("stream %s: %w", ledger.StreamName, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return [32]byte{}, fmt.Errorf("read batch %d: %w", seq, err)
	}
	return sha256.Sum256(m.Data), nil
}

// Base is where views were loaded from: a snapshot whose state they now hold, and the log
// position (this log's) the runner continues after.
type Base struct {
	Name     string
	Seq      uint64
	Hash     [32]byte
	Restored bool // the snapshot an operator restored, not an automatic one
	Snapshot *Snapshot
	Header   Header
	// Missing lists views the snapshot lacked; they start empty.
	Missing []string
	// Took is where the load's time went, for the unseal log.
	Took LoadTimes

	// later holds the parts of BaseOptions.Later read with the others; file, a checkpoint
	// whose sections for them are still unread (LaterParts, Close).
	later map[string]Part
	file  *File
	used  bool // LaterParts was called, or Close
}

// LoadTimes splits the load of an automatic snapshot: listing the bucket, reading and checking
// the object's early sections, opening them under the keyring, restoring the views.
type LoadTimes struct {
	List, Read, Open, Restore time.Duration
	Bytes                     int64 // the sections read
	Local                     bool  // read from this node's copy (Store.UseLocal), not the bucket
}

// LaterParts returns the parts of views (BaseOptions.Later) in their order, reading the ones
// the checkpoint left unread (File.Rest: checked and opened under kr). A view the snapshot
// lacks gets a Part without data: it starts empty. Call it once.
func (b *Base) LaterParts(kr *ledger.Keyring, views []projections.View) ([]Part, error) {
	if b.used {
		return nil, errors.New("snapshot: the deferred views' parts were already taken, or given up")
	}
	b.used = true
	var rest []Part
	if f := b.file; f != nil {
		b.file = nil
		var err error
		if rest, err = f.Rest(kr); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", b.Name, err)
		}
	}
	out := make([]Part, len(views))
	for i, v := range views {
		if p, ok := b.later[v.Name()]; ok {
			out[i] = p
		}
		for _, p := range rest {
			if p.Name == v.Name() {
				out[i] = p
			}
		}
	}
	b.later = nil
	return out, nil
}

// Close gives up what LaterParts would have read: the checkpoint's object, kept open until
// then. A nil Base, or one with nothing unread, is fine.
func (b *Base) Close() {
	if b == nil {
		return
	}
	b.used = true
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
}

// BaseOptions tune LoadBase.
type BaseOptions struct {
	// SkipAuto ignores automatic snapshots: views are rebuilt from genesis, or from the
	// restored snapshot when the log holds a restore (replay verify, replay rebuild).
	SkipAuto bool
	Logger   *slog.Logger
	// Later are views (among those given) LoadBase leaves alone: the caller restores them
	// after the others (projections.Runner.Defer) from Base.LaterParts. An automatic
	// snapshot whose last sections are theirs is read only up to them: the rest is read by
	// LaterParts, and until then (or Close) the object stays open.
	Later []projections.View
}

// LoadBase restores views from the newest usable snapshot and says where the runner goes on:
// the newest automatic snapshot taken after the log's latest restore (if any) whose cluster,
// position and batch hash match this log and that opens under kr; else the restored snapshot
// itself; else nil — replay from genesis. An automatic snapshot that fails any check is skipped
// with a warning (it only ever saves time); a restored snapshot that fails is an error, since
// the state before it is not in this log. Views are left empty when the result is nil.
func LoadBase(ctx context.Context, js jetstream.JetStream, store *Store, st seal.State, kr *ledger.Keyring, views []projections.View, o BaseOptions) (*Base, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var later func(string) bool
	if len(o.Later) > 0 {
		later = func(name string) bool {
			return slices.ContainsFunc(o.Later, func(v projections.View) bool { return v.Name() == name })
		}
		now := make([]projections.View, 0, len(views))
		for _, v := range views {
			if !slices.Contains(o.Later, v) {
				now = append(now, v)
			}
		}
		views = now
	}
	empty := make([][]byte, len(views))
	for i, v := range views {
		b, err := v.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("view %s: %w", v.Name(), err)
		}
		empty[i] = b
	}
	reset := func() error {
		for i, v := range views {
			if err := v.Restore(empty[i]); err != nil {
				return fmt.Errorf("reset view %s: %w", v.Name(), err)
			}
		}
		return nil
	}
	var minSeq uint64
	if st.Restore != nil {
		minSeq = st.Restore.Seq
	}
	if !o.SkipAuto {
		listed := time.Now()
		auto, err := store.AutoNames(ctx)
		if err != nil {
			// The stream's subjects unreadable: the listing, which asks again while a
			// clustered stream elects its leader.
			auto, err = store.Auto(ctx)
		}
		if err != nil {
			logger.Warn("automatic snapshots unreadable; replaying the log", "err", err)
		}
		for _, in := range auto {
			if in.Seq < minSeq {
				break // taken before the latest restore: another history
			}
			list := time.Since(listed)
			// This node's own copy first (Store.UseLocal): the same bytes, checked the same way.
			b, err := loadAuto(ctx, js, store, in, st, kr, views, later, true)
			if err != nil && !errors.Is(err, errNoLocal) {
				logger.Warn("this node's copy of the checkpoint is unusable; reading the bucket's", "name", in.Name, "err", err)
				store.dropLocal(in.Name)
				if err := reset(); err != nil {
					return nil, err
				}
			}
			if err != nil {
				b, err = loadAuto(ctx, js, store, in, st, kr, views, later, false)
			}
			if err == nil {
				b.Took.List = list
				b.keepLater(o.Later)
				return b, nil
			}
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				continue // a deleted snapshot's tombstone: nothing was restored from it
			}
			logger.Warn("automatic snapshot skipped", "name", in.Name, "err", err)
			if err := reset(); err != nil {
				return nil, err
			}
		}
	}
	if st.Restore == nil {
		return nil, nil
	}
	b, err := loadRestored(ctx, js, store, st, kr, views)
	if err != nil {
		if rerr := reset(); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("restored snapshot %s (restored at seq %d): %w", st.Restore.Object, st.Restore.Seq, err)
	}
	if len(b.Missing) > 0 {
		logger.Warn("restored snapshot lacks views this build has; they start empty", "views", b.Missing)
	}
	b.keepLater(o.Later)
	return b, nil
}

// keepLater keeps the parts of views that were read with the others, for LaterParts.
func (b *Base) keepLater(views []projections.View) {
	if len(views) == 0 || b.Snapshot == nil {
		return
	}
	b.later = map[string]Part{}
	for _, v := range views {
		if p, ok := b.Snapshot.View(v.Name()); ok {
			b.later[v.Name()] = p
		}
	}
}

// errNoLocal: this node has no copy of the checkpoint (loadAuto from local).
var errNoLocal = errors.New("no local copy")

// loadAuto restores views from the automatic snapshot in: from this node's copy of it with
// local (errNoLocal when there is none), else from the bucket. With later, the views it
// reports are not among views, and their sections, if last, are left unread in Base.file.
func loadAuto(ctx context.Context, js jetstream.JetStream, store *Store, in Info, st seal.State, kr *ledger.Keyring, views []projections.View, later func(string) bool, local bool) (_ *Base, err error) {
	took := LoadTimes{Local: local}
	t0 := time.Now()
	var f *File
	switch {
	case local:
		var ok bool
		if f, ok, err = store.decodeLocal(in.Name, later); !ok && err == nil {
			return nil, errNoLocal
		}
	case later != nil:
		f, err = store.DecodeEarly(ctx, in.Name, later)
	default:
		f, err = store.Decode(ctx, in.Name)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	h := f.Header
	if h.ClusterID != st.ClusterID {
		return nil, fmt.Errorf("taken by cluster %s, this is %s", h.ClusterID, st.ClusterID)
	}
	want, _ := h.BatchHash()
	got, err := BatchHash(ctx, js, h.Seq)
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("the log's batch at seq %d is not the one the snapshot was taken at", h.Seq)
	}
	took.Read = time.Since(t0)
	for _, b := range f.files {
		took.Bytes += int64(len(b))
	}
	t0 = time.Now()
	s, err := f.Open(kr)
	if err != nil {
		return nil, err
	}
	took.Open = time.Since(t0)
	t0 = time.Now()
	if _, err := s.Restore(views, RestoreOptions{SkipDigests: true}); err != nil {
		return nil, err
	}
	took.Restore = time.Since(t0)
	b := &Base{Name: in.Name, Seq: h.Seq, Hash: got, Snapshot: s, Header: h, Took: took}
	if f.Unread() != nil {
		b.file = f
	}
	return b, nil
}

func loadRestored(ctx context.Context, js jetstream.JetStream, store *Store, st seal.State, kr *ledger.Keyring, views []projections.View) (*Base, error) {
	f, err := store.Decode(ctx, st.Restore.Object)
	if err != nil {
		return nil, err
	}
	s, err := f.Open(kr)
	if err != nil {
		return nil, err
	}
	missing, err := s.Restore(views, RestoreOptions{AllowMissing: true, SkipDigests: true})
	if err != nil {
		return nil, err
	}
	// The views hold the snapshot's state; this log goes on after the batch of the restore.
	hash, err := BatchHash(ctx, js, st.Restore.Seq)
	if err != nil {
		return nil, err
	}
	return &Base{Name: st.Restore.Object, Seq: st.Restore.Seq, Hash: hash, Restored: true, Snapshot: s,
		Header: f.Header, Missing: missing}, nil
}

// ViewResult compares one view, live against rebuilt.
type ViewResult struct {
	Name    string `json:"name"`
	Live    string `json:"live"`
	Rebuilt string `json:"rebuilt"`
	Match   bool   `json:"match"`
}

// Compare matches views by name; a view on one side only is a mismatch.
func Compare(live, rebuilt []Part) []ViewResult {
	byName := map[string]Part{}
	for _, p := range rebuilt {
		byName[p.Name] = p
	}
	var out []ViewResult
	for _, l := range live {
		r, ok := byName[l.Name]
		res := ViewResult{Name: l.Name, Live: hex.EncodeToString(l.Digest[:])}
		if ok {
			res.Rebuilt, res.Match = hex.EncodeToString(r.Digest[:]), r.Digest == l.Digest
			delete(byName, l.Name)
		}
		out = append(out, res)
	}
	for _, r := range rebuilt {
		if _, ok := byName[r.Name]; ok {
			out = append(out, ViewResult{Name: r.Name, Rebuilt: hex.EncodeToString(r.Digest[:])})
		}
	}
	return out
}

// Digests returns each view's digest, without holding a runner (for views nothing else moves).
func Digests(views []projections.View) []Part {
	out := make([]Part, len(views))
	for i, v := range views {
		out[i] = Part{Name: v.Name(), Digest: v.Digest()}
	}
	return out
}
