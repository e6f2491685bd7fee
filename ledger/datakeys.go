package ledger

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Data keys make destruction possible in an immutable log (crypto-shredding). A value that must
// be destroyable on demand (a KV version) is encrypted with its own random 256-bit data key; the
// log carries only that ciphertext and the key's id. The key lives in LEDGER_DATAKEYS, a stream
// apart from the log that allows deletes, one message per key, sealed under the keyring.
// Destroying the value = securely deleting that one message: JetStream overwrites the record on
// disk with random bytes, so the ciphertext left in the log (and in older snapshots) can no
// longer be opened by anyone, even a holder of the root key. The log still records *that* the
// destruction happened.
const (
	// DataKeysStream is the stream that holds the data keys.
	DataKeysStream = "LEDGER_DATAKEYS"
	// DataKeySubjectPrefix + id is the subject of one key's message.
	DataKeySubjectPrefix = "ledger.datakey."
	// DataKeySize is the size of a data key (AES-256).
	DataKeySize = 32

	dataKeyMaxID = 200
)

// ErrNoDataKey: the data key is not in the stream: it was shredded, or never stored.
var ErrNoDataKey = errors.New("ledger: data key not found")

// adDataKey binds a sealed data key to its id, so one key's message cannot stand in for another's.
func adDataKey(id string) []byte { return []byte("ledger datakey v1\x00" + id) }

// DataKeys is the in-memory index of the data keys, backed by the LEDGER_DATAKEYS stream. It
// holds every key opened (plaintext) while unsealed; Close zeroes them. Safe for concurrent use.
//
// Every node keeps its own DataKeys over the shared stream. Keys stored by another node after
// Load are not in memory; Fetch reads them from the stream. A key shredded by another node stays
// in this node's memory until Close, but not on disk and not in any later Snapshot.
type DataKeys struct {
	js     jetstream.JetStream
	stream jetstream.Stream

	mu     sync.RWMutex
	keys   map[string][]byte // id → plaintext key
	seqs   map[string]uint64 // id → stream sequence of its message
	closed bool
}

// OpenDataKeys creates (or updates) the LEDGER_DATAKEYS stream: file storage, one message per
// key, deletes allowed (secure deletes are how keys are shredded), purges denied (a purge would
// destroy every value at once, and would not overwrite the bytes). Replicas as for the log.
// Call Load before use.
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
	return &DataKeys{js: js, stream: st, keys: map[string][]byte{}, seqs: map[string]uint64{}}, nil
}

// validDataKeyID accepts dot-separated tokens of letters, digits, '-' and '_': each id is one
// subject, and a caller may group its ids under a prefix (a mount) to find them again with List.
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

// Load reads every key in the stream into memory, replacing what was there; the unseal path
// calls it once. Keys stored concurrently by other nodes may be missed; Fetch finds them.
// Errors: ErrCorrupt for a key the keyring does not open.
func (d *DataKeys) Load(ctx context.Context, keyring *Keyring) error {
	if keyring == nil {
		return ErrSealed
	}
	keys := map[string][]byte{}
	seqs := map[string]uint64{}
	err := d.scan(ctx, "", func(id string, seq uint64, _ time.Time, sealed []byte) error {
		k, err := keyring.Open(sealed, adDataKey(id))
		if err != nil {
			return fmt.Errorf("data key %s at seq %d does not open: %w", id, seq, ErrCorrupt)
		}
		keys[id], seqs[id] = k, seq
		return nil
	})
	if err != nil {
		for _, k := range keys {
			clear(k)
		}
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range d.keys {
		clear(k)
	}
	d.keys, d.seqs, d.closed = keys, seqs, false
	return nil
}

// scan delivers the stream's messages under prefix (an id prefix ending at a token boundary,
// "" for all) up to the last sequence at the time of the call.
func (d *DataKeys) scan(ctx context.Context, prefix string, fn func(id string, seq uint64, stored time.Time, sealed []byte) error) error {
	filter := DataKeySubjectPrefix + ">"
	if prefix != "" {
		if !validDataKeyID(prefix) {
			return badID(prefix)
		}
		filter = DataKeySubjectPrefix + prefix + ".>"
	}
	info, err := d.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", DataKeysStream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := d.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", DataKeysStream, err)
	}
	for {
		// NoWait: the server hands over what it holds and says when there is nothing more, so
		// an empty selection ends the scan instead of waiting for messages that never come.
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return fmt.Errorf("read %s: %w", DataKeysStream, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			if done {
				continue // drain
			}
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: metadata: %w", DataKeysStream, err)
			}
			if md.Sequence.Stream > last {
				done = true
				continue
			}
			id := strings.TrimPrefix(m.Subject(), DataKeySubjectPrefix)
			if err := fn(id, md.Sequence.Stream, md.Timestamp, m.Data()); err != nil {
				return err
			}
			done = md.Sequence.Stream >= last || md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", DataKeysStream, err)
		}
		if done || n == 0 {
			return ctx.Err()
		}
	}
}

// New generates a random data key under id, stores it sealed and returns it once it is durable
// (on disk, or replicated). Errors: ErrSealed without a keyring, ErrConflict if id exists.
// The caller owns the returned slice and should clear it when done.
func (d *DataKeys) New(ctx context.Context, keyring *Keyring, id string) ([]byte, error) {
	if keyring == nil {
		return nil, ErrSealed
	}
	if !validDataKeyID(id) {
		return nil, badID(id)
	}
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return nil, ErrSealed
	}
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	sealed, err := keyring.Seal(key, adDataKey(id))
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("seal data key %s: %w", id, err)
	}
	ack, err := d.js.Publish(ctx, DataKeySubjectPrefix+id, sealed,
		jetstream.WithExpectStream(DataKeysStream),
		jetstream.WithExpectLastSequencePerSubject(0), // ids are never reused
		jetstream.WithMsgID(id))
	if err != nil {
		clear(key)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, fmt.Errorf("data key %s exists: %w", id, ErrConflict)
		}
		return nil, fmt.Errorf("store data key %s: %w", id, err)
	}
	if ack.Duplicate {
		clear(key)
		return nil, fmt.Errorf("data key %s exists: %w", id, ErrConflict)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		clear(key)
		return nil, ErrSealed
	}
	d.keys[id] = key
	d.seqs[id] = ack.Sequence
	return append([]byte(nil), key...), nil
}

// Get returns a copy of the key with id from memory. The caller should clear it when done.
func (d *DataKeys) Get(id string) ([]byte, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.keys[id]
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
	m, err := d.stream.GetLastMsgForSubject(ctx, DataKeySubjectPrefix+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("data key %s: %w", id, ErrNoDataKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read data key %s: %w", id, err)
	}
	k, err := keyring.Open(m.Data, adDataKey(id))
	if err != nil {
		return nil, fmt.Errorf("data key %s at seq %d does not open: %w", id, m.Sequence, ErrCorrupt)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		clear(k)
		return nil, ErrSealed
	}
	if _, ok := d.keys[id]; !ok {
		d.keys[id], d.seqs[id] = k, m.Sequence
	}
	return append([]byte(nil), k...), nil
}

// Shred destroys the key with id: its message is securely deleted (JetStream overwrites the
// record with random bytes on every replica) and the key is zeroed in memory. Shredding a key
// that is already gone, or never existed, is not an error. After Shred returns nil, nothing
// sealed under the key can be opened again.
func (d *DataKeys) Shred(ctx context.Context, id string) error {
	if !validDataKeyID(id) {
		return badID(id)
	}
	d.mu.RLock()
	seq, known := d.seqs[id]
	d.mu.RUnlock()
	if !known {
		m, err := d.stream.GetLastMsgForSubject(ctx, DataKeySubjectPrefix+id)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			d.forget(id)
			return nil
		case err != nil:
			return fmt.Errorf("shred data key %s: %w", id, err)
		}
		seq = m.Sequence
	}
	if err := d.eraseSeq(ctx, seq); err != nil {
		return fmt.Errorf("shred data key %s: %w", id, err)
	}
	d.forget(id)
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

func (d *DataKeys) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.keys[id])
	delete(d.keys, id)
	delete(d.seqs, id)
}

// DataKeyInfo describes one stored key, without the key.
type DataKeyInfo struct {
	ID     string
	Seq    uint64
	Stored time.Time
}

// List reads from the stream every key whose id starts with prefix followed by a dot ("" for
// all), sorted by id, so callers can shred a whole group or reconcile against their views.
func (d *DataKeys) List(ctx context.Context, prefix string) ([]DataKeyInfo, error) {
	var out []DataKeyInfo
	err := d.scan(ctx, prefix, func(id string, seq uint64, stored time.Time, _ []byte) error {
		out = append(out, DataKeyInfo{ID: id, Seq: seq, Stored: stored})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Len is the number of keys in memory.
func (d *DataKeys) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.keys)
}

type dataKeysSnapshot struct {
	Version int               `json:"v"`
	Keys    map[string][]byte `json:"keys"` // id → key sealed under the keyring, as in the stream
}

// Snapshot returns the keys the stream holds now — live keys only, whichever node stored them —
// each still sealed under the keyring. Take it after the views' snapshot: a key shredded in
// between is then absent, and a key created in between is merely unused.
func (d *DataKeys) Snapshot(ctx context.Context) ([]byte, error) {
	s := dataKeysSnapshot{Version: 1, Keys: map[string][]byte{}}
	err := d.scan(ctx, "", func(id string, _ uint64, _ time.Time, sealed []byte) error {
		s.Keys[id] = append([]byte(nil), sealed...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// Restore stores the keys of a snapshot that the stream lacks (a restore into an empty data
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
	ids := make([]string, 0, len(s.Keys))
	for id, sealed := range s.Keys {
		if !validDataKeyID(id) {
			return fmt.Errorf("restore data keys: %w: %w", badID(id), ErrCorrupt)
		}
		k, err := keyring.Open(sealed, adDataKey(id))
		if err != nil {
			return fmt.Errorf("restore data keys: key %s does not open: %w", id, ErrCorrupt)
		}
		clear(k)
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		_, err := d.js.Publish(ctx, DataKeySubjectPrefix+id, s.Keys[id],
			jetstream.WithExpectStream(DataKeysStream),
			jetstream.WithExpectLastSequencePerSubject(0))
		var apiErr *jetstream.APIError
		if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return fmt.Errorf("restore data key %s: %w", id, err)
		}
	}
	return d.Load(ctx, keyring)
}

// Close zeroes every key in memory (seal). The stream is untouched; Load brings the keys back.
func (d *DataKeys) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range d.keys {
		clear(k)
	}
	d.keys, d.seqs, d.closed = map[string][]byte{}, map[string]uint64{}, true
	return nil
}
