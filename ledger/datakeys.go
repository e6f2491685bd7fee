package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Data keys make destruction possible in an immutable log (crypto-shredding). A value that must
// be destroyable on demand (a KV version) is encrypted with its own random 256-bit data key; the
// log carries only that ciphertext and the key's id. Destroying the value = making the data key
// unrecoverable from everything on disk, so the ciphertext left in the log (and in older
// snapshots) opens for no one, not even a holder of the root key. The log still records *that*
// the destruction happened.
//
// # Why a key tree (layout 2)
//
// JetStream's only way to make bytes unreadable is a secure delete, and a secure delete
// rewrites the whole block file holding the message (filestore eraseMsg → atomicOverwriteFile)
// — up to 8 MB for a stream like ours, plus fsync. The first layouts stored sealed data keys
// directly in deletable messages, so each destroy cost a message rewrite *and* a block rewrite:
// ~1.1 MB written per destroy, 66 destroys/s at 16 writers (BenchmarkDataKeysSteadyShred).
//
// Layout 2 keeps everything that must ever be erased in one tiny message:
//
//	root message   (stream LEDGER_DATAKEYS_ROOT, subject ledger.datakeyroot)
//	  └ shelf keys   sealed as one table under the keyring; one shelf per ≤64 groups
//	      └ group keys   each sealed under its shelf key    ┐ stream LEDGER_DATAKEYS,
//	          └ data keys  each sealed under its group key  ┘ subject ledger.datakey.t.wraps
//
// Only the root is ever securely deleted. Its stream is capped at dkRootStreamBytes, which
// makes JetStream use its smallest (32 KB) blocks, so an erase rewrites at most 32 KB however
// many keys exist. Wraps are append-only: a wrap under a key that no root holds any more opens
// for no one, so old wraps need no secure erase (they are deleted lazily, to reclaim space).
//
// Destroying data key K (in group G, shelf S) in one flush:
//  1. G and S are retired. G's other data keys are re-wrapped under the open group, S's other
//     groups under the open shelf (at most 63 + 63 wraps), with the flush's new keys, in one
//     message on the wraps subject (fenced on that subject's last sequence).
//  2. A new root table without S (and with any new shelf) is stored, fenced on the root's
//     last sequence.
//  3. The previous root message is securely deleted. Now S's key is nowhere on disk, so
//     neither are G's key nor K; K is zeroed in memory. Only then is Shred answered.
//
// A crash after 1 leaves the old root in force: the re-wraps are under keys no root holds
// (ignored) or are second wraps of the same keys (harmless), and K still opens — the destroy
// was never acknowledged; the caller's retry or Reconcile finishes it. A crash after 2 leaves
// two roots: Load takes the newer and erases the older. So at every instant each key opens
// through exactly the roots on disk, and an acknowledged destroy leaves no root that reaches K.
//
// Creation keeps group commit: one writer goroutine packs the New calls (and Shred calls) that
// queued meanwhile into one flush: one wraps message (one fsync) for any number of keys, plus a
// root write only when a shelf is opened (every 4,096 keys) or retired.
//
// Writers. The tree is changed by one node at a time — the active node, which (DESIGN §9) is
// the only appender. Fences on both subjects make a second writer fail (and reload) instead of
// forking the tree; other nodes read: Fetch reloads the tree when the stream moved on.
// Messages of the first layouts (subjects ledger.datakey.b.<batch> and ledger.datakey.<id>,
// keys sealed directly under the keyring) are imported into the tree by Load and then erased.
const (
	// DataKeysStream is the stream that holds the wrapped keys (and the first layouts' keys).
	DataKeysStream = "LEDGER_DATAKEYS"
	// DataKeysRootStream holds the root table, the only thing ever securely deleted.
	DataKeysRootStream = "LEDGER_DATAKEYS_ROOT"
	// DataKeySubjectPrefix is the prefix of every subject in DataKeysStream.
	DataKeySubjectPrefix = "ledger.datakey."
	// DataKeySize is the size of a data key (AES-256).
	DataKeySize = 32

	dataKeyMaxID      = 200
	dataKeyWrapsSubj  = DataKeySubjectPrefix + "t.wraps"
	dataKeyRootSubj   = "ledger.datakeyroot"
	dataKeyBatchSubj  = DataKeySubjectPrefix + "b." // first layouts
	dataKeyBatchKeys  = 4096
	dataKeyMsgBytes   = 512 << 10
	dkRootStreamBytes = 120_000 // ≤ 128,000: JetStream then uses 32 KB blocks (dynBlkSize)
)

// ErrNoDataKey: the data key is not in the stream: it was shredded, or never stored.
var ErrNoDataKey = errors.New("ledger: data key not found")

// errFenced: the subject moved on since this node last looked: another writer.
var errFenced = errors.New("ledger: data key stream changed underneath")

// adDataKey binds a data key sealed under the keyring (first layouts, snapshots) to its id.
func adDataKey(id string) []byte { return []byte("ledger datakey v1\x00" + id) }

// DataKeys is the in-memory index of the data keys, backed by LEDGER_DATAKEYS and
// LEDGER_DATAKEYS_ROOT. It holds every live key in plaintext while unsealed; Close zeroes them.
// Safe for concurrent use.
//
// Lock order: opMu, then treeMu, then mu. The writer goroutine takes treeMu and mu.
type DataKeys struct {
	js         jetstream.JetStream
	stream     jetstream.Stream
	rootStream jetstream.Stream

	// opMu: New, Fetch and ShredMany hold it shared; Load and Close exclusively, so they never
	// swap the tree or stop the writer under an operation.
	opMu       sync.RWMutex
	quit, done chan struct{}
	running    bool
	reqs       chan *dkReq // New and Shred → writer

	// treeMu: the tree's structure (flushes, reloads). mu: t.leaves and the keys in them, for
	// readers (Get, List, Len, Snapshot).
	treeMu  sync.Mutex
	mu      sync.RWMutex
	t       *dkTree
	kr      *Keyring
	pending map[string]struct{} // ids of New calls not yet answered
	// deferred: keys ShredLater took out of service (zeroed, gone from Get) whose erase from
	// disk is due by their time + ShredDeadline. Every flush that shreds takes them all.
	deferred map[string]dkDeferred
	// deferredSince: no deferred key is older (it may be older than the oldest, after a reload
	// dropped some: the next erase then comes early, never late). Kept so that the writer,
	// which asks before every flush, does not walk thousands of deferred keys each time.
	deferredSince time.Time
	kick          chan struct{} // ShredLater → writer: a deadline to watch
	closed        bool
	stats         DataKeyStats
	log           *slog.Logger // warnings: JetStream not answering; nil: none
	// compactAfter: compaction rests until then after a failed step (treeMu); noCompact
	// (tests that count messages) turns it off.
	compactAfter time.Time
	noCompact    bool
	// wrote: a flush of this node's since it last read the tree (treeMu): it is the writer.
	wrote bool
	// garbage: wraps messages no ref points into any more, for the deleter (started with the
	// writer) to delete; gcPending counts those not yet deleted. See discard.
	garbage   chan uint64
	gcDone    chan struct{}
	gcPending atomic.Int64
	// gcmRing: the leaves whose AES-GCM OpenGCM keeps, oldest overwritten first (gcmMu).
	gcmMu   sync.Mutex
	gcmRing [dkGCMKept]*dkLeaf
	gcmNext int
}

// dkGCMKept is how many data keys keep their AES-GCM between reads: a read of a hot secret
// otherwise expands its key and builds GHASH tables again (1.2 KB, about 0.7 µs). 2,048 of
// them hold ~2.5 MB.
const dkGCMKept = 2048

// SetLogger sets where the store warns that JetStream does not answer (a cluster electing a
// stream's leader). Call before Load.
func (d *DataKeys) SetLogger(l *slog.Logger) { d.log = l }

// DataKeyStats are counters for telemetry.
type DataKeyStats struct {
	Flushes, Created, Shredded, RootWrites, Rewrapped uint64
	// Compacted: wraps stored again by compaction (datakeys_compact.go).
	Compacted uint64
	// ShredBacklog: Shred calls waiting plus keys ShredLater has not erased yet.
	ShredBacklog int
}

// ShredDeadline bounds ShredLater: a key it took out of service is unrecoverable from disk at
// most this long afterwards while the node runs (a crash meanwhile leaves it to Reconcile).
// Shreds queued that long are erased together, so a steady stream of trims costs one root
// write and one 32 KB erase per ShredDeadline/2 rather than one per trim.
const ShredDeadline = time.Second

type dkDeferred struct {
	leaf *dkLeaf
	at   time.Time
}

// OpenDataKeys creates (or updates) the two streams — file storage; deletes allowed, purges
// denied (a purge would not overwrite bytes); replicas as for the log — and starts the writer.
// Call Load before use; Close stops the writer.
func OpenDataKeys(ctx context.Context, js jetstream.JetStream, replicas int) (*DataKeys, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DataKeysStream,
		Description: "Ledger data keys, wrapped under group and shelf keys (see the root stream)",
		Subjects:    []string{DataKeySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never evict a key to make room
		Replicas:    max(replicas, 1),
		Duplicates:  dedupeWindow,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DataKeysStream, err)
	}
	root, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DataKeysRootStream,
		Description: "Ledger data-key root table (sealed); erasing it destroys retired keys",
		Subjects:    []string{dataKeyRootSubj},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    dkRootStreamBytes,
		Replicas:    max(replicas, 1),
		Duplicates:  dedupeWindow,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DataKeysRootStream, err)
	}
	d := &DataKeys{js: js, stream: st, rootStream: root, reqs: make(chan *dkReq, 1024), t: newDKTree(),
		pending: map[string]struct{}{}, deferred: map[string]dkDeferred{}, kick: make(chan struct{}, 1)}
	d.startWriter()
	return d, nil
}

// DeleteDataKeyStreams drops both streams (a restore replaces every data key).
func DeleteDataKeyStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{DataKeysRootStream, DataKeysStream} {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", name, err)
		}
	}
	return nil
}

// validDataKeyID accepts dot-separated tokens of letters, digits, '-' and '_', so a caller may
// group its ids under a prefix (a mount) to find them again with List.
func validDataKeyID[T ~string | ~[]byte](id T) bool {
	if len(id) == 0 || len(id) > dataKeyMaxID {
		return false
	}
	// Byte by byte through a table, without splitting: every id of the stream is checked at
	// each unseal.
	tok := 0 // length of the token so far
	for i := 0; i < len(id); i++ {
		switch idByte[id[i]] {
		case idToken:
			tok++
		case idDot:
			if tok == 0 {
				return false
			}
			tok = 0
		default:
			return false
		}
	}
	return tok > 0
}

// idByte classes the bytes of a data key id.
var idByte = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			t[c] = idToken
		case c == '.':
			t[c] = idDot
		}
	}
	return t
}()

const (
	idBad = iota
	idToken
	idDot
)

func badID(id string) error {
	return fmt.Errorf("data key id %q: want dot-separated tokens of [A-Za-z0-9_-], at most %d bytes", id, dataKeyMaxID)
}

// --- reading the streams ---

type dkRaw struct {
	subject string
	seq     uint64
	stored  time.Time
	data    []byte
}

// scan delivers the wraps stream's messages from sequence from, in order, until it has read
// everything it holds, and returns the highest sequence delivered. sized, when not nil, is told
// the stream's bytes once, before the first message.
func (d *DataKeys) scan(ctx context.Context, from uint64, sized func(bytes uint64), fn func(dkRaw) error) (uint64, error) {
	var (
		info *jetstream.StreamInfo
		cons jetstream.Consumer
		last uint64
	)
	// On a cluster, a stream whose leader is moving answers "no responders" or 503 for a
	// moment (seconds on a loaded machine, after a member was killed), and so does a consumer
	// placed on a member that is restarting. Opening is retried, and a fetch that fails that way
	// reopens the consumer just after the last message delivered (fn saw each once, in order),
	// for up to scanCatchUp since the last progress.
	open := func() error {
		err := RetryJS(ctx, d.log, "open a reader of "+DataKeysStream, scanCatchUp, func(actx context.Context) error {
			var err error
			if info == nil {
				if info, err = d.stream.Info(actx); err != nil {
					info = nil
					return err
				}
			}
			start := max(from, last+1)
			// A bounded reset: FetchNoWait takes no context, and an ordered consumer whose
			// stream stops answering (a cluster going away) otherwise recreates itself
			// forever — inside a request holding the node's state lock, so that nothing,
			// not even a seal, could go on. The retries here and below cover a leader's move.
			cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: 3}
			if start > 1 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
			}
			cons, err = d.stream.OrderedConsumer(actx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", DataKeysStream, err)
		}
		return nil
	}
	if err := open(); err != nil {
		return 0, err
	}
	if info.State.Msgs == 0 || info.State.LastSeq < from {
		return 0, nil
	}
	if sized != nil {
		sized(info.State.Bytes)
	}
	var behind, stalled, failing time.Time
	for {
		// NoWait: the server hands over what it holds and says when there is nothing more.
		batch, err := cons.FetchNoWait(1024)
		n, done := 0, false
		if err == nil {
			for m := range batch.Messages() {
				md, merr := m.Metadata()
				if merr != nil {
					return 0, fmt.Errorf("read %s: metadata: %w", DataKeysStream, merr)
				}
				if md.Sequence.Stream <= last {
					continue // a reopened consumer's repeat
				}
				n++
				if err := fn(dkRaw{subject: m.Subject(), seq: md.Sequence.Stream, stored: md.Timestamp, data: m.Data()}); err != nil {
					return 0, err
				}
				last = md.Sequence.Stream
				done = md.NumPending == 0
			}
			if berr := batch.Error(); berr != nil && !errors.Is(berr, jetstream.ErrNoMessages) {
				err = berr
			}
		}
		if err != nil {
			if n > 0 || failing.IsZero() {
				failing = time.Now()
			}
			if !retryableCreate(err) || time.Since(failing) > scanCatchUp || ctx.Err() != nil {
				return 0, fmt.Errorf("read %s: %w", DataKeysStream, err)
			}
			if oerr := open(); oerr != nil {
				return 0, oerr
			}
			continue
		}
		failing = time.Time{}
		if !done && n > 0 {
			continue
		}
		// The consumer reads one replica: on a cluster, JetStream places it on any member,
		// including a node that has just restarted and is still catching up, which "holds
		// everything" short of what the stream leader reported. Read on until the leader's last
		// sequence is delivered, or is not there any more (erased), within scanCatchUp.
		if last >= info.State.LastSeq || ctx.Err() != nil {
			return last, ctx.Err()
		}
		gctx, gcancel := context.WithTimeout(ctx, jsAttempt)
		_, gerr := d.stream.GetMsg(gctx, info.State.LastSeq)
		gcancel()
		if errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return last, nil
		}
		if n > 0 || behind.IsZero() {
			behind, stalled = time.Now(), time.Now()
		} else if time.Since(behind) > scanCatchUp {
			return 0, fmt.Errorf("read %s: this node's replica is at seq %d, the stream at %d after %v",
				DataKeysStream, last, info.State.LastSeq, scanCatchUp)
		} else if time.Since(stalled) > jsAttempt {
			// Nothing new for a while: the consumer may sit on a member that was killed (the
			// meta leader had not noticed when it placed it) or that lags far behind. A new
			// one is placed again.
			if d.log != nil {
				d.log.Warn("data-key reader stalled; reading from another replica", "at", last, "stream_ends_at", info.State.LastSeq)
			}
			if oerr := open(); oerr != nil {
				return 0, oerr
			}
			stalled = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scanCatchUp bounds how long scan waits for a lagging replica to reach the stream's end.
const scanCatchUp = 15 * time.Second

// legacyKey is a key of the first layouts, sealed under the keyring.
type legacyKey struct {
	id     string
	sealed []byte
	stored time.Time
}

// decodeLegacy reads a first-layout message: ledger.datakey.<id> (body = the sealed key) or
// ledger.datakey.b.<batch> (format 1, count, then len-prefixed id and sealed key per key).
func decodeLegacy(subject string, data []byte) ([]legacyKey, error) {
	rest, _ := strings.CutPrefix(subject, DataKeySubjectPrefix)
	if !strings.HasPrefix(rest, "b.") {
		if !validDataKeyID(rest) {
			return nil, ErrCorrupt
		}
		return []legacyKey{{id: rest, sealed: data}}, nil
	}
	if len(data) == 0 || data[0] != 1 {
		return nil, ErrCorrupt
	}
	data = data[1:]
	next := func() ([]byte, bool) {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return nil, false
		}
		b := data[n : n+int(l)]
		data = data[n+int(l):]
		return b, true
	}
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) {
		return nil, ErrCorrupt
	}
	data = data[n:]
	out := make([]legacyKey, 0, count)
	for range count {
		id, ok1 := next()
		sealed, ok2 := next()
		if !ok1 || !ok2 || !validDataKeyID(string(id)) {
			return nil, ErrCorrupt
		}
		out = append(out, legacyKey{id: string(id), sealed: sealed})
	}
	if len(data) != 0 {
		return nil, ErrCorrupt
	}
	return out, nil
}

// lastFor is st.GetLastMsgForSubject, retried while a cluster elects the stream's leader.
func (d *DataKeys) lastFor(ctx context.Context, st jetstream.Stream, subj string) (*jetstream.RawStreamMsg, error) {
	var m *jetstream.RawStreamMsg
	err := RetryJS(ctx, d.log, "read the last "+subj, scanCatchUp, func(actx context.Context) error {
		var err error
		m, err = st.GetLastMsgForSubject(actx, subj)
		return err
	})
	return m, err
}

// readTree reads the root in force and every wrap, and builds the tree. It also returns the
// root messages older than the one in force (a crash between a root write and the erase of the
// previous one), the first layouts' live keys and messages, and wraps messages that hold
// nothing in force.
//
// The root and the wraps are two reads, not one snapshot: if another node's flush replaced the
// root meanwhile, the wraps read may miss messages it then deleted as garbage. So the read is
// repeated until the root did not change under it.
func (d *DataKeys) readTree(ctx context.Context, kr *Keyring) (t *dkTree, oldRoots []uint64, legacy []legacyKey, legacyMsgs, garbage []uint64, err error) {
	for attempt := 0; ; attempt++ {
		t, oldRoots, legacy, legacyMsgs, garbage, err = d.readTreeOnce(ctx, kr)
		if err != nil {
			return nil, nil, nil, nil, nil, err
		}
		m, err := d.lastFor(ctx, d.rootStream, dataKeyRootSubj)
		var now uint64
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			t.zero()
			return nil, nil, nil, nil, nil, fmt.Errorf("read %s: %w", DataKeysRootStream, err)
		default:
			now = m.Sequence
		}
		if now == t.rootSeq {
			return t, oldRoots, legacy, legacyMsgs, garbage, nil
		}
		t.zero()
		if attempt == 20 {
			return nil, nil, nil, nil, nil, fmt.Errorf("read data keys: the root changed under 20 reads in a row: %w", errFenced)
		}
	}
}

func (d *DataKeys) readTreeOnce(ctx context.Context, kr *Keyring) (t *dkTree, oldRoots []uint64, legacy []legacyKey, legacyMsgs, garbage []uint64, err error) {
	shelves := map[uint64]*dkInner{}
	var rootSeq uint64
	m, err := d.lastFor(ctx, d.rootStream, dataKeyRootSubj)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, nil, nil, nil, nil, fmt.Errorf("read %s: %w", DataKeysRootStream, err)
	default:
		if shelves, err = decodeRoot(kr, m.Data); err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("data key root at seq %d: %w", m.Sequence, err)
		}
		rootSeq = m.Sequence
		var info *jetstream.StreamInfo
		err := RetryJS(ctx, d.log, DataKeysRootStream+" info", scanCatchUp, func(actx context.Context) error {
			var err error
			info, err = d.rootStream.Info(actx)
			return err
		})
		if err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("stream %s info: %w", DataKeysRootStream, err)
		}
		for seq := info.State.FirstSeq; seq < rootSeq && info.State.Msgs > 1; seq++ {
			oldRoots = append(oldRoots, seq)
		}
	}
	var cands dkCands
	var wrapsSeq uint64
	latestLegacy := map[string]dkRaw{}
	// The index is sized from the stream's bytes up front: at a million keys, growing it as
	// the wraps came was a third of the load's CPU.
	_, err = d.scan(ctx, 1, cands.expect, func(r dkRaw) error {
		if r.subject != dataKeyWrapsSubj {
			if prev, ok := latestLegacy[r.subject]; ok {
				legacyMsgs = append(legacyMsgs, prev.seq)
			}
			latestLegacy[r.subject] = r
			return nil
		}
		if err := eachWrapIn(r.data, &cands.ids, func(w dkWire) { cands.add(w, r.seq) }); err != nil {
			return fmt.Errorf("data key message %d: %w", r.seq, err)
		}
		wrapsSeq = r.seq
		garbage = append(garbage, r.seq)
		return nil
	})
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	if t, err = resolve(shelves, rootSeq, wrapsSeq, &cands); err != nil {
		return nil, nil, nil, nil, nil, err
	}
	garbage = slices.DeleteFunc(garbage, func(seq uint64) bool { return t.msgRefs[seq] > 0 || seq == wrapsSeq })
	// First layouts: per subject the latest message counts; an id under two subjects: the later.
	seen := map[string]time.Time{}
	byID := map[string]legacyKey{}
	for _, r := range latestLegacy {
		legacyMsgs = append(legacyMsgs, r.seq)
		ks, err := decodeLegacy(r.subject, r.data)
		if err != nil {
			t.zero()
			return nil, nil, nil, nil, nil, fmt.Errorf("data key message %d: %w", r.seq, err)
		}
		for _, k := range ks {
			if at, ok := seen[k.id]; ok && at.After(r.stored) {
				continue
			}
			k.stored = r.stored
			seen[k.id], byID[k.id] = r.stored, k
		}
	}
	for _, k := range byID {
		if t.leaves[k.id] == nil {
			legacy = append(legacy, k)
		}
	}
	return t, oldRoots, legacy, legacyMsgs, garbage, nil
}

// Load reads every key into memory, replacing what was there, and (re)starts the writer after
// a Close; the unseal path calls it once. It finishes what a crash interrupted: root messages
// older than the one in force are securely deleted. Keys of the first layouts are moved into
// the tree, then their messages erased.
// Errors: ErrSealed without a keyring, ErrCorrupt for a message that does not decode or a key
// that does not open.
func (d *DataKeys) Load(ctx context.Context, keyring *Keyring) error {
	if keyring == nil {
		return ErrSealed
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	if err := d.reload(ctx, keyring); err != nil {
		return err
	}
	d.mu.Lock()
	d.closed = false
	d.mu.Unlock()
	d.startWriter()
	return nil
}

// reload rebuilds the tree from the streams. Called with treeMu held.
func (d *DataKeys) reload(ctx context.Context, kr *Keyring) error {
	d.wrote = false
	t, oldRoots, legacy, legacyMsgs, garbage, err := d.readTree(ctx, kr)
	if err != nil {
		return err
	}
	d.discard(ctx, garbage)
	d.mu.Lock()
	old := d.t
	d.t, d.kr = t, kr
	for id, df := range d.deferred { // out of service stays out of service
		if l := t.leaves[id]; l != nil {
			l.forget()
			delete(t.leaves, id)
			d.deferred[id] = dkDeferred{leaf: l, at: df.at}
		} else {
			delete(d.deferred, id)
		}
	}
	d.mu.Unlock()
	if old != t {
		old.zero()
	}
	for _, seq := range oldRoots {
		if err := eraseSeq(ctx, d.rootStream, seq); err != nil {
			return fmt.Errorf("erase superseded data key root %d: %w", seq, err)
		}
	}
	if len(legacy) == 0 {
		return d.deleteLegacy(ctx, legacyMsgs)
	}
	news := make([]*dkLeaf, 0, len(legacy))
	for _, k := range legacy {
		key, err := kr.Open(k.sealed, adDataKey(k.id))
		if err != nil {
			for _, l := range news {
				clear(l.key)
			}
			return fmt.Errorf("data key %s does not open: %w", k.id, ErrCorrupt)
		}
		news = append(news, &dkLeaf{node: randomNode(), id: k.id, key: key, created: k.stored.UnixNano()})
	}
	for chunk := range slices.Chunk(news, dataKeyBatchKeys) {
		if err := d.flush(ctx, chunk, nil); err != nil {
			return fmt.Errorf("move first-layout data keys into the tree: %w", err)
		}
	}
	return d.deleteLegacy(ctx, legacyMsgs)
}

// deleteLegacy securely deletes first-layout messages: their keys are sealed under the keyring
// itself, so they must not outlive the move (or a shred).
func (d *DataKeys) deleteLegacy(ctx context.Context, seqs []uint64) error {
	for _, seq := range seqs {
		if err := eraseSeq(ctx, d.stream, seq); err != nil {
			return fmt.Errorf("erase first-layout data key message %d: %w", seq, err)
		}
	}
	return nil
}

// eraseSeq securely deletes the message at seq; a message already gone counts as erased.
func eraseSeq(ctx context.Context, st jetstream.Stream, seq uint64) error {
	err := st.SecureDeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The delete API does not say *why* it failed; a message that is no longer there is what
	// we wanted.
	if _, gerr := st.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

// moved reports whether another node changed the streams since this node's tree was read.
func (d *DataKeys) moved(ctx context.Context) (bool, error) {
	d.mu.RLock()
	rootSeq, wrapsSeq := d.t.rootSeq, d.t.wrapsSeq
	d.mu.RUnlock()
	lastOn := func(st jetstream.Stream, subj string) (uint64, error) {
		m, err := d.lastFor(ctx, st, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return m.Sequence, nil
	}
	r, err := lastOn(d.rootStream, dataKeyRootSubj)
	if err != nil {
		return false, err
	}
	w, err := lastOn(d.stream, dataKeyWrapsSubj)
	if err != nil {
		return false, err
	}
	return r != rootSeq || w != wrapsSeq, nil
}

// catchUp reloads the tree if another node changed it. Called with opMu held shared.
//
// A full reload costs O(keys); that is fine for a node that only reads, rarely misses and is
// not the writer. A standby that follows a busy active node should tail the wraps subject
// instead (a future change: resolve() already accepts wraps in any order).
func (d *DataKeys) catchUp(ctx context.Context) error {
	// A clustered stream whose leader is moving answers "no responders" or 503 for a moment;
	// a reload builds a fresh tree and swaps it in only when whole, so it can be retried.
	for attempt := 0; ; attempt++ {
		err := d.catchUpOnce(ctx)
		if err == nil || attempt == 30 || !retryableCreate(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *DataKeys) catchUpOnce(ctx context.Context) error {
	moved, err := d.moved(ctx)
	if err != nil || !moved {
		return err
	}
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	d.mu.RLock()
	kr := d.kr
	d.mu.RUnlock()
	if kr == nil {
		return ErrSealed
	}
	return d.reload(ctx, kr)
}

// --- writing ---

// dkReq is one New (id, key) or one Shred (ids) waiting for the writer.
type dkReq struct {
	id    string
	key   []byte // New: plaintext; the tree owns it once stored
	shred []string
	out   []byte // New: the caller's copy, set before done
	done  chan error
}

// New generates a random data key under id, stores it and returns it once it is durable (on
// disk, or replicated), in a flush shared with concurrent New and Shred calls.
// Errors: ErrSealed without a keyring or after Close, ErrConflict if this node knows id
// already, or ctx's error — after which the key may or may not be stored (an orphan that
// Reconcile shreds). The caller owns the returned slice and should clear it when done.
func (d *DataKeys) New(ctx context.Context, keyring *Keyring, id string) ([]byte, error) {
	if keyring == nil {
		return nil, ErrSealed
	}
	if !validDataKeyID(id) {
		return nil, badID(id)
	}
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	d.mu.Lock()
	_, inflight := d.pending[id]
	switch {
	case d.closed || d.kr == nil:
		d.mu.Unlock()
		return nil, ErrSealed
	case inflight || d.t.leaves[id] != nil:
		d.mu.Unlock()
		return nil, fmt.Errorf("data key %s exists: %w", id, ErrConflict)
	}
	d.pending[id] = struct{}{}
	d.kr = keyring // the newest keyring seals the next root
	d.mu.Unlock()
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		d.unreserve(id)
		return nil, fmt.Errorf("data key: %w", err)
	}
	r := &dkReq{id: id, key: key, done: make(chan error, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		clear(key)
		d.unreserve(id)
		return nil, ctx.Err()
	}
	select {
	case err := <-r.done:
		if err != nil {
			return nil, fmt.Errorf("store data key %s: %w", id, err)
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store data key %s: outcome unknown: %w", id, ctx.Err())
	}
}

func (d *DataKeys) unreserve(id string) {
	d.mu.Lock()
	delete(d.pending, id)
	d.mu.Unlock()
}

// Shred destroys the key with id (see ShredMany).
func (d *DataKeys) Shred(ctx context.Context, id string) error {
	return d.ShredMany(ctx, []string{id})
}

// ShredMany destroys the keys with ids in one flush (see the comment at the top of this file):
// when it returns nil, no root on disk reaches them and they are zeroed in memory, so nothing
// sealed under them can be opened again. Keys that are already gone, or never existed, are
// skipped. On an error the keys may or may not be destroyed; calling again is safe.
func (d *DataKeys) ShredMany(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if !validDataKeyID(id) {
			return badID(id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	d.mu.RLock()
	closed, missing := d.closed || d.kr == nil, false
	for _, id := range ids {
		if d.t.leaves[id] == nil {
			missing = true
		}
	}
	d.mu.RUnlock()
	if closed {
		return ErrSealed
	}
	if missing { // perhaps stored by another node since we loaded
		if err := d.catchUp(ctx); err != nil {
			return fmt.Errorf("shred data keys: %w", err)
		}
	}
	r := &dkReq{shred: ids, done: make(chan error, 1)}
	d.mu.Lock()
	d.stats.ShredBacklog++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.stats.ShredBacklog--
		d.mu.Unlock()
	}()
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("shred data key %s: %w", describeIDs(ids), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shred data key %s: outcome unknown: %w", describeIDs(ids), ctx.Err())
	}
}

// ShredLater takes the keys with ids out of service now — zeroed in memory, gone from Get,
// Fetch, List and snapshots — and erases them from disk with the next flush that shreds, at the
// latest ShredDeadline from now. It is for destruction nobody waits on (a version trimmed by
// max_versions): a stream of those then costs one erase per deadline, not one per key. A crash
// before the erase leaves the keys on disk, unreferenced; Reconcile erases them.
func (d *DataKeys) ShredLater(ids []string) error {
	for _, id := range ids {
		if !validDataKeyID(id) {
			return badID(id)
		}
	}
	d.mu.Lock()
	if d.closed || d.kr == nil {
		d.mu.Unlock()
		return ErrSealed
	}
	now := time.Now()
	if len(d.deferred) == 0 {
		d.deferredSince = now
	}
	for _, id := range ids {
		if l := d.t.leaves[id]; l != nil {
			l.forget()
			delete(d.t.leaves, id)
			d.deferred[id] = dkDeferred{leaf: l, at: now}
		}
	}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return nil
}

// due is how long until deferred shreds must start (half the deadline after the oldest), and
// whether there are any.
func (d *DataKeys) due() (time.Duration, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(d.deferred) == 0 {
		return 0, false
	}
	if len(d.deferred) >= dataKeyBatchKeys {
		return 0, true
	}
	return time.Until(d.deferredSince.Add(ShredDeadline / 2)), true
}

func describeIDs(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return fmt.Sprintf("%s and %d more", ids[0], len(ids)-1)
}

// startWriter starts the writer unless it runs. Called with opMu held exclusively (or before d
// is shared).
func (d *DataKeys) startWriter() {
	if d.running {
		return
	}
	d.quit, d.done, d.running = make(chan struct{}), make(chan struct{}), true
	d.garbage, d.gcDone = make(chan uint64, garbageQueue), make(chan struct{})
	go d.writer(d.quit, d.done)
	go d.deleter(d.quit, d.garbage, d.gcDone)
}

// garbageQueue bounds the deleter's queue; past it the writer deletes inline.
const garbageQueue = 4096

// discard deletes wraps messages that no ref points into: they hold only wraps under retired
// parents, which nothing can open, or copies of wraps that compaction stored again, so a plain
// delete (no block rewrite) reclaims the space and nothing waits for it. The deleter does it beside the writer: a compaction step or a shred
// retires a few messages, and deleting them inline held the New calls queued behind it for a
// JetStream round trip and a tombstone fsync each. Best effort: Load finds what is left.
func (d *DataKeys) discard(ctx context.Context, seqs []uint64) {
	for i, seq := range seqs {
		d.gcPending.Add(1)
		select {
		case d.garbage <- seq:
		default:
			d.gcPending.Add(-1)
			for _, seq := range seqs[i:] {
				if err := d.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					return
				}
			}
			return
		}
	}
}

// untilQuit is ctx, cancelled also when quit closes.
func untilQuit(ctx context.Context, quit <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// deleter deletes what discard queued until quit, which also ends a delete under way: a seal
// does not wait for JetStream to answer one.
func (d *DataKeys) deleter(quit <-chan struct{}, q <-chan uint64, done chan<- struct{}) {
	defer close(done)
	stop, cancelAll := untilQuit(context.Background(), quit)
	defer cancelAll()
	for {
		select {
		case <-quit:
			return
		case seq := <-q:
			ctx, cancel := context.WithTimeout(stop, publishTimeout)
			if err := d.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && d.log != nil {
				d.log.Debug("data keys: deleting a retired wraps message", "seq", seq, "err", err)
			}
			cancel()
			d.gcPending.Add(-1)
		}
	}
}

// stopWriter stops the writer and waits for it. Called with opMu held exclusively.
func (d *DataKeys) stopWriter() {
	if !d.running {
		return
	}
	close(d.quit)
	<-d.done
	<-d.gcDone
	d.running, d.garbage = false, nil // discard deletes inline until the writer starts again
	d.gcPending.Store(0)              // what the deleter left, Load finds again
}

// writer is the one goroutine that changes the tree. It takes whatever New and Shred calls
// queued up while the previous flush was being stored, so flushes grow with load and fsyncs
// are shared; and it lingers as the log's writer does (see Log.writer): until about as many
// requests as last time have arrived, but no longer than a quarter of the last flush (capped
// at 500µs).
func (d *DataKeys) writer(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	compact := time.NewTimer(time.Hour)
	compact.Stop()
	compacting := false
	lastReqs, lastStore := 0, time.Duration(0)
	var carry *dkReq
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	for {
		first := carry
		carry = nil
		if first == nil {
			// Compaction (datakeys_compact.go) once idle for compactIdle, then step after step
			// while nothing else comes; deferred shreds that are due go first.
			if want, _ := d.compactWanted(); !want {
				compacting = false
			} else if wait, ok := d.due(); ok && wait <= 0 {
				d.commit(nil)
				continue
			} else if compacting {
				select {
				case first = <-d.reqs:
					compacting = false
				default:
					d.compactStep(quit)
					continue
				}
			} else {
				compact.Reset(compactIdle)
				select {
				case first = <-d.reqs:
					if !compact.Stop() {
						<-compact.C
					}
				case <-d.kick:
					if !compact.Stop() {
						<-compact.C
					}
					continue
				case <-compact.C:
					compacting = true
					d.compactStep(quit)
					continue
				case <-quit:
					d.drain()
					return
				}
			}
		}
		if first == nil {
			if wait, ok := d.due(); ok {
				deadline.Reset(max(wait, 0))
			}
			select {
			case first = <-d.reqs:
			case <-d.kick:
				continue
			case <-deadline.C:
				d.commit(nil) // deferred shreds only
				continue
			case <-quit:
				d.drain()
				return
			}
		}
		batch := []*dkReq{first}
		news := 0
		if first.shred == nil {
			news++
		}
		wait := min(lastStore/4, 500*time.Microsecond)
		lingering := false
	collect:
		for news < dataKeyBatchKeys {
			var r *dkReq
			select {
			case r = <-d.reqs:
			default:
				if len(batch) >= lastReqs || wait <= 0 {
					break collect
				}
				if !lingering {
					linger.Reset(wait)
					lingering = true
				}
				select {
				case r = <-d.reqs:
				case <-linger.C:
					lingering = false
					break collect
				}
			}
			batch = append(batch, r)
			if r.shred == nil {
				news++
			}
		}
		if lingering && !linger.Stop() {
			<-linger.C
		}
		t0 := time.Now()
		d.commit(batch)
		lastReqs, lastStore = len(batch), time.Since(t0)
		if _, queued := d.compactWanted(); queued >= compactBacklog {
			d.compactStep(quit) // under a load that never leaves the writer idle
		}
	}
}

// drain answers requests whose callers gave up before Close (no caller waits on the others).
func (d *DataKeys) drain() {
	for {
		select {
		case r := <-d.reqs:
			d.answer([]*dkReq{r}, ErrSealed)
		default:
			return
		}
	}
}

func (d *DataKeys) answer(batch []*dkReq, err error) {
	d.mu.Lock()
	for _, r := range batch {
		if r.shred == nil {
			delete(d.pending, r.id)
			if err != nil {
				clear(r.key)
			} else {
				r.out = append([]byte(nil), r.key...)
			}
		}
	}
	d.mu.Unlock()
	for _, r := range batch {
		r.done <- err
	}
}

// commitAttempts: a flush fenced by another writer reloads and tries again, up to this many
// times in all. Another node's compaction (datakeys_compact.go) can store between our reload
// and our retry; it stops at its own next fence, so a few attempts see it through.
const commitAttempts = 5

// commit runs one flush for a batch of requests and answers them. A flush that lost a fence
// (another writer) reloads the tree and tries again (commitAttempts).
func (d *DataKeys) commit(batch []*dkReq) {
	ctx, cancel := context.WithTimeout(context.Background(), commitDeadline)
	defer cancel()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	d.mu.RLock()
	closed, kr := d.closed, d.kr
	d.mu.RUnlock()
	if closed || kr == nil {
		d.answer(batch, ErrSealed)
		return
	}
	var err error
	for attempt := 0; attempt < commitAttempts; attempt++ {
		news, victims := d.collect(batch)
		if len(news) == 0 && len(victims) == 0 {
			break
		}
		if err = d.flush(ctx, news, victims); !errors.Is(err, errFenced) {
			break
		}
		if rerr := d.reload(ctx, kr); rerr != nil {
			err = rerr
			break
		}
	}
	if err != nil && !errors.Is(err, errFenced) {
		// The picture of the stream may be off (a publish whose outcome is unknown): read it
		// again before the next flush.
		if rerr := d.reload(ctx, kr); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	d.answer(batch, err)
}

// collect turns requests into the flush's new leaves and victims (keys this node knows).
func (d *DataKeys) collect(batch []*dkReq) (news, victims []*dkLeaf) {
	now := time.Now().UnixNano()
	seen := map[string]bool{}
	shreds := slices.ContainsFunc(batch, func(r *dkReq) bool { return r.shred != nil })
	if wait, ok := d.due(); ok && (shreds || wait <= 0) {
		d.mu.RLock()
		for id, df := range d.deferred {
			seen[id] = true
			victims = append(victims, df.leaf)
		}
		d.mu.RUnlock()
	}
	for _, r := range batch {
		if r.shred == nil {
			news = append(news, &dkLeaf{node: randomNode(), id: r.id, key: r.key, created: now})
			continue
		}
		for _, id := range r.shred {
			if l := d.t.leaves[id]; l != nil && !seen[id] {
				seen[id] = true
				victims = append(victims, l)
			}
		}
	}
	return news, victims
}

// flush stores one change of the tree: news become leaves, victims are destroyed. Called with
// treeMu held; on success the tree (and, under mu, the leaves readers see) reflect it.
func (d *DataKeys) flush(ctx context.Context, news, victims []*dkLeaf) error {
	t := d.t
	p, err := t.plan(news, victims)
	if err != nil {
		return err
	}
	// 1. The wraps.
	seqs, err := d.storeWires(ctx, t, p.wires)
	if err != nil {
		return err
	}
	// 2. The root, when shelves come or go; 3. the erase of the root it replaces.
	var rootSeq uint64
	if p.rootDiff {
		d.mu.RLock()
		kr := d.kr
		d.mu.RUnlock()
		body, err := encodeRoot(kr, p.shelvesAfter())
		if err != nil {
			return err
		}
		f := t.rootSeq
		if rootSeq, err = d.store(ctx, d.rootStream, dataKeyRootSubj, body, &f); err != nil {
			return fmt.Errorf("store data key root: %w", err)
		}
		if t.rootSeq != 0 {
			if err := eraseSeq(ctx, d.rootStream, t.rootSeq); err != nil {
				// The new root is in force; the old one still reaches the victims. Reloading
				// (commit does) erases it; until then the shred is not acknowledged.
				return fmt.Errorf("erase data key root %d: %w", t.rootSeq, err)
			}
		}
	}
	d.wrote = true
	d.mu.Lock()
	garbage := p.apply(seqs, rootSeq)
	erased := false
	for _, v := range victims {
		if _, ok := d.deferred[v.id]; ok {
			delete(d.deferred, v.id)
			erased = true
		}
	}
	if erased {
		// The flush took every deferred key it saw; what is left was deferred while it ran: few.
		d.deferredSince = time.Time{}
		for _, df := range d.deferred {
			if d.deferredSince.IsZero() || df.at.Before(d.deferredSince) {
				d.deferredSince = df.at
			}
		}
	}
	d.stats.Flushes++
	d.stats.Created += uint64(len(news))
	d.stats.Shredded += uint64(len(victims))
	d.stats.Rewrapped += uint64(len(p.wires) - len(news))
	if rootSeq != 0 {
		d.stats.RootWrites++
	}
	d.mu.Unlock()
	d.discard(ctx, garbage)
	return nil
}

// storeWires stores wires in as few messages as the size limit allows and returns, per wire,
// the sequence of its message. The first message is fenced on the subject's last sequence as
// t knows it (no other writer since we read), the next ones on their predecessor.
func (d *DataKeys) storeWires(ctx context.Context, t *dkTree, wires []dkWire) ([]uint64, error) {
	seqs := make([]uint64, len(wires))
	fence := t.wrapsSeq
	for start := 0; start < len(wires); {
		end, size := start, 0
		for end < len(wires) && (end == start || size+wires[end].size() <= dataKeyMsgBytes) {
			size += wires[end].size()
			end++
		}
		f := fence
		seq, err := d.store(ctx, d.stream, dataKeyWrapsSubj, encodeWraps(wires[start:end]), &f)
		if err != nil {
			return nil, fmt.Errorf("store data key wraps: %w", err)
		}
		for i := start; i < end; i++ {
			seqs[i] = seq
		}
		fence, start = seq, end
	}
	return seqs, nil
}

// store publishes one message exactly once and returns its sequence. A retry after a timeout
// carries the same Nats-Msg-Id, so the server acknowledges the first copy instead of storing a
// second. With fence, the message is stored only if the latest message on subject is at
// *fence (0: none); errFenced if not.
func (d *DataKeys) store(ctx context.Context, st jetstream.Stream, subject string, data []byte, fence *uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, commitDeadline)
	defer cancel()
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(st.CachedInfo().Config.Name), jetstream.WithMsgID(newID())}
	if fence != nil {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(*fence))
	}
	backoff := 20 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, publishTimeout)
		ack, err := d.js.Publish(actx, subject, data, opts...)
		acancel()
		if err == nil {
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			if apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				return 0, errFenced
			}
			return 0, err
		}
		if d.log != nil {
			d.log.Warn("data-key store: no acknowledgement from JetStream yet; retrying", "subject", subject, "err", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no acknowledgement from JetStream: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// --- reading keys ---

// Get returns a copy of the key with id from memory. The caller should clear it when done.
func (d *DataKeys) Get(id string) ([]byte, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	l := d.t.leaves[id]
	if l == nil {
		return nil, false
	}
	return append([]byte(nil), l.key...), true
}

// OpenGCM opens ciphertext sealed with AES-256-GCM under the data key id, appending the
// plaintext to dst, without handing the key out; the cipher is kept for the dkGCMKept keys
// opened last. found is false when the key is not in memory (Fetch may find it in the streams).
// A key shredded while an open is under way may still serve that open, as a copy from Get would.
func (d *DataKeys) OpenGCM(dst []byte, id string, nonce, ciphertext, ad []byte) (pt []byte, found bool, err error) {
	d.mu.RLock()
	l := d.t.leaves[id]
	if l == nil {
		d.mu.RUnlock()
		return nil, false, nil
	}
	box := l.gcm.Load()
	if box == nil {
		// Built under the read lock: the key cannot be zeroed meanwhile (forget runs under
		// the write lock), nor the cipher dropped before it is stored.
		aead, err := newGCM(l.key)
		if err != nil {
			d.mu.RUnlock()
			return nil, true, err
		}
		box = &leafGCM{aead: aead}
		if l.gcm.CompareAndSwap(nil, box) {
			d.keepGCM(l)
		} else {
			box = l.gcm.Load()
		}
	}
	d.mu.RUnlock()
	if len(nonce) != box.aead.NonceSize() {
		return nil, true, fmt.Errorf("nonce of %d bytes: %w", len(nonce), ErrCorrupt)
	}
	pt, err = box.aead.Open(dst, nonce, ciphertext, ad)
	return pt, true, err
}

// keepGCM enters l into the ring, dropping the cipher of the leaf it replaces.
func (d *DataKeys) keepGCM(l *dkLeaf) {
	d.gcmMu.Lock()
	defer d.gcmMu.Unlock()
	if old := d.gcmRing[d.gcmNext]; old != nil && old != l {
		old.gcm.Store(nil)
	}
	d.gcmRing[d.gcmNext] = l
	d.gcmNext = (d.gcmNext + 1) % dkGCMKept
}

// Fetch is Get, falling back to the streams for a key another node stored after Load.
// Errors: ErrNoDataKey when the streams do not hold it (shredded, or never stored), ErrSealed,
// ErrCorrupt when a stored key does not open.
func (d *DataKeys) Fetch(ctx context.Context, keyring *Keyring, id string) ([]byte, error) {
	if k, ok := d.Get(id); ok {
		return k, nil
	}
	if keyring == nil {
		return nil, ErrSealed
	}
	if !validDataKeyID(id) {
		return nil, badID(id)
	}
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return nil, ErrSealed
	}
	if err := d.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("read data key %s: %w", id, err)
	}
	if k, ok := d.Get(id); ok {
		return k, nil
	}
	return nil, fmt.Errorf("data key %s: %w", id, ErrNoDataKey)
}

// --- listing, snapshots ---

// DataKeyInfo describes one stored key, without the key.
type DataKeyInfo struct {
	ID string
	// Seq is the stream sequence of the message holding the key's wrap in force.
	Seq    uint64
	Stored time.Time // when New stored it
}

// List returns every key whose id starts with prefix followed by a dot ("" for all), sorted by
// id, after catching up with other nodes, so callers can shred a whole group or reconcile
// against their views.
func (d *DataKeys) List(ctx context.Context, prefix string) ([]DataKeyInfo, error) {
	if prefix != "" && !validDataKeyID(prefix) {
		return nil, badID(prefix)
	}
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	if err := d.catchUp(ctx); err != nil {
		return nil, err
	}
	d.mu.RLock()
	var out []DataKeyInfo
	for id, l := range d.t.leaves {
		if prefix == "" || strings.HasPrefix(id, prefix+".") {
			out = append(out, DataKeyInfo{ID: id, Seq: l.refs[0].seq, Stored: time.Unix(0, l.created)})
		}
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Len is the number of keys in memory.
func (d *DataKeys) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.t.leaves)
}

// Stats returns the counters since OpenDataKeys, and the number of keys.
func (d *DataKeys) Stats() (DataKeyStats, int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := d.stats
	s.ShredBacklog += len(d.deferred)
	return s, len(d.t.leaves)
}

type dataKeysSnapshot struct {
	Version int               `json:"v"`
	Keys    map[string][]byte `json:"keys"` // id → key sealed under the keyring
}

// Snapshot returns the live keys — whichever node stored them — each sealed under the keyring
// on its own (snapshot format 1, independent of the tree). Take it after the views' snapshot:
// a key shredded in between is then absent, and a key created in between is merely unused.
func (d *DataKeys) Snapshot(ctx context.Context) ([]byte, error) {
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	if err := d.catchUp(ctx); err != nil {
		return nil, err
	}
	d.mu.RLock()
	kr := d.kr
	if kr == nil || d.closed {
		d.mu.RUnlock()
		return nil, ErrSealed
	}
	s := dataKeysSnapshot{Version: 1, Keys: make(map[string][]byte, len(d.t.leaves))}
	var err error
	for id, l := range d.t.leaves {
		if s.Keys[id], err = kr.Seal(l.key, adDataKey(id)); err != nil {
			break
		}
	}
	d.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("seal data keys: %w", err)
	}
	return json.Marshal(s)
}

// Restore stores the keys of a snapshot that the streams lack (a restore into an empty data
// dir) and loads them into memory. Keys are checked against keyring before anything is stored.
// Errors: ErrCorrupt for a snapshot that does not decode or a key that does not open.
func (d *DataKeys) Restore(ctx context.Context, keyring *Keyring, data []byte) error {
	if keyring == nil {
		return ErrSealed
	}
	var s dataKeysSnapshot
	if err := json.Unmarshal(data, &s); err != nil || s.Version != 1 {
		return fmt.Errorf("restore data keys: %w", ErrCorrupt)
	}
	var news []*dkLeaf
	zero := func() {
		for _, l := range news {
			clear(l.key)
		}
	}
	now := time.Now().UnixNano()
	for id, sealed := range s.Keys {
		if !validDataKeyID(id) {
			zero()
			return fmt.Errorf("restore data keys: %w: %w", badID(id), ErrCorrupt)
		}
		k, err := keyring.Open(sealed, adDataKey(id))
		if err != nil || len(k) != DataKeySize {
			zero()
			return fmt.Errorf("restore data keys: key %s does not open: %w", id, ErrCorrupt)
		}
		news = append(news, &dkLeaf{node: randomNode(), id: id, key: k, created: now})
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	if err := d.reload(ctx, keyring); err != nil {
		zero()
		return fmt.Errorf("restore data keys: %w", err)
	}
	news = slices.DeleteFunc(news, func(l *dkLeaf) bool {
		if d.t.leaves[l.id] != nil {
			clear(l.key)
			return true
		}
		return false
	})
	slices.SortFunc(news, func(a, b *dkLeaf) int { return strings.Compare(a.id, b.id) })
	for i, chunk := 0, []*dkLeaf(nil); i < len(news); i += len(chunk) {
		chunk = news[i:min(i+dataKeyBatchKeys, len(news))]
		if err := d.flush(ctx, chunk, nil); err != nil {
			for _, l := range news[i:] {
				clear(l.key)
			}
			return fmt.Errorf("restore data keys: %w", err)
		}
	}
	d.mu.Lock()
	d.closed = false
	d.mu.Unlock()
	d.startWriter()
	return nil
}

// Close zeroes every key in memory (seal) and stops the writer, after the calls in flight are
// answered. The streams are untouched; Load brings the keys back.
func (d *DataKeys) Close() error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.stopWriter()
	d.treeMu.Lock()
	defer d.treeMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.t.zero()
	d.t, d.kr = newDKTree(), nil
	clear(d.pending)
	clear(d.deferred)
	d.gcmMu.Lock()
	clear(d.gcmRing[:])
	d.gcmMu.Unlock()
	return nil
}

// Recoverable answers the forensic question about a destroy: with keyring and everything the
// two streams hold — every root message still stored, every wrap, whether or not this node's
// index believes in it — can the data key id be opened? It tries every path. False after a
// Shred returned (or ShredDeadline after ShredLater) is the crypto-shredding guarantee.
func (d *DataKeys) Recoverable(ctx context.Context, keyring *Keyring, id string) (bool, error) {
	if keyring == nil {
		return false, ErrSealed
	}
	shelves := map[uint64]*dkInner{}
	info, err := d.rootStream.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("stream %s info: %w", DataKeysRootStream, err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := d.rootStream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", DataKeysRootStream, err)
		}
		ss, err := decodeRoot(keyring, m.Data)
		if err != nil {
			return false, fmt.Errorf("data key root %d: %w", seq, err)
		}
		for n, s := range ss {
			shelves[n] = s
		}
	}
	var wires []dkWire
	found := false
	if _, err := d.scan(ctx, 1, nil, func(r dkRaw) error {
		if r.subject != dataKeyWrapsSubj {
			ks, err := decodeLegacy(r.subject, r.data)
			if err != nil {
				return err
			}
			for _, k := range ks {
				if k.id == id {
					if key, err := keyring.Open(k.sealed, adDataKey(id)); err == nil {
						clear(key)
						found = true
					}
				}
			}
			return nil
		}
		return eachWrap(r.data, func(w dkWire) { wires = append(wires, w) })
	}); err != nil {
		return false, err
	}
	if found {
		return true, nil
	}
	groups := map[uint64]*dkInner{}
	for _, w := range wires {
		if s := shelves[w.parent]; w.kind == dkKindGroup && s != nil {
			if key, err := unseal(s.aead, w.sealed, wrapAD(w.kind, w.node, w.parent, "")); err == nil {
				if g, err := newInner(1, w.node, key); err == nil {
					groups[w.node] = g
				}
			}
		}
	}
	defer func() {
		for _, g := range groups {
			clear(g.key)
		}
		for _, s := range shelves {
			clear(s.key)
		}
	}()
	for _, w := range wires {
		if g := groups[w.parent]; g != nil && w.kind == dkKindLeaf && w.id == id {
			if key, err := unseal(g.aead, w.sealed, wrapAD(w.kind, w.node, w.parent, w.id)); err == nil {
				clear(key)
				return true, nil
			}
		}
	}
	return false, nil
}
