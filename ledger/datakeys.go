package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Data keys make destruction possible in an immutable log (crypto-shredding). A value that must
// be destroyable on demand (a KV version) is encrypted with its own random 256-bit data key; the
// log carries only that ciphertext and the key's id. The key lives in LEDGER_DATAKEYS, a stream
// apart from the log that allows deletes, sealed under the keyring. Destroying the value =
// securely deleting the message that holds the key: JetStream overwrites the record on disk with
// random bytes, so the ciphertext left in the log (and in older snapshots) can no longer be
// opened by anyone, even a holder of the root key. The log still records *that* the destruction
// happened.
//
// Layout. JetStream fsyncs every message on its own, so one message per key would cap key
// creation at the disk's fsync rate. Like the log's writer, one goroutine per DataKeys packs the
// keys of concurrent New calls into one message per flush, on a subject of its own:
// ledger.datakey.b.<batch id>, body = encodeDataKeys([(id, sealed key)]). Destroying one key of
// such a message first stores the message's other keys again — same sealed bytes, a newer
// message on the *same subject*, fenced by Nats-Expected-Last-Subject-Sequence — and then
// securely deletes every older message on that subject. So the rule for readers is: per subject,
// only the latest message counts; older ones are copies a shred has not finished erasing (a
// crash between the two steps), and whoever sees them erases them. The fence keeps two nodes
// shredding in one message from resurrecting each other's victims. Messages of the first layout
// (subject ledger.datakey.<id>, body = the sealed key) are read the same way, as one-key batches.
const (
	// DataKeysStream is the stream that holds the data keys.
	DataKeysStream = "LEDGER_DATAKEYS"
	// DataKeySubjectPrefix is the prefix of every subject in DataKeysStream.
	DataKeySubjectPrefix = "ledger.datakey."
	// DataKeySize is the size of a data key (AES-256).
	DataKeySize = 32

	dataKeyMaxID = 200

	// dataKeyBatchSubject + batch id is the subject of one batch of keys.
	dataKeyBatchSubject = DataKeySubjectPrefix + "b."
	dataKeysFormat      = 1
	dataKeyBatchKeys    = 4096
	dataKeyBatchBytes   = 512 << 10
	dataKeyShredStripes = 64
)

// ErrNoDataKey: the data key is not in the stream: it was shredded, or never stored.
var ErrNoDataKey = errors.New("ledger: data key not found")

// errFenced: the message a shred meant to rewrite was rewritten by someone else first.
var errFenced = errors.New("ledger: data key message changed underneath")

// adDataKey binds a sealed data key to its id, so one key's sealed bytes cannot stand in for
// another's, in whatever message they travel.
func adDataKey(id string) []byte { return []byte("ledger datakey v1\x00" + id) }

// DataKeys is the in-memory index of the data keys, backed by the LEDGER_DATAKEYS stream. It
// holds every key opened (plaintext) while unsealed; Close zeroes them. Safe for concurrent use.
//
// Every node keeps its own DataKeys over the shared stream. Keys stored by another node after
// Load are not in memory; Fetch reads them from the stream. A key shredded by another node stays
// in this node's memory until Close or until this node next reads that key's message, but not on
// disk and not in any later Snapshot.
//
// Lock order: opMu, then a shred stripe, then mu. The writer goroutine takes only mu.
type DataKeys struct {
	js     jetstream.JetStream
	stream jetstream.Stream

	// opMu: New, Fetch and ShredMany hold it shared for their whole run; Load and Close hold it
	// exclusively, so they never swap the index or stop the writer under an operation.
	opMu sync.RWMutex
	// Owned under opMu held exclusively; the writer gets its channels as arguments.
	quit, done chan struct{}
	running    bool

	reqs     chan *newReq // New → writer; lives as long as d
	shredMus [dataKeyShredStripes]sync.Mutex

	mu      sync.RWMutex
	idx     *dkIndex
	pending map[string]struct{} // ids of New calls not yet answered
	closed  bool
}

// OpenDataKeys creates (or updates) the LEDGER_DATAKEYS stream — file storage, deletes allowed
// (secure deletes are how keys are shredded), purges denied (a purge would destroy every value
// at once, and would not overwrite the bytes), replicas as for the log — and starts the writer.
// Call Load before use; Close stops the writer.
func OpenDataKeys(ctx context.Context, js jetstream.JetStream, replicas int) (*DataKeys, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DataKeysStream,
		Description: "Ledger data keys (sealed); a deleted message is a destroyed value",
		Subjects:    []string{DataKeySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew, // never evict a key to make room
		Replicas:    max(replicas, 1),
		Duplicates:  2 * time.Minute,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DataKeysStream, err)
	}
	d := &DataKeys{js: js, stream: st, reqs: make(chan *newReq, 1024), idx: newDKIndex(), pending: map[string]struct{}{}}
	d.startWriter()
	return d, nil
}

// validDataKeyID accepts dot-separated tokens of letters, digits, '-' and '_', so a caller may
// group its ids under a prefix (a mount) to find them again with List.
func validDataKeyID(id string) bool {
	if id == "" || len(id) > dataKeyMaxID {
		return false
	}
	for _, tok := range strings.Split(id, ".") {
		if tok == "" {
			return false
		}
		for _, c := range tok {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

func badID(id string) error {
	return fmt.Errorf("data key id %q: want dot-separated tokens of [A-Za-z0-9_-], at most %d bytes", id, dataKeyMaxID)
}

// --- message encoding ---

type dkEntry struct {
	id     string
	sealed []byte
}

// dkMsg is one message of the stream, decoded.
type dkMsg struct {
	subject string
	seq     uint64
	stored  time.Time
	entries []dkEntry
}

// encodeDataKeys: format byte, uvarint count, then per key uvarint len(id), id, uvarint
// len(sealed), sealed.
func encodeDataKeys(entries []dkEntry) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, e := range entries {
		n += 2*binary.MaxVarintLen32 + len(e.id) + len(e.sealed)
	}
	b := make([]byte, 0, n)
	b = append(b, dataKeysFormat)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.id)))
		b = append(b, e.id...)
		b = binary.AppendUvarint(b, uint64(len(e.sealed)))
		b = append(b, e.sealed...)
	}
	return b
}

// decodeDataKeys reads a message on subject. The sealed slices alias data.
func decodeDataKeys(subject string, data []byte) ([]dkEntry, error) {
	rest, ok := strings.CutPrefix(subject, DataKeySubjectPrefix)
	if !ok {
		return nil, ErrCorrupt
	}
	if !strings.HasPrefix(rest, "b.") { // first layout: the subject names the one key
		if !validDataKeyID(rest) {
			return nil, ErrCorrupt
		}
		return []dkEntry{{id: rest, sealed: data}}, nil
	}
	if len(data) == 0 || data[0] != dataKeysFormat {
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
	out := make([]dkEntry, 0, count)
	for range count {
		id, ok1 := next()
		sealed, ok2 := next()
		if !ok1 || !ok2 || !validDataKeyID(string(id)) {
			return nil, ErrCorrupt
		}
		out = append(out, dkEntry{id: string(id), sealed: sealed})
	}
	if len(data) != 0 {
		return nil, ErrCorrupt
	}
	return out, nil
}

// --- the index ---

// dkLoc is where the live copy of a key is.
type dkLoc struct {
	subject string
	seq     uint64
	stored  time.Time
	// also lists other subjects holding a key with the same id: only if two nodes created one
	// id at once (ids are random, so never in practice). Shred erases those too.
	also []string
}

// dkIndex is what a node knows of the stream. Guarded by DataKeys.mu.
type dkIndex struct {
	keys map[string][]byte              // id → plaintext key, for keys opened on this node
	locs map[string]dkLoc               // id → its live copy
	subj map[string]uint64              // subject → sequence of its latest message (kept after a delete)
	live map[uint64]map[string]struct{} // message sequence → ids live in it
	hw   uint64                         // every message up to hw has been indexed
}

func newDKIndex() *dkIndex {
	return &dkIndex{keys: map[string][]byte{}, locs: map[string]dkLoc{}, subj: map[string]uint64{}, live: map[uint64]map[string]struct{}{}}
}

func (x *dkIndex) zero() {
	for _, k := range x.keys {
		clear(k)
	}
	clear(x.keys)
}

func (x *dkIndex) known(id string) bool {
	_, ok := x.locs[id]
	return ok
}

// add indexes message m, opening its keys with kr (nil: locations only). A message older than
// what the index holds for its subject is superseded and skipped; a newer one supersedes the
// index's, and the ids it no longer carries were shredded. superseded is the sequence of a
// message that is now known to be a leftover copy (0 if none).
func (x *dkIndex) add(m dkMsg, kr *Keyring) (superseded uint64, err error) {
	if prev, ok := x.subj[m.subject]; ok {
		if m.seq < prev {
			return m.seq, nil
		}
		if m.seq == prev {
			return 0, nil
		}
		keep := make(map[string]struct{}, len(m.entries))
		for _, e := range m.entries {
			keep[e.id] = struct{}{}
		}
		for id := range x.live[prev] {
			if _, ok := keep[id]; !ok {
				x.drop(id, m.subject)
			}
		}
		delete(x.live, prev)
		superseded = prev
	}
	x.subj[m.subject] = m.seq
	live := make(map[string]struct{}, len(m.entries))
	for _, e := range m.entries {
		live[e.id] = struct{}{}
		loc, known := x.locs[e.id]
		if known && loc.subject != m.subject {
			if loc.seq > m.seq { // the other copy is the later one: keep it, remember this one
				if !slices.Contains(loc.also, m.subject) {
					loc.also = append(loc.also, m.subject)
				}
				x.locs[e.id] = loc
				continue
			}
			loc.also = append(slices.DeleteFunc(loc.also, func(s string) bool { return s == m.subject }), loc.subject)
		}
		fresh := !known || loc.subject != m.subject
		loc.subject, loc.seq, loc.stored = m.subject, m.seq, m.stored
		x.locs[e.id] = loc
		if !fresh {
			continue
		}
		if k, ok := x.keys[e.id]; ok { // another key under the same id
			clear(k)
			delete(x.keys, e.id)
		}
		if kr != nil {
			k, err := kr.Open(e.sealed, adDataKey(e.id))
			if err != nil {
				return superseded, fmt.Errorf("data key %s at seq %d does not open: %w", e.id, m.seq, ErrCorrupt)
			}
			x.keys[e.id] = k
		}
	}
	x.live[m.seq] = live
	return superseded, nil
}

// place indexes the locations of m's keys (add without a keyring, which cannot fail).
func (x *dkIndex) place(m dkMsg) { _, _ = x.add(m, nil) }

// drop forgets that id lives under subject (its message there was rewritten without it).
func (x *dkIndex) drop(id, subject string) {
	loc, ok := x.locs[id]
	if !ok {
		return
	}
	if loc.subject != subject {
		loc.also = slices.DeleteFunc(loc.also, func(s string) bool { return s == subject })
		x.locs[id] = loc
		return
	}
	x.forget(id)
}

// forget removes id and zeroes its key.
func (x *dkIndex) forget(id string) {
	if k, ok := x.keys[id]; ok {
		clear(k)
		delete(x.keys, id)
	}
	loc, ok := x.locs[id]
	if !ok {
		return
	}
	delete(x.locs, id)
	if s := x.live[loc.seq]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(x.live, loc.seq)
		}
	}
}

// advance moves the high-water mark over a message this node stored itself.
func (x *dkIndex) advance(seq uint64) {
	if seq == x.hw+1 {
		x.hw = seq
	}
}

// --- reading the stream ---

// Load reads every key in the stream into memory, replacing what was there, and (re)starts the
// writer after a Close; the unseal path calls it once. It also finishes shreds a crash
// interrupted: a message superseded by a newer one on its subject is securely deleted. Keys
// stored concurrently by other nodes may be missed; Fetch finds them.
// Errors: ErrSealed without a keyring, ErrCorrupt for a message that does not decode or a key
// the keyring does not open.
func (d *DataKeys) Load(ctx context.Context, keyring *Keyring) error {
	if keyring == nil {
		return ErrSealed
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	idx := newDKIndex()
	var superseded []uint64
	last, err := d.scan(ctx, 1, func(m dkMsg) error {
		s, err := idx.add(m, keyring)
		if s != 0 {
			superseded = append(superseded, s)
		}
		return err
	})
	if err != nil {
		idx.zero()
		return err
	}
	idx.hw = last
	d.mu.Lock()
	d.idx.zero()
	d.idx, d.closed = idx, false
	d.mu.Unlock()
	d.startWriter()
	for _, seq := range superseded {
		if err := d.eraseSeq(ctx, seq); err != nil {
			return fmt.Errorf("erase superseded data key message %d: %w", seq, err)
		}
	}
	return nil
}

// scan delivers the stream's messages from sequence from, in order, until it has read
// everything the stream holds, and returns the highest sequence it knows to be covered.
//
// It reads to the end rather than to the last sequence at the start: a shred moves surviving
// keys to a newer message and only then deletes the old one, so a reader that finds the old one
// gone is sure to meet the new one further on — but only if it goes on until it catches up.
func (d *DataKeys) scan(ctx context.Context, from uint64, fn func(dkMsg) error) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", DataKeysStream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last < from {
		return last, nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := d.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", DataKeysStream, err)
	}
	for {
		// NoWait: the server hands over what it holds and says when there is nothing more, so
		// an empty selection ends the scan instead of waiting for messages that never come.
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", DataKeysStream, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return 0, fmt.Errorf("read %s: metadata: %w", DataKeysStream, err)
			}
			seq := md.Sequence.Stream
			entries, err := decodeDataKeys(m.Subject(), m.Data())
			if err != nil {
				return 0, fmt.Errorf("data key message %d: %w", seq, err)
			}
			if err := fn(dkMsg{subject: m.Subject(), seq: seq, stored: md.Timestamp, entries: entries}); err != nil {
				return 0, err
			}
			last = max(last, seq)
			done = md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return 0, fmt.Errorf("read %s: %w", DataKeysStream, err)
		}
		if done || n == 0 {
			return last, ctx.Err()
		}
	}
}

// catchUp indexes (locations only) the messages stored since the index's high-water mark:
// keys other nodes stored, and rewrites by their shreds.
func (d *DataKeys) catchUp(ctx context.Context) error {
	d.mu.RLock()
	from := d.idx.hw + 1
	d.mu.RUnlock()
	var msgs []dkMsg
	last, err := d.scan(ctx, from, func(m dkMsg) error {
		for i := range m.entries {
			m.entries[i].sealed = nil
		}
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		d.idx.place(m)
	}
	d.idx.hw = max(d.idx.hw, last)
	return nil
}

// dkCopy is the live copy of one key in the stream.
type dkCopy struct {
	seq    uint64
	stored time.Time
	sealed []byte
}

// current reads the whole stream and returns each key's live copy: from the latest message of
// each subject, and of an id stored under two subjects the later one.
func (d *DataKeys) current(ctx context.Context) (map[string]dkCopy, error) {
	latest := map[string]dkMsg{}
	if _, err := d.scan(ctx, 1, func(m dkMsg) error { latest[m.subject] = m; return nil }); err != nil {
		return nil, err
	}
	out := map[string]dkCopy{}
	for _, m := range latest {
		for _, e := range m.entries {
			if c, ok := out[e.id]; !ok || c.seq < m.seq {
				out[e.id] = dkCopy{seq: m.seq, stored: m.stored, sealed: e.sealed}
			}
		}
	}
	return out, nil
}

// --- writing ---

type newReq struct {
	id     string
	key    []byte // plaintext; the index owns it once stored
	sealed []byte
	out    []byte // the caller's copy, set before done
	done   chan error
}

func (r *newReq) size() int { return 2*binary.MaxVarintLen32 + len(r.id) + len(r.sealed) }

// New generates a random data key under id, stores it sealed and returns it once it is durable
// (on disk, or replicated), in a message shared with the keys of concurrent New calls.
// Errors: ErrSealed without a keyring or after Close, ErrConflict if this node knows id already,
// or ctx's error — after which the key may or may not be stored (an orphan that reconciliation
// shreds). The caller owns the returned slice and should clear it when done.
//
// Uniqueness is checked against this node's memory only: the first layout fenced each key's own
// subject with an expected sequence of 0, but batches share one subject per flush, and callers
// use random ids (kv: 128 bits), so a collision across nodes is not a case to pay for.
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
	case d.closed:
		d.mu.Unlock()
		return nil, ErrSealed
	case inflight || d.idx.known(id):
		d.mu.Unlock()
		return nil, fmt.Errorf("data key %s exists: %w", id, ErrConflict)
	}
	d.pending[id] = struct{}{}
	d.mu.Unlock()
	unreserve := func() {
		d.mu.Lock()
		delete(d.pending, id)
		d.mu.Unlock()
	}
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		unreserve()
		return nil, fmt.Errorf("data key: %w", err)
	}
	sealed, err := keyring.Seal(key, adDataKey(id))
	if err != nil {
		clear(key)
		unreserve()
		return nil, fmt.Errorf("seal data key %s: %w", id, err)
	}
	r := &newReq{id: id, key: key, sealed: sealed, done: make(chan error, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		clear(key)
		unreserve()
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

// startWriter starts the writer unless it runs. Called with opMu held exclusively (or before d
// is shared).
func (d *DataKeys) startWriter() {
	if d.running {
		return
	}
	d.quit, d.done, d.running = make(chan struct{}), make(chan struct{}), true
	go d.writer(d.quit, d.done)
}

// stopWriter stops the writer and waits for it. Called with opMu held exclusively.
func (d *DataKeys) stopWriter() {
	if !d.running {
		return
	}
	close(d.quit)
	<-d.done
	d.running = false
}

// writer is the one goroutine that stores new keys. It takes whatever New calls queued up while
// the previous message was being stored, so messages grow with load and fsyncs are shared; and
// it lingers as the log's writer does (see Log.writer): until about as many requests as last
// time have arrived, but no longer than a quarter of the last store (capped at 500µs).
func (d *DataKeys) writer(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var carry *newReq
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lastReqs, lastStore := 0, time.Duration(0)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-d.reqs:
			case <-quit:
				d.drain()
				return
			}
		}
		batch := []*newReq{first}
		size := first.size()
		wait := min(lastStore/4, 500*time.Microsecond)
		lingering := false
	collect:
		for len(batch) < dataKeyBatchKeys {
			var r *newReq
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
			if size+r.size() > dataKeyBatchBytes {
				carry = r
				break collect
			}
			batch = append(batch, r)
			size += r.size()
		}
		if lingering && !linger.Stop() {
			<-linger.C
		}
		t0 := time.Now()
		d.commit(batch)
		lastReqs, lastStore = len(batch), time.Since(t0)
	}
}

// drain answers requests whose callers gave up before Close (no caller waits on the others).
func (d *DataKeys) drain() {
	for {
		select {
		case r := <-d.reqs:
			d.fail([]*newReq{r}, ErrSealed)
		default:
			return
		}
	}
}

func (d *DataKeys) fail(batch []*newReq, err error) {
	d.mu.Lock()
	for _, r := range batch {
		delete(d.pending, r.id)
		clear(r.key)
	}
	d.mu.Unlock()
	for _, r := range batch {
		r.done <- err
	}
}

// commit stores one batch as one message and indexes its keys.
func (d *DataKeys) commit(batch []*newReq) {
	batchID := newID()
	subject := dataKeyBatchSubject + batchID
	entries := make([]dkEntry, len(batch))
	for i, r := range batch {
		entries[i] = dkEntry{id: r.id, sealed: r.sealed}
	}
	seq, err := d.store(context.Background(), subject, batchID, encodeDataKeys(entries), nil)
	if err != nil {
		d.fail(batch, err)
		return
	}
	d.mu.Lock()
	if d.closed { // only callers that gave up are left; the keys are orphans for reconciliation
		d.mu.Unlock()
		d.fail(batch, ErrSealed)
		return
	}
	d.idx.place(dkMsg{subject: subject, seq: seq, stored: time.Now(), entries: entries})
	for _, r := range batch {
		delete(d.pending, r.id)
		d.idx.keys[r.id] = r.key
		r.out = append([]byte(nil), r.key...)
	}
	d.idx.advance(seq)
	d.mu.Unlock()
	for _, r := range batch {
		r.done <- nil
	}
}

// store publishes one message exactly once and returns its sequence. A retry after a timeout
// carries the same Nats-Msg-Id, so the server acknowledges the first copy instead of storing a
// second. With fence, the message is stored only if the latest message on subject is at *fence;
// errFenced if not.
func (d *DataKeys) store(ctx context.Context, subject, msgID string, data []byte, fence *uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, commitDeadline)
	defer cancel()
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(DataKeysStream), jetstream.WithMsgID(msgID)}
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
	k, ok := d.idx.keys[id]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), k...), true
}

// Fetch is Get, falling back to the stream for a key another node stored after Load.
// Errors: ErrNoDataKey when the stream does not hold it (shredded, or never stored), ErrSealed,
// ErrCorrupt when the keyring does not open it.
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
	loc, ok := d.location(id)
	if !ok {
		if err := d.catchUp(ctx); err != nil {
			return nil, fmt.Errorf("read data key %s: %w", id, err)
		}
		if loc, ok = d.location(id); !ok {
			return nil, fmt.Errorf("data key %s: %w", id, ErrNoDataKey)
		}
	}
	m, err := d.stream.GetLastMsgForSubject(ctx, loc.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		d.forget(id)
		return nil, fmt.Errorf("data key %s: %w", id, ErrNoDataKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read data key %s: %w", id, err)
	}
	entries, err := decodeDataKeys(loc.subject, m.Data)
	if err != nil {
		return nil, fmt.Errorf("data key message %d: %w", m.Sequence, err)
	}
	i := slices.IndexFunc(entries, func(e dkEntry) bool { return e.id == id })
	if i < 0 {
		d.forget(id) // shredded by another node
		return nil, fmt.Errorf("data key %s: %w", id, ErrNoDataKey)
	}
	k, err := keyring.Open(entries[i].sealed, adDataKey(id))
	if err != nil {
		return nil, fmt.Errorf("data key %s at seq %d does not open: %w", id, m.Sequence, ErrCorrupt)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		clear(k)
		return nil, ErrSealed
	}
	d.idx.place(dkMsg{subject: loc.subject, seq: m.Sequence, stored: m.Time, entries: entries})
	if have, ok := d.idx.keys[id]; ok {
		clear(k)
		k = have
	} else if l, ok := d.idx.locs[id]; ok && l.subject == loc.subject {
		d.idx.keys[id] = k
	}
	return append([]byte(nil), k...), nil
}

func (d *DataKeys) location(id string) (dkLoc, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	loc, ok := d.idx.locs[id]
	return loc, ok
}

func (d *DataKeys) forget(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		d.idx.forget(id)
	}
}

// --- shredding ---

// Shred destroys the key with id (see ShredMany). Shredding a key that is already gone, or never
// existed, is not an error.
func (d *DataKeys) Shred(ctx context.Context, id string) error {
	return d.ShredMany(ctx, []string{id})
}

// ShredMany destroys the keys with ids: each message holding one of them is rewritten once —
// its other keys stored again in a newer message on the same subject — and then securely
// deleted (JetStream overwrites the record with random bytes on every replica); the keys are
// zeroed in memory. Keys that are already gone, or never existed, are skipped. After ShredMany
// returns nil, nothing sealed under those keys can be opened again. On an error some keys may
// be destroyed and others not; calling again is safe. A crash between the rewrite and the
// delete leaves the old message as a superseded copy, which Load and any later shred touching
// that message erase; the surviving keys are never lost.
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
	groups, missing := d.group(ids)
	if missing {
		if err := d.catchUp(ctx); err != nil {
			return fmt.Errorf("shred data keys: %w", err)
		}
		groups, _ = d.group(ids)
	}
	subjects := make([]string, 0, len(groups))
	for s := range groups {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	failed := map[string]bool{}
	var errs []error
	for _, s := range subjects {
		if err := d.shredIn(ctx, s, groups[s]); err != nil {
			for _, id := range groups[s] {
				failed[id] = true
			}
			errs = append(errs, fmt.Errorf("shred data key %s: %w", describeIDs(groups[s]), err))
		}
	}
	done := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return failed[id] })
	d.forget(done...)
	return errors.Join(errs...)
}

func describeIDs(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return fmt.Sprintf("%s and %d more", ids[0], len(ids)-1)
}

// group maps each subject holding one of ids to the ids it holds; missing reports an id the
// index does not know.
func (d *DataKeys) group(ids []string) (groups map[string][]string, missing bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	groups = map[string][]string{}
	for _, id := range ids {
		loc, ok := d.idx.locs[id]
		if !ok {
			missing = true
			continue
		}
		for _, s := range append([]string{loc.subject}, loc.also...) {
			if !slices.Contains(groups[s], id) {
				groups[s] = append(groups[s], id)
			}
		}
	}
	return groups, missing
}

// shredIn removes ids from the message on subject. The latest message on a subject is the live
// one; every older one is a superset of it and may hold a victim, so all of them are erased.
func (d *DataKeys) shredIn(ctx context.Context, subject string, ids []string) error {
	mu := &d.shredMus[stripe(subject)]
	mu.Lock()
	defer mu.Unlock()
	victims := make(map[string]bool, len(ids))
	for _, id := range ids {
		victims[id] = true
	}
	for {
		m, err := d.stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		entries, err := decodeDataKeys(subject, m.Data)
		if err != nil {
			return fmt.Errorf("data key message %d: %w", m.Sequence, err)
		}
		survivors := slices.DeleteFunc(slices.Clone(entries), func(e dkEntry) bool { return victims[e.id] })
		limit := m.Sequence // erase every message on subject before limit
		switch {
		case len(survivors) == len(entries): // the latest holds none: erase older copies only
		case len(survivors) > 0:
			fence := m.Sequence
			seq, err := d.store(ctx, subject, newID(), encodeDataKeys(survivors), &fence)
			if errors.Is(err, errFenced) {
				continue // another node rewrote it first: look again
			}
			if err != nil {
				return fmt.Errorf("store surviving keys: %w", err)
			}
			d.mu.Lock()
			d.idx.place(dkMsg{subject: subject, seq: seq, stored: time.Now(), entries: survivors})
			d.idx.advance(seq)
			d.mu.Unlock()
			limit = seq
		default:
			limit = m.Sequence + 1
		}
		if err := d.eraseBefore(ctx, subject, limit); err != nil {
			return err
		}
		if limit > m.Sequence && len(survivors) == 0 {
			// We deleted the latest message; another node may have rewritten it in between,
			// still holding a victim. Look again.
			continue
		}
		return nil
	}
}

// stripe picks the shred lock of a subject (FNV-1a), so shreds of one message queue behind each
// other while shreds of different messages run in parallel.
func stripe(subject string) int {
	h := uint32(2166136261)
	for i := 0; i < len(subject); i++ {
		h = (h ^ uint32(subject[i])) * 16777619
	}
	return int(h % dataKeyShredStripes)
}

// eraseBefore securely deletes every message on subject with a sequence below limit, oldest
// first, so an interrupted erase leaves the latest message in place.
func (d *DataKeys) eraseBefore(ctx context.Context, subject string, limit uint64) error {
	for next := uint64(1); next < limit; {
		m, err := d.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find message on %s: %w", subject, err)
		}
		if m.Sequence >= limit {
			return nil
		}
		if err := d.eraseSeq(ctx, m.Sequence); err != nil {
			return fmt.Errorf("erase message %d: %w", m.Sequence, err)
		}
		next = m.Sequence + 1
	}
	return nil
}

// eraseSeq securely deletes the message at seq; a message already gone counts as erased.
func (d *DataKeys) eraseSeq(ctx context.Context, seq uint64) error {
	err := d.stream.SecureDeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The delete API does not say *why* it failed; a message that is no longer there is what
	// we wanted.
	if _, gerr := d.stream.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

// --- listing, snapshots ---

// DataKeyInfo describes one stored key, without the key.
type DataKeyInfo struct {
	ID string
	// Seq is the stream sequence of the message holding the key, shared with the keys stored
	// alongside it.
	Seq    uint64
	Stored time.Time
}

// List reads from the stream every key whose id starts with prefix followed by a dot ("" for
// all), sorted by id, so callers can shred a whole group or reconcile against their views.
func (d *DataKeys) List(ctx context.Context, prefix string) ([]DataKeyInfo, error) {
	if prefix != "" && !validDataKeyID(prefix) {
		return nil, badID(prefix)
	}
	cur, err := d.current(ctx)
	if err != nil {
		return nil, err
	}
	var out []DataKeyInfo
	for id, c := range cur {
		if prefix == "" || strings.HasPrefix(id, prefix+".") {
			out = append(out, DataKeyInfo{ID: id, Seq: c.seq, Stored: c.stored})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Len is the number of keys in memory.
func (d *DataKeys) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.idx.keys)
}

type dataKeysSnapshot struct {
	Version int               `json:"v"`
	Keys    map[string][]byte `json:"keys"` // id → key sealed under the keyring, as in the stream
}

// Snapshot returns the keys the stream holds now — live keys only, whichever node stored them —
// each still sealed under the keyring. Take it after the views' snapshot: a key shredded in
// between is then absent, and a key created in between is merely unused.
func (d *DataKeys) Snapshot(ctx context.Context) ([]byte, error) {
	cur, err := d.current(ctx)
	if err != nil {
		return nil, err
	}
	s := dataKeysSnapshot{Version: 1, Keys: make(map[string][]byte, len(cur))}
	for id, c := range cur {
		s.Keys[id] = c.sealed
	}
	return json.Marshal(s)
}

// Restore stores the keys of a snapshot that the stream lacks (a restore into an empty data
// dir), packed into as few messages as the size limits allow, and loads them into memory. Keys
// are checked against keyring before anything is stored.
// Errors: ErrCorrupt for a snapshot that does not decode or a key that does not open.
func (d *DataKeys) Restore(ctx context.Context, keyring *Keyring, data []byte) error {
	if keyring == nil {
		return ErrSealed
	}
	var s dataKeysSnapshot
	if err := json.Unmarshal(data, &s); err != nil || s.Version != 1 {
		return fmt.Errorf("restore data keys: %w", ErrCorrupt)
	}
	for id, sealed := range s.Keys {
		if !validDataKeyID(id) {
			return fmt.Errorf("restore data keys: %w: %w", badID(id), ErrCorrupt)
		}
		k, err := keyring.Open(sealed, adDataKey(id))
		if err != nil {
			return fmt.Errorf("restore data keys: key %s does not open: %w", id, ErrCorrupt)
		}
		clear(k)
	}
	have, err := d.current(ctx)
	if err != nil {
		return fmt.Errorf("restore data keys: %w", err)
	}
	var missing []string
	for id := range s.Keys {
		if _, ok := have[id]; !ok {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	var batch []dkEntry
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		batchID := newID()
		if _, err := d.store(ctx, dataKeyBatchSubject+batchID, batchID, encodeDataKeys(batch), nil); err != nil {
			return fmt.Errorf("restore data keys: %w", err)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for _, id := range missing {
		e := dkEntry{id: id, sealed: s.Keys[id]}
		n := 2*binary.MaxVarintLen32 + len(id) + len(e.sealed)
		if len(batch) == dataKeyBatchKeys || size+n > dataKeyBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		batch, size = append(batch, e), size+n
	}
	if err := flush(); err != nil {
		return err
	}
	return d.Load(ctx, keyring)
}

// Close zeroes every key in memory (seal) and stops the writer, after the New calls in flight
// are answered. The stream is untouched; Load brings the keys back.
func (d *DataKeys) Close() error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.stopWriter()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idx.zero()
	d.idx = newDKIndex()
	clear(d.pending)
	return nil
}
