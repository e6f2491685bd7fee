package ledger

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"unsafe"
)

// This file holds the key tree of DataKeys (see datakeys.go for why it exists): its in-memory
// shape, the wire format of its two kinds of message, and the planning of one flush — the only
// place the tree changes.

// Tree parameters. A destroy re-wraps at most dkGroupSize-1 surviving data keys and
// dkShelfSize-1 surviving group keys, so its cost does not grow with the number of keys.
// 64×64 keeps one shelf per 4,096 keys: 1M keys need ~250 shelves, a 10 KB root table.
const (
	dkGroupSize = 64 // data keys (leaves) per group key
	dkShelfSize = 64 // group keys per shelf key
	// dkRootMaxTable bounds the root table: two of them (the new one and the one being erased)
	// must fit the root stream's byte limit. 1,200 shelves ≈ 4.9M keys.
	dkRootMaxTable = 48_000
)

const (
	dkKindLeaf  = 0
	dkKindGroup = 1
	wrapsFormat = 2
	rootFormat  = 1
)

// dkRef is one stored wrap of a node's key: under which parent, in which message of the wraps
// subject. A node normally has exactly one; two only after a crash between a flush's wraps and
// its root (both open the same key, and a destroy retires both parents).
type dkRef struct{ parent, seq uint64 }

// dkLeaf is one data key.
type dkLeaf struct {
	node    uint64
	id      string
	key     []byte // plaintext data key; zeroed when shredded or on Close
	created int64  // unix nanoseconds of New (kept across re-wraps; Reconcile's age test)
	refs    []dkRef
	// gcm: the key's AES-GCM, kept for the most recently opened keys (DataKeys.OpenGCM); nil
	// otherwise, and dropped with the key (forget).
	gcm atomic.Pointer[leafGCM]
}

type leafGCM struct{ aead cipher.AEAD }

// forget zeroes the key and drops its cipher: the leaf is leaving the tree (shred, reload,
// Close).
func (l *dkLeaf) forget() {
	clear(l.key)
	l.gcm.Store(nil)
}

// dkInner is a group key (level 1, wraps leaves) or a shelf key (level 2, wraps groups; its
// own key lives only in the root table).
type dkInner struct {
	node   uint64
	level  uint8
	key    []byte
	aead   cipher.AEAD
	refs   []dkRef             // groups only
	leaves map[uint64]*dkLeaf  // groups: children
	groups map[uint64]*dkInner // shelves: children
}

func (n *dkInner) children() int {
	if n.level == 1 {
		return len(n.leaves)
	}
	return len(n.groups)
}

// dkTree is a node's picture of the stored tree.
type dkTree struct {
	leaves  map[string]*dkLeaf // by data key id
	groups  map[uint64]*dkInner
	shelves map[uint64]*dkInner // the root table
	// rootSeq: sequence (root stream) of the root message in force; 0 before the first.
	rootSeq uint64
	// wrapsSeq: sequence of the last message on the wraps subject; a flush's first publish is
	// fenced on it, so two writers cannot both extend the tree from the same picture.
	wrapsSeq uint64
	// msgRefs counts, per wraps message, the refs that still point into it; a message at 0
	// holds only wraps under retired parents (unopenable) and is deleted.
	msgRefs         map[uint64]int
	open, openShelf *dkInner
	// compactQ holds groups filled since their leaves were stored, a few per message as the
	// flushes came (compact.go); compactScanned, whether the tree as loaded was looked over
	// for such groups.
	compactQ       []*dkInner
	compactScanned bool
}

func newDKTree() *dkTree {
	return &dkTree{leaves: map[string]*dkLeaf{}, groups: map[uint64]*dkInner{}, shelves: map[uint64]*dkInner{}, msgRefs: map[uint64]int{}}
}

// zero clears every key in memory.
func (t *dkTree) zero() {
	for _, l := range t.leaves {
		l.forget()
	}
	for _, g := range t.groups {
		clear(g.key)
	}
	for _, s := range t.shelves {
		clear(s.key)
	}
}

// newGCM is AES-GCM under key: a group's or shelf's key wrapping its children, a data key
// opening values (DataKeys.OpenGCM).
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func newInner(level uint8, node uint64, key []byte) (*dkInner, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	n := &dkInner{node: node, level: level, key: key, aead: aead}
	if level == 1 {
		n.leaves = make(map[uint64]*dkLeaf, dkGroupSize) // groups fill up: no growth on the way
	} else {
		n.groups = map[uint64]*dkInner{}
	}
	return n, nil
}

func randomInner(level uint8) (*dkInner, error) {
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return newInner(level, randomNode(), key)
}

// randomNode: node ids are random, not counted, so ids a crashed flush used (and that may sit
// in the stream, unreferenced) are never given to another key.
func randomNode() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ledger: crypto/rand unavailable")
	}
	return binary.BigEndian.Uint64(b[:]) | 1
}

// --- wire format ---

// dkWire is one wrap on the wraps subject: the key of node (a leaf's data key or a group key)
// sealed under the key of parent (a group or a shelf).
type dkWire struct {
	kind    uint8
	node    uint64
	parent  uint64
	created int64  // leaves
	id      string // leaves
	sealed  []byte
}

func wrapAD(kind uint8, node, parent uint64, id string) []byte {
	return appendWrapAD(make([]byte, 0, 40+len(id)), kind, node, parent, id)
}

func appendWrapAD(b []byte, kind uint8, node, parent uint64, id string) []byte {
	b = append(b, "ledger datakey wrap v2\x00"...)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, node)
	b = binary.BigEndian.AppendUint64(b, parent)
	return append(b, id...)
}

func seal(aead cipher.AEAD, key, ad []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(key)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("ledger: crypto/rand unavailable")
	}
	return aead.Seal(nonce, nonce, key, ad)
}

func unseal(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	return unsealTo(nil, aead, sealed, ad)
}

// unsealTo is unseal appending the key to dst.
func unsealTo(dst []byte, aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, ErrCorrupt
	}
	k, err := aead.Open(dst, sealed[:ns], sealed[ns:], ad)
	if err != nil || len(k) != DataKeySize {
		return nil, ErrCorrupt
	}
	return k, nil
}

func (w *dkWire) size() int { return 1 + 16 + 2*binary.MaxVarintLen64 + len(w.id) + len(w.sealed) + 4 }

// encodeWraps: format byte, uvarint count, then per wrap: kind, node (8 bytes), parent (8
// bytes), for leaves varint created and uvarint-prefixed id, then uvarint-prefixed sealed key.
func encodeWraps(ws []dkWire) []byte {
	n := 1 + binary.MaxVarintLen64
	for i := range ws {
		n += ws[i].size()
	}
	b := make([]byte, 0, n)
	b = append(b, wrapsFormat)
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		b = append(b, w.kind)
		b = binary.BigEndian.AppendUint64(b, w.node)
		b = binary.BigEndian.AppendUint64(b, w.parent)
		if w.kind == dkKindLeaf {
			b = binary.AppendVarint(b, w.created)
			b = binary.AppendUvarint(b, uint64(len(w.id)))
			b = append(b, w.id...)
		}
		b = binary.AppendUvarint(b, uint64(len(w.sealed)))
		b = append(b, w.sealed...)
	}
	return b
}

// eachWrap decodes a wraps message, handing fn each wrap in order (its sealed key a slice of
// data) without collecting them: the unseal's load goes straight into its index. A message
// that does not decode is ErrCorrupt, possibly after some wraps were handed over.
func eachWrap(data []byte, fn func(dkWire)) error { return eachWrapIn(data, nil, fn) }

// eachWrapIn is eachWrap taking the leaves' ids from ids (nil: a string each).
func eachWrapIn(data []byte, ids *idArena, fn func(dkWire)) error {
	if len(data) == 0 || data[0] != wrapsFormat {
		return ErrCorrupt
	}
	data = data[1:]
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) {
		return ErrCorrupt
	}
	data = data[n:]
	bytesOf := func() ([]byte, bool) {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return nil, false
		}
		b := data[n : n+int(l)]
		data = data[n+int(l):]
		return b, true
	}
	for range count {
		if len(data) < 17 {
			return ErrCorrupt
		}
		w := dkWire{kind: data[0], node: binary.BigEndian.Uint64(data[1:]), parent: binary.BigEndian.Uint64(data[9:])}
		data = data[17:]
		switch w.kind {
		case dkKindLeaf:
			c, n := binary.Varint(data)
			if n <= 0 {
				return ErrCorrupt
			}
			w.created, data = c, data[n:]
			id, ok := bytesOf()
			if !ok || !validDataKeyID(id) {
				return ErrCorrupt
			}
			w.id = ids.str(id)
		case dkKindGroup:
		default:
			return ErrCorrupt
		}
		s, ok := bytesOf()
		if !ok {
			return ErrCorrupt
		}
		w.sealed = s
		fn(w)
	}
	if len(data) != 0 {
		return ErrCorrupt
	}
	return nil
}

func adRoot() []byte { return []byte("ledger datakey root v1") }

// encodeRoot seals the root table (every shelf id and key) under the keyring as one blob.
func encodeRoot(kr *Keyring, shelves map[uint64]*dkInner) ([]byte, error) {
	plain := make([]byte, 0, binary.MaxVarintLen64+len(shelves)*(8+DataKeySize))
	plain = binary.AppendUvarint(plain, uint64(len(shelves)))
	for _, s := range shelves {
		plain = binary.BigEndian.AppendUint64(plain, s.node)
		plain = append(plain, s.key...)
	}
	defer clear(plain)
	if len(plain) > dkRootMaxTable {
		return nil, fmt.Errorf("data key root table of %d shelves exceeds %d bytes", len(shelves), dkRootMaxTable)
	}
	sealed, err := kr.Seal(plain, adRoot())
	if err != nil {
		return nil, err
	}
	return append([]byte{rootFormat}, sealed...), nil
}

func decodeRoot(kr *Keyring, data []byte) (map[uint64]*dkInner, error) {
	if len(data) == 0 || data[0] != rootFormat {
		return nil, ErrCorrupt
	}
	plain, err := kr.Open(data[1:], adRoot())
	if err != nil {
		return nil, ErrCorrupt
	}
	defer clear(plain)
	count, n := binary.Uvarint(plain)
	if n <= 0 || uint64(len(plain)-n) != count*(8+DataKeySize) {
		return nil, ErrCorrupt
	}
	out := make(map[uint64]*dkInner, count)
	p := plain[n:]
	for range count {
		s, err := newInner(2, binary.BigEndian.Uint64(p), slices.Clone(p[8:8+DataKeySize]))
		if err != nil {
			return nil, ErrCorrupt
		}
		out[s.node] = s
		p = p[8+DataKeySize:]
	}
	return out, nil
}

// --- planning a flush ---

// dkPlan is what one flush will store and, once stored, change in the tree.
type dkPlan struct {
	t *dkTree

	victims        []*dkLeaf
	retiredGroups  map[uint64]*dkInner
	retiredShelves map[uint64]*dkInner
	newGroups      []*dkInner
	newShelves     []*dkInner
	newLeaves      []*dkLeaf // from New (or an import), not yet in the tree
	// wires to store, in order; place[i] says which leaf or group wires[i] (re)wraps.
	wires    []dkWire
	placeL   map[int]*dkLeaf
	placeG   map[int]*dkInner
	fill     map[uint64]int // children per group/shelf once the plan is applied
	open     *dkInner
	shelf    *dkInner
	rootDiff bool
	// compact: the wires re-wrap live nodes under the parents they have (compact.go), and
	// their earlier wraps under those parents are dropped. closed: groups this plan filled.
	compact bool
	closed  []*dkInner
}

// plan decides a flush: news become leaves; each victim's groups are retired, with their
// shelves, and what survives in them is re-wrapped under the open group or shelf. Retiring
// rather than re-keying in place keeps the live groups full, so the tree stays as small as
// the number of live keys allows.
func (t *dkTree) plan(news []*dkLeaf, victims []*dkLeaf) (*dkPlan, error) {
	p := &dkPlan{t: t, victims: victims, retiredGroups: map[uint64]*dkInner{}, retiredShelves: map[uint64]*dkInner{},
		newLeaves: news, placeL: map[int]*dkLeaf{}, placeG: map[int]*dkInner{}, fill: map[uint64]int{},
		open: t.open, shelf: t.openShelf}
	isVictim := make(map[uint64]bool, len(victims))
	for _, v := range victims {
		isVictim[v.node] = true
		for _, r := range v.refs {
			if g := t.groups[r.parent]; g != nil {
				p.retiredGroups[g.node] = g
			}
		}
	}
	for _, g := range p.retiredGroups {
		for _, r := range g.refs {
			if s := t.shelves[r.parent]; s != nil {
				p.retiredShelves[s.node] = s
			}
		}
	}
	if p.open != nil && p.retiredGroups[p.open.node] != nil {
		p.open = nil
	}
	if p.shelf != nil && p.retiredShelves[p.shelf.node] != nil {
		p.shelf = nil
	}
	p.rootDiff = len(p.retiredShelves) > 0

	// Survivors whose every wrap is under a retired parent move.
	var moveLeaves []*dkLeaf
	seenLeaf := map[uint64]bool{}
	for _, g := range p.retiredGroups {
		for _, l := range g.leaves {
			if isVictim[l.node] || seenLeaf[l.node] {
				continue
			}
			seenLeaf[l.node] = true
			if !slices.ContainsFunc(l.refs, func(r dkRef) bool { return p.retiredGroups[r.parent] == nil && t.groups[r.parent] != nil }) {
				moveLeaves = append(moveLeaves, l)
			}
		}
	}
	var moveGroups []*dkInner
	seenGroup := map[uint64]bool{}
	for _, s := range p.retiredShelves {
		for _, g := range s.groups {
			if p.retiredGroups[g.node] != nil || seenGroup[g.node] {
				continue
			}
			seenGroup[g.node] = true
			if !slices.ContainsFunc(g.refs, func(r dkRef) bool { return p.retiredShelves[r.parent] == nil && t.shelves[r.parent] != nil }) {
				moveGroups = append(moveGroups, g)
			}
		}
	}
	for _, g := range moveGroups {
		if err := p.placeGroup(g); err != nil {
			return nil, err
		}
	}
	for _, l := range slices.Concat(moveLeaves, news) {
		if err := p.placeLeaf(l); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *dkPlan) count(n *dkInner) int {
	if c, ok := p.fill[n.node]; ok {
		return c
	}
	return n.children()
}

func (p *dkPlan) placeGroup(g *dkInner) error {
	if p.shelf == nil || p.count(p.shelf) >= dkShelfSize {
		s, err := randomInner(2)
		if err != nil {
			return err
		}
		p.newShelves = append(p.newShelves, s)
		p.shelf, p.rootDiff = s, true
	}
	p.placeG[len(p.wires)] = g
	p.wires = append(p.wires, dkWire{kind: dkKindGroup, node: g.node, parent: p.shelf.node,
		sealed: seal(p.shelf.aead, g.key, wrapAD(dkKindGroup, g.node, p.shelf.node, ""))})
	p.fill[p.shelf.node] = p.count(p.shelf) + 1
	return nil
}

func (p *dkPlan) placeLeaf(l *dkLeaf) error {
	if p.open != nil && p.count(p.open) >= dkGroupSize {
		p.closed = append(p.closed, p.open)
	}
	if p.open == nil || p.count(p.open) >= dkGroupSize {
		g, err := randomInner(1)
		if err != nil {
			return err
		}
		p.newGroups = append(p.newGroups, g)
		if err := p.placeGroup(g); err != nil {
			return err
		}
		p.open = g
	}
	p.placeL[len(p.wires)] = l
	p.wires = append(p.wires, dkWire{kind: dkKindLeaf, node: l.node, parent: p.open.node, created: l.created, id: l.id,
		sealed: seal(p.open.aead, l.key, wrapAD(dkKindLeaf, l.node, p.open.node, l.id))})
	p.fill[p.open.node] = p.count(p.open) + 1
	return nil
}

// shelvesAfter is the root table once the plan is applied.
func (p *dkPlan) shelvesAfter() map[uint64]*dkInner {
	out := make(map[uint64]*dkInner, len(p.t.shelves)+len(p.newShelves))
	for id, s := range p.t.shelves {
		if p.retiredShelves[id] == nil {
			out[id] = s
		}
	}
	for _, s := range p.newShelves {
		out[s.node] = s
	}
	return out
}

// apply changes the tree to what the plan stored: seqs[i] is the sequence of the message that
// holds wires[i]. It returns the wraps messages no live ref points into any more. Callers hold
// the lock readers of t.leaves take.
func (p *dkPlan) apply(seqs []uint64, rootSeq uint64) (garbage []uint64) {
	t := p.t
	unref := func(seq uint64) {
		if t.msgRefs[seq]--; t.msgRefs[seq] <= 0 {
			delete(t.msgRefs, seq)
			garbage = append(garbage, seq)
		}
	}
	dropRefs := func(refs []dkRef, dead func(uint64) bool) []dkRef {
		return slices.DeleteFunc(refs, func(r dkRef) bool {
			if dead(r.parent) {
				unref(r.seq)
				return true
			}
			return false
		})
	}
	for _, v := range p.victims {
		for _, r := range v.refs {
			unref(r.seq)
			if g := t.groups[r.parent]; g != nil {
				delete(g.leaves, v.node)
			}
		}
		v.refs = nil
		v.forget()
		delete(t.leaves, v.id)
	}
	for _, g := range p.retiredGroups {
		for _, l := range g.leaves {
			l.refs = dropRefs(l.refs, func(parent uint64) bool { return parent == g.node })
		}
		for _, r := range g.refs {
			unref(r.seq)
			if s := t.shelves[r.parent]; s != nil {
				delete(s.groups, g.node)
			}
		}
		g.refs = nil
		clear(g.key)
		delete(t.groups, g.node)
	}
	for _, s := range p.retiredShelves {
		for _, g := range s.groups {
			g.refs = dropRefs(g.refs, func(parent uint64) bool { return parent == s.node })
		}
		clear(s.key)
		delete(t.shelves, s.node)
	}
	for _, s := range p.newShelves {
		t.shelves[s.node] = s
	}
	for _, g := range p.newGroups {
		t.groups[g.node] = g
	}
	for i, w := range p.wires {
		seq := seqs[i]
		t.msgRefs[seq]++
		ref := dkRef{parent: w.parent, seq: seq}
		moved := func(parent uint64) bool { return p.compact && parent == w.parent }
		switch w.kind {
		case dkKindGroup:
			g := p.placeG[i]
			g.refs = append([]dkRef{ref}, dropRefs(g.refs, moved)...)
			t.shelves[w.parent].groups[g.node] = g
		case dkKindLeaf:
			l := p.placeL[i]
			l.refs = append([]dkRef{ref}, dropRefs(l.refs, moved)...)
			t.groups[w.parent].leaves[l.node] = l
		}
	}
	for _, l := range p.newLeaves {
		t.leaves[l.id] = l
	}
	t.compactQ = append(t.compactQ, p.closed...)
	t.open, t.openShelf = p.open, p.shelf
	if rootSeq != 0 {
		t.rootSeq = rootSeq
	}
	if len(seqs) > 0 {
		t.wrapsSeq = max(t.wrapsSeq, seqs[len(seqs)-1])
	}
	// Never delete the latest wraps message: the next flush is fenced on it.
	garbage = slices.DeleteFunc(garbage, func(seq uint64) bool { return seq == t.wrapsSeq })
	return garbage
}

// --- rebuilding from the stream ---

// dkCand is one wrap read from the stream, before it is known to be in force.
type dkCand struct {
	dkWire
	seq   uint64
	older int32 // the node's previous wrap in dkCands.list, -1 for none
	head  bool  // the node's newest wrap
}

// dkCands is every wrap read from the stream, in stream order, each node's chained newest
// first. Fixed-size chunks and one index rather than a slice per node: at a million keys that
// was a million small allocations and map entries holding slices, and one growing slice
// copied itself over and over. The chains are made once every wrap is in (link): a map from
// node to its newest wrap, filled as the wraps came, was a third of the load's CPU at a
// million keys, where sorting the nodes takes a fraction of that.
type dkCands struct {
	chunks [][]dkCand
	n      int32
	byNode []dkNodeAt // every wrap's node and index, in stream order until link sorts them
	nodes  int        // distinct nodes (link)
	leaves int        // distinct nodes whose wraps are leaves (link)
	ids    idArena    // the leaves' ids
}

// dkNodeAt is a wrap's node and its index in dkCands.
type dkNodeAt struct {
	node uint64
	at   int32
}

const dkCandChunk = 4096

func (c *dkCands) at(i int32) *dkCand { return &c.chunks[i/dkCandChunk][i%dkCandChunk] }

// dkWireBytesMin is at most what any stored wrap takes in its message (a group's: kind, node,
// parent, the sealed key's length and its nonce, 32 bytes and tag), so bytes/dkWireBytesMin
// bounds the wraps a stream of that many bytes can hold.
const dkWireBytesMin = 1 + 16 + 1 + 12 + DataKeySize + 16

// dkCandsExpectMax caps what expect reserves (the sizing is a hint; beyond it the index grows).
const dkCandsExpectMax = 1 << 24

// expect sizes the index for the wraps a stream of streamBytes can hold, before the first add.
// It overestimates (a leaf's wrap also holds its id, ~40 bytes more; JetStream counts its
// per-message overhead too): the index is dropped once the tree is resolved.
func (c *dkCands) expect(streamBytes uint64) {
	n := int(min(streamBytes/dkWireBytesMin, dkCandsExpectMax))
	if c.byNode == nil && n > 0 {
		c.byNode = make([]dkNodeAt, 0, n)
		c.chunks = make([][]dkCand, 0, n/dkCandChunk+1)
	}
}

func (c *dkCands) add(w dkWire, seq uint64) {
	if c.n%dkCandChunk == 0 {
		c.chunks = append(c.chunks, make([]dkCand, 0, dkCandChunk))
	}
	last := len(c.chunks) - 1
	c.chunks[last] = append(c.chunks[last], dkCand{dkWire: w, seq: seq, older: -1, head: true})
	c.byNode = append(c.byNode, dkNodeAt{node: w.node, at: c.n})
	c.n++
}

// link chains each node's wraps, newest first, once every wrap is in, and counts the nodes.
// The nodes are random 64-bit numbers: one counting pass on their top bits puts them in
// buckets of a few wraps each, which a sort within each bucket finishes; a bucket's order
// among equal nodes is stream order, so the last of a run is the node's newest wrap.
func (c *dkCands) link() {
	in := c.byNode
	c.byNode = nil
	n := len(in)
	if n == 0 {
		return
	}
	// About four wraps per bucket, at most 2^20 buckets.
	width := uint(max(1, min(20, bits.Len64(uint64(n)/4))))
	shift := 64 - width
	count := make([]int32, 1<<width+1)
	for i := range in {
		count[in[i].node>>shift+1]++
	}
	for b := 1; b < len(count); b++ {
		count[b] += count[b-1]
	}
	sorted := make([]dkNodeAt, n)
	next := count[:len(count)-1]
	for i := range in {
		b := in[i].node >> shift
		sorted[next[b]] = in[i]
		next[b]++
	}
	// next[b] is now bucket b's end, the start of bucket b+1.
	lo := int32(0)
	for b := range next {
		hi := next[b]
		bucket := sorted[lo:hi]
		if len(bucket) > 1 {
			// Stable: equal nodes keep stream order (each bucket was filled in it).
			slices.SortStableFunc(bucket, func(x, y dkNodeAt) int {
				switch {
				case x.node < y.node:
					return -1
				case x.node > y.node:
					return 1
				}
				return 0
			})
		}
		lo = hi
	}
	for i := 0; i < n; {
		j := i + 1
		for j < n && sorted[j].node == sorted[i].node {
			j++
		}
		for k := i + 1; k < j; k++ {
			c.at(sorted[k-1].at).head = false
			c.at(sorted[k].at).older = sorted[k-1].at
		}
		c.nodes++
		if c.at(sorted[j-1].at).kind == dkKindLeaf {
			c.leaves++
		}
		i = j
	}
}

// idArena makes the leaves' id strings out of shared blocks: a string each was a sixth of the
// load's allocations. A block lives as long as any id in it; ids are not secret.
type idArena struct{ block []byte }

const idArenaBlock = 64 << 10

// str returns b as a string; a nil arena allocates it on its own.
func (a *idArena) str(b []byte) string {
	if a == nil || len(b) == 0 || len(b) > idArenaBlock/8 {
		return string(b)
	}
	if cap(a.block)-len(a.block) < len(b) {
		a.block = make([]byte, 0, idArenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, b...)
	// The bytes at start are written once, here, and never again: the block only grows past
	// them, and a full block is replaced, not reused.
	return unsafe.String(&a.block[start], len(b))
}

// dkLeafChunk is how many leaves resolve allocates at once.
const dkLeafChunk = 1024

// dedupeLeaves settles ids that more than one live leaf holds — only if two New calls raced
// on two nodes — keeping the newer (its first ref the later message), as the first layout
// did; the other leaves the tree and its key is cleared. slabs holds every leaf resolve
// placed, in the order it placed them.
func (t *dkTree) dedupeLeaves(slabs [][]dkLeaf) {
	clear(t.leaves)
	for _, slab := range slabs {
		for i := range slab {
			l := &slab[i]
			prev := t.leaves[l.id]
			if prev != nil && prev.refs[0].seq > l.refs[0].seq {
				prev, l = l, prev // the one placed earlier stays
			}
			if prev != nil {
				for _, r := range prev.refs {
					if g := t.groups[r.parent]; g != nil && g.leaves[prev.node] == prev {
						delete(g.leaves, prev.node)
					}
				}
				clear(prev.key)
			}
			t.leaves[l.id] = l
		}
	}
}

// resolve builds the tree from the root table in force and every wrap in the stream: a group
// is live if a wrap of it sits under a shelf of the root, a leaf if a wrap of it sits under a
// live group. Wraps under anything else belong to retired parents (or to a flush that crashed
// before its root was stored) and open for no one; they are counted as garbage.
func resolve(shelves map[uint64]*dkInner, rootSeq, wrapsSeq uint64, cands *dkCands) (*dkTree, error) {
	cands.link()
	t := &dkTree{leaves: make(map[string]*dkLeaf, cands.leaves), groups: make(map[uint64]*dkInner, cands.nodes-cands.leaves),
		shelves: shelves, msgRefs: map[uint64]int{}, rootSeq: rootSeq, wrapsSeq: wrapsSeq}
	// The live leaves' keys and first refs come from one allocation each (cut to length, so
	// a later append to one moves it out rather than over its neighbour).
	keySlab := make([]byte, 0, cands.leaves*DataKeySize)
	refSlab := make([]dkRef, 0, cands.leaves)
	var ad []byte
	// The leaves come from chunks, not one allocation each; placed counts them.
	var (
		leafSlab []dkLeaf
		slabs    [][]dkLeaf
		placed   int
		// The last group looked up, and the message whose refs are being counted.
		lastGroup     uint64
		lastGroupNode *dkInner
		refSeq        uint64
		refCount      int
	)
	// Groups first, then leaves: a leaf is judged by groups, which are judged by shelves.
	for _, kind := range []uint8{dkKindGroup, dkKindLeaf} {
		for ci := range cands.n {
			if h := cands.at(ci); !h.head || h.kind != kind {
				continue
			}
			node := cands.at(ci).node
			start := len(refSlab)
			var newest *dkCand
			var parent cipher.AEAD
			for i := ci; i >= 0; i = cands.at(i).older { // newest first
				c := cands.at(i)
				if c.kind != kind {
					return nil, fmt.Errorf("data key node %x stored as two kinds: %w", node, ErrCorrupt)
				}
				var p *dkInner
				switch {
				case kind == dkKindGroup:
					p = shelves[c.parent]
				case c.parent == lastGroup && lastGroup != 0:
					p = lastGroupNode // a group's leaves mostly come together
				default:
					p = t.groups[c.parent]
					lastGroup, lastGroupNode = c.parent, p
				}
				if p == nil {
					continue
				}
				refSlab = append(refSlab, dkRef{parent: c.parent, seq: c.seq})
				if newest == nil {
					newest, parent = c, p.aead
				}
			}
			if newest == nil {
				continue
			}
			refs := refSlab[start:len(refSlab):len(refSlab)]
			ad = appendWrapAD(ad[:0], kind, node, newest.parent, newest.id)
			var key []byte
			var err error
			if kind == dkKindLeaf && cap(keySlab)-len(keySlab) >= DataKeySize {
				key, err = unsealTo(keySlab[len(keySlab):len(keySlab)], parent, newest.sealed, ad)
				keySlab = keySlab[:len(keySlab)+len(key)]
				key = key[:len(key):len(key)]
			} else {
				key, err = unsealTo(nil, parent, newest.sealed, ad)
			}
			if err != nil {
				return nil, fmt.Errorf("data key node %x at seq %d does not open: %w", node, newest.seq, ErrCorrupt)
			}
			for _, r := range refs {
				if r.seq != refSeq {
					if refCount > 0 {
						t.msgRefs[refSeq] += refCount
					}
					refSeq, refCount = r.seq, 0
				}
				refCount++
			}
			if kind == dkKindGroup {
				g, err := newInner(1, node, key)
				if err != nil {
					return nil, ErrCorrupt
				}
				g.refs = refs
				t.groups[node] = g
				for _, r := range refs {
					shelves[r.parent].groups[node] = g
				}
				continue
			}
			if len(leafSlab) == cap(leafSlab) {
				leafSlab = make([]dkLeaf, 0, max(1, min(dkLeafChunk, cands.leaves-placed)))
				slabs = append(slabs, leafSlab)
			}
			leafSlab = append(leafSlab, dkLeaf{node: node, id: newest.id, key: key, created: newest.created, refs: refs})
			slabs[len(slabs)-1] = leafSlab
			l := &leafSlab[len(leafSlab)-1]
			// One map operation per leaf: an id stored twice shows as a map that did not grow,
			// and is sorted out below.
			t.leaves[l.id] = l
			placed++
			for _, r := range refs {
				g := lastGroupNode
				if r.parent != lastGroup || g == nil {
					g = t.groups[r.parent]
				}
				g.leaves[node] = l
			}
		}
	}
	if refCount > 0 {
		t.msgRefs[refSeq] += refCount
	}
	if len(t.leaves) != placed {
		t.dedupeLeaves(slabs)
	}
	// Reuse a shelf and a group with room rather than open new ones after every restart.
	for _, s := range shelves {
		if len(s.groups) < dkShelfSize {
			t.openShelf = s
			break
		}
	}
	if t.openShelf != nil {
		for _, g := range t.openShelf.groups {
			if len(g.leaves) < dkGroupSize && len(g.refs) == 1 {
				t.open = g
				break
			}
		}
	}
	return t, nil
}
