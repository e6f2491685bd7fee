package ledger

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Event is one mutation, as the deciding code builds it. Payload is plaintext in memory only;
// the log stores it sealed under the keyring with the encoded header as associated data.
type Event struct {
	ID      string    // unique, random; set by Append when empty
	Type    string    // past tense and versioned: "kv.version.written.v1"
	Subject string    // the aggregate, as an opaque subject-safe token (see SubjectFor)
	Time    time.Time // decision time; set by Append when zero
	Actor   string    // accessor of the token that caused it, "" for the system
	Request string    // request id, ties the event to its audit records
	Payload []byte

	// Raw marks seal-state events whose payload is already wrapped under the root key (or holds
	// nothing secret) and so is stored as given: they must be readable before unseal. Only the
	// seal and keyring events use it.
	Raw bool
}

// Position is where an event sits in the log: the JetStream sequence of its batch and its index
// inside that batch.
type Position struct {
	Seq   uint64
	Index uint32
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	return p.Seq < q.Seq || (p.Seq == q.Seq && p.Index < q.Index)
}

func (p Position) String() string { return fmt.Sprintf("%d.%d", p.Seq, p.Index) }

// Record is an event as read back: header, opened payload and position.
type Record struct {
	Event
	Pos  Position
	Term uint32 // key term that sealed the payload; 0 for Raw events
}

// SubjectFor turns an aggregate kind and its identity (mount UUID + path, policy name, …) into a
// subject token that names no secret path in the clear yet is stable for the aggregate.
func SubjectFor(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return kind + "." + hex.EncodeToString(h.Sum(nil)[:12])
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ledger: crypto/rand unavailable")
	}
	return hex.EncodeToString(b[:])
}

// header is the plaintext part of a stored event. Its encoding is the associated data of the
// sealed payload, so a payload cannot be moved under another header.
type header struct {
	ID, Type, Subject, Actor, Request string
	Time                              int64
	Term                              uint32
}

func (h header) encode(dst []byte) []byte {
	for _, s := range []string{h.ID, h.Type, h.Subject, h.Actor, h.Request} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendVarint(dst, h.Time)
	return binary.AppendUvarint(dst, uint64(h.Term))
}

// encodedSizeBound is at least len(h.encode(nil)).
func (h header) encodedSizeBound() int {
	return len(h.ID) + len(h.Type) + len(h.Subject) + len(h.Actor) + len(h.Request) + 5*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func decodeHeader(b []byte) (header, bool) {
	r := reader{b: b}
	h := header{
		ID: string(r.bytes()), Type: string(r.bytes()), Subject: string(r.bytes()),
		Actor: string(r.bytes()), Request: string(r.bytes()),
	}
	h.Time = r.varint()
	h.Term = uint32(r.uvarint())
	return h, !r.err && len(r.b) == 0
}

// adPrefix separates event associated data from every other use of the keyring.
const adPrefix = "ledger event v1\x00"

func eventAD(hdr []byte) []byte { return append([]byte(adPrefix), hdr...) }

// StoredEvent is an event as it sits in a batch: encoded header and sealed payload.
type StoredEvent struct {
	hdr     header
	rawHdr  []byte
	payload []byte
}

// Type is readable without keys, so replay tools can count and filter events while sealed.
func (s StoredEvent) Type() string { return s.hdr.Type }

// Subject is readable without keys.
func (s StoredEvent) Subject() string { return s.hdr.Subject }

// Term is the key term that sealed the payload, 0 for raw events.
func (s StoredEvent) Term() uint32 { return s.hdr.Term }

// sealEvent encodes the header and seals the payload. Raw events keep their payload as given.
func sealEvent(e *Event, k *Keyring) (StoredEvent, error) { return sealEventInto(nil, e, k) }

// sealEventInto is sealEvent building the header and the sealed payload in buf's room (each
// in a new buffer when it does not fit), so the caller can reuse buf once the event is stored.
func sealEventInto(buf []byte, e *Event, k *Keyring) (StoredEvent, error) {
	h := header{ID: e.ID, Type: e.Type, Subject: e.Subject, Actor: e.Actor, Request: e.Request, Time: e.Time.UnixNano()}
	if e.Raw {
		raw := h.encode(nil)
		return StoredEvent{hdr: h, rawHdr: raw, payload: e.Payload}, nil
	}
	if k == nil {
		return StoredEvent{}, ErrSealed
	}
	h.Term = k.Term()
	// The associated data is the prefix followed by the header: both built in one buffer, the
	// header kept as the slice after the prefix.
	// The ciphertext follows them in the same buffer when there is room.
	if bound := len(adPrefix) + h.encodedSizeBound(); cap(buf) < bound {
		buf = make([]byte, 0, bound)
	}
	ad := h.encode(append(buf[:0], adPrefix...))
	raw := ad[len(adPrefix):len(ad):len(ad)]
	ct, err := k.SealInto(ad[len(ad):len(ad)], e.Payload, ad)
	if err != nil {
		return StoredEvent{}, fmt.Errorf("seal event %s: %w", e.Type, err)
	}
	return StoredEvent{hdr: h, rawHdr: raw, payload: ct}, nil
}

// Open authenticates and decrypts a stored event. A payload that fails authentication — altered,
// or moved from another event — is an ErrCorrupt naming its position, never skipped.
func (s StoredEvent) Open(k *Keyring, pos Position) (Record, error) {
	rec := Record{Pos: pos, Term: s.hdr.Term, Event: Event{
		ID: s.hdr.ID, Type: s.hdr.Type, Subject: s.hdr.Subject, Actor: s.hdr.Actor,
		Request: s.hdr.Request, Time: time.Unix(0, s.hdr.Time).UTC(), Raw: s.hdr.Term == 0,
	}}
	if s.hdr.Term == 0 {
		rec.Payload = s.payload
		return rec, nil
	}
	if k == nil {
		return Record{}, ErrSealed
	}
	pt, err := k.Open(s.payload, eventAD(s.rawHdr))
	if err != nil {
		return Record{}, fmt.Errorf("event at %s (%s): payload does not authenticate: %w", pos, s.hdr.Type, ErrCorrupt)
	}
	rec.Payload = pt
	return rec, nil
}

// Batch is one JetStream message: the events of one group commit, chained to the previous batch
// by its hash so that a lost, reordered or edited message is detectable.
type Batch struct {
	Seq    uint64
	Prev   [32]byte // hash of the previous batch's message data
	Hash   [32]byte // hash of this batch's message data
	Events []StoredEvent
	// Epoch is the leader epoch the batch was appended under (0 without HA).
	Epoch uint64
}

// batchMagic names the batch encoding; a change of format changes it.
var batchMagic = [4]byte{'L', 'G', 'B', '1'}

// encodeBatch encodes a batch message: the magic, the hash of the batch before it, the events.
func encodeBatch(prev [32]byte, evs []StoredEvent) []byte { return encodeBatchInto(nil, prev, evs) }

// encodeBatchInto is encodeBatch writing into buf's room (growing it when it is too small).
func encodeBatchInto(buf []byte, prev [32]byte, evs []StoredEvent) []byte {
	size := 4 + 32 + binary.MaxVarintLen64
	for _, e := range evs {
		size += len(e.rawHdr) + len(e.payload) + 2*binary.MaxVarintLen64
	}
	b := buf[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = append(b, batchMagic[:]...)
	b = append(b, prev[:]...)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		b = binary.AppendUvarint(b, uint64(len(e.rawHdr)))
		b = append(b, e.rawHdr...)
		b = binary.AppendUvarint(b, uint64(len(e.payload)))
		b = append(b, e.payload...)
	}
	return b
}

// DecodeBatch parses a stored message. Errors wrap ErrCorrupt and name the sequence.
func DecodeBatch(seq uint64, data []byte) (Batch, error) {
	bad := func(what string) (Batch, error) {
		return Batch{}, fmt.Errorf("batch at seq %d: %s: %w", seq, what, ErrCorrupt)
	}
	if len(data) < 36 || [4]byte(data[:4]) != batchMagic {
		return bad("unknown format (not a ledger batch or written by an incompatible version)")
	}
	bt := Batch{Seq: seq, Hash: sha256.Sum256(data)}
	copy(bt.Prev[:], data[4:36])
	r := reader{b: data[36:]}
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		return bad("event count")
	}
	bt.Events = make([]StoredEvent, 0, n)
	for i := uint64(0); i < n; i++ {
		raw := r.bytes()
		payload := r.bytes()
		if r.err {
			return bad(fmt.Sprintf("event %d truncated", i))
		}
		h, ok := decodeHeader(raw)
		if !ok {
			return bad(fmt.Sprintf("event %d header", i))
		}
		bt.Events = append(bt.Events, StoredEvent{hdr: h, rawHdr: raw, payload: payload})
	}
	if len(r.b) != 0 {
		return bad("trailing bytes")
	}
	return bt, nil
}
