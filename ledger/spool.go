package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A spool is where an unreplicated Stream keeps its batches between the append and JetStream:
// local, append-only segment files in a directory of the node's own, each mapped into memory
// (MAP_SHARED). An append copies its events into the current segment's mapping and returns: the
// bytes are then in the kernel's page cache, which keeps them through a crash of the process as
// a write(2) would (no fsync, like an asynchronously persisted stream), without a system call
// or a hand-off to another goroutine. A shipper goroutine stores what has piled up in
// JetStream, many appends per message, one message in flight at a time. A read's audit record
// so costs a copy instead of a share of a JetStream round trip.
//
// Each append (a group) is one frame: length, CRC-32C, then the group's sequence number (one counter per
// spool, never reused) and its events in the batch encoding. A JetStream message made of groups
// carries the message id "<epoch>-<last group's number>", so after a crash the stream's last
// message says which groups it already holds: the rest is shipped again, nothing twice.
// A segment is done with once JetStream has held all its groups for spoolSettle (an
// asynchronously persisted stream writes a message to its own files within milliseconds of its
// ack). It is then renamed and written again from the start, its mapping kept: a page of a
// fresh mapping costs a fault on its first write, and on a VM also the host's backing of it;
// those were most of an append's cost. A segment's frames carry consecutive group numbers from
// the one in its name, so what is left of an earlier use past the last frame is never read.
type spool struct {
	dir   string
	epoch string // names this spool's messages; kept in spoolEpochFile

	mu      sync.Mutex
	cond    *sync.Cond      // signalled when groups are queued, shipped, or the shipper must stop
	curSeg  *spoolSegment   // where appends go (nil: closed)
	segs    []*spoolSegment // in order; the last is curSeg
	free    []*spoolSegment // done with, mapped, to be written again
	next    uint64          // the next group's number
	queue   []spoolGroup    // written, not yet shipped, in order
	pending int             // bytes in queue
	shipped uint64          // the last group JetStream acknowledged
	marks   []spoolMark     // recent acknowledgements, oldest first
	closing bool            // Close: ship what is queued, then stop
	// refused is why JetStream last failed to take the queued groups; while it is set, appends
	// are refused, so a request is not answered while its record cannot reach the stream.
	refused error
}

type spoolGroup struct {
	seq  uint64
	evs  []StoredEvent
	size int
}

type spoolSegment struct {
	path string
	num  uint64 // the number it is named by
	last uint64 // the last group it holds (0: none yet)
	size int64  // bytes of frames
	// data maps a segment of this run (nil for one read at open): the queued groups' events
	// point into it, so it is unmapped only once they are shipped, or the spool released.
	data []byte
	f    *os.File
}

type spoolMark struct {
	at  time.Time
	seq uint64
}

const (
	spoolEpochFile = "epoch"
	spoolSuffix    = ".spool"
	spoolFrameHead = 4 + 4 + 8 // length, CRC-32C, group number
	spoolFreeMax   = 2         // done-with segments kept mapped for reuse
	// The shipper waits up to spoolShipDelay for spoolShipBytes to be queued before it sends.
	spoolShipDelay = time.Millisecond
	spoolShipBytes = 64 << 10
	// spoolSettle is how long a group's segment is kept after JetStream acknowledged it.
	spoolSettle = 250 * time.Millisecond
)

// Variables for the tests' sake.
var (
	// spoolSegmentMax: a segment is ended and the next started when an append would pass it.
	spoolSegmentMax = 4 << 20
	// spoolMaxPending bounds what may wait for JetStream. Past it appends fail: the records
	// of requests are never dropped, so when JetStream stays away the requests are refused.
	spoolMaxPending = 64 << 20
)

var spoolCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull: the spool holds spoolMaxPending bytes JetStream has not taken.
var ErrSpoolFull = errors.New("ledger: the local spool is full because JetStream is not taking records; check the NATS server")

// openSpool reads the segments left in dir (creating it) and cuts a torn last frame. The groups
// read are all queued; dropShipped removes those the stream holds and starts a new segment.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp := &spool{dir: dir, next: 1}
	sp.cond = sync.NewCond(&sp.mu)
	epoch, err := os.ReadFile(filepath.Join(dir, spoolEpochFile))
	switch {
	case err == nil && len(strings.TrimSpace(string(epoch))) == 32:
		sp.epoch = strings.TrimSpace(string(epoch))
	case err == nil || errors.Is(err, os.ErrNotExist):
		// None yet, or unreadable: a new epoch (groups of the old one would be shipped again).
		sp.epoch = newID()
		os.Remove(filepath.Join(dir, spoolEpochFile))
		if err := writeFileSync(filepath.Join(dir, spoolEpochFile), []byte(sp.epoch+"\n")); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	default:
		return nil, fmt.Errorf("spool: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	slices.Sort(names) // named by their first group's number, zero-padded
	for _, name := range names {
		seg, groups, err := readSegment(name)
		if err != nil {
			return nil, err
		}
		sp.segs = append(sp.segs, seg)
		// New segments are named past every file here, so none is ever written over.
		next := max(sp.next, seg.num+1)
		for _, g := range groups {
			if g.seq < sp.next {
				return nil, fmt.Errorf("spool %s: group %d out of order; move the spool directory aside to start without it", name, g.seq)
			}
			sp.queue = append(sp.queue, g)
			sp.pending += g.size
			sp.next = g.seq + 1
		}
		sp.next = max(sp.next, next)
	}
	return sp, nil
}

// readSegment reads one segment's frames: consecutive group numbers from the one it is named
// by. A torn or corrupt frame ends the segment: it is what a crash in the middle of a write
// leaves, and its append was never acknowledged; the file is cut there.
func readSegment(name string) (*spoolSegment, []spoolGroup, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	want, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), spoolSuffix), 10, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %s is not a segment (its name is not a group number); move it out of %s", name, filepath.Dir(name))
	}
	seg := &spoolSegment{path: name, num: want}
	var groups []spoolGroup
	r := bufio.NewReader(f)
	var off int64
	for {
		var head [spoolFrameHead]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			break
		}
		n := binary.LittleEndian.Uint32(head[0:4])
		if n < 8 || n > maxMessageBytes {
			break
		}
		body := make([]byte, n)
		copy(body, head[8:])
		if _, err := io.ReadFull(r, body[8:]); err != nil {
			break
		}
		if crc32.Checksum(body, spoolCRC) != binary.LittleEndian.Uint32(head[4:8]) {
			break
		}
		seq := binary.LittleEndian.Uint64(body[:8])
		if seq != want {
			break // past the last frame: what is left of the segment's earlier use
		}
		bt, err := DecodeBatch(0, body[8:])
		if err != nil {
			break
		}
		want++
		groups = append(groups, spoolGroup{seq: seq, evs: bt.Events, size: len(body)})
		seg.last = seq
		off += int64(8 + n)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	if st.Size() > off {
		if err := f.Truncate(off); err != nil {
			return nil, nil, fmt.Errorf("spool: cut the torn end of %s: %w", name, err)
		}
	}
	seg.size = off
	return seg, groups, nil
}

// dropShipped removes the queued groups up to the one the stream's last message names (its
// message id, lastID), and starts a new segment for this run's groups.
func (sp *spool) dropShipped(lastID string) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if n, ok := sp.shippedBy(lastID); ok {
		for len(sp.queue) > 0 && sp.queue[0].seq <= n {
			sp.pending -= sp.queue[0].size
			sp.queue = sp.queue[1:]
		}
		sp.shipped = n
		sp.next = max(sp.next, n+1)
	}
	sp.marks = append(sp.marks, spoolMark{at: time.Now(), seq: sp.shipped})
	return sp.rotate(0)
}

// shippedBy parses a message id of this spool's.
func (sp *spool) shippedBy(msgID string) (uint64, bool) {
	rest, ok := strings.CutPrefix(msgID, sp.epoch+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

func (sp *spool) msgID(last uint64) string { return sp.epoch + "-" + strconv.FormatUint(last, 10) }

// rotate ends the current segment (left mapped: groups in it wait, and it is reused) and
// starts the next, named by the next group's number, with room for at least need bytes.
func (sp *spool) rotate(need int) error {
	sp.curSeg = nil // left as it is: what follows its last frame is never read
	name := filepath.Join(sp.dir, fmt.Sprintf("%020d%s", sp.next, spoolSuffix))
	if n := len(sp.free); n > 0 && len(sp.free[n-1].data) >= need {
		seg := sp.free[n-1]
		if err := os.Rename(seg.path, name); err == nil {
			sp.free = sp.free[:n-1]
			seg.path, seg.num, seg.last, seg.size = name, sp.next, 0, 0
			sp.curSeg = seg
			sp.segs = append(sp.segs, seg)
			return nil
		}
	}
	size := max(spoolSegmentMax, need)
	f, data, err := mapSegment(name, size)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	sp.curSeg = &spoolSegment{path: name, num: sp.next, data: data, f: f}
	sp.segs = append(sp.segs, sp.curSeg)
	return nil
}

// append writes one group's frame into the current segment and queues the group for the
// shipper. The events' bytes are copied, so the caller may reuse its buffers at once.
func (sp *spool) append(evs []StoredEvent) error {
	size := spoolFrameHead + 4 + 32 + binary.MaxVarintLen64
	for _, e := range evs {
		size += len(e.rawHdr) + len(e.payload) + 2*binary.MaxVarintLen64
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.curSeg == nil {
		return ErrClosed
	}
	if sp.refused != nil {
		return fmt.Errorf("ledger: JetStream is not storing the spooled records (%w); refusing more until it does", sp.refused)
	}
	if sp.pending+size > spoolMaxPending {
		return ErrSpoolFull
	}
	if int(sp.curSeg.size)+size > len(sp.curSeg.data) {
		if err := sp.rotate(size); err != nil {
			return err
		}
	}
	seg := sp.curSeg
	seq := sp.next
	// The body goes in first, the length and checksum that make the frame readable last.
	at := int(seg.size)
	frame := seg.data[at : at+spoolFrameHead : at+size]
	frame = append(frame, batchMagic[:]...)
	var zero [32]byte
	frame = append(frame, zero[:]...)
	frame = binary.AppendUvarint(frame, uint64(len(evs)))
	queued := make([]StoredEvent, 0, len(evs))
	for _, e := range evs {
		frame = binary.AppendUvarint(frame, uint64(len(e.rawHdr)))
		h := len(frame)
		frame = append(frame, e.rawHdr...)
		hdr := frame[h:len(frame):len(frame)]
		frame = binary.AppendUvarint(frame, uint64(len(e.payload)))
		p := len(frame)
		frame = append(frame, e.payload...)
		queued = append(queued, StoredEvent{hdr: e.hdr, rawHdr: hdr, payload: frame[p:len(frame):len(frame)]})
	}
	body := frame[8:]
	binary.LittleEndian.PutUint64(body[:8], seq)
	sum := crc32.Checksum(body, spoolCRC)
	binary.LittleEndian.PutUint32(frame[4:8], sum)
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(body)))
	sp.next++
	seg.last, seg.size = seq, seg.size+int64(len(frame))
	sp.queue = append(sp.queue, spoolGroup{seq: seq, evs: queued, size: len(body)})
	sp.pending += len(body)
	sp.cond.Signal()
	return nil
}

// take waits for queued groups and returns the events of the first ones (in evs's room), up to
// maxBytes (at least one group), and the last group's number. ok is false once the spool is closing and nothing is queued.
func (sp *spool) take(evs []StoredEvent, maxBytes int) (_ []StoredEvent, last uint64, ok bool) {
	evs = evs[:0]
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.queue) == 0 && !sp.closing {
		sp.cond.Wait()
	}
	if sp.pending < spoolShipBytes && !sp.closing {
		// Nobody waits for a shipment, and a JetStream message costs about the same with one
		// group as with fifty: let a few more arrive.
		sp.mu.Unlock()
		time.Sleep(spoolShipDelay)
		sp.mu.Lock()
	}
	if len(sp.queue) == 0 {
		return nil, 0, false
	}
	size := 0
	for i, g := range sp.queue {
		if i > 0 && size+g.size > maxBytes {
			break
		}
		size += g.size
		evs = append(evs, g.evs...)
		last = g.seq
	}
	return evs, last, true
}

// acknowledged records that JetStream holds every group up to last, and deletes the segments
// that have been held for spoolSettle.
func (sp *spool) acknowledged(last uint64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.queue) > 0 && sp.queue[0].seq <= last {
		sp.pending -= sp.queue[0].size
		sp.queue = sp.queue[1:]
	}
	sp.shipped = last
	now := time.Now()
	sp.marks = append(sp.marks, spoolMark{at: now, seq: last})
	settled := uint64(0)
	i := 0
	for ; i < len(sp.marks) && now.Sub(sp.marks[i].at) >= spoolSettle; i++ {
		settled = sp.marks[i].seq
	}
	if i > 0 {
		sp.marks = slices.Delete(sp.marks, 0, i-1) // keep the settled mark: it stays settled
	}
	for len(sp.segs) > 1 && sp.segs[0] != sp.curSeg && sp.segs[0].last <= settled {
		seg := sp.segs[0]
		if seg.data != nil && len(sp.free) < spoolFreeMax {
			sp.free = append(sp.free, seg) // its groups are all shipped: nothing points into it
			sp.segs = sp.segs[1:]
			continue
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			break // tried again after the next acknowledgement
		}
		unmapSegment(seg)
		sp.segs = sp.segs[1:]
	}
	sp.cond.Broadcast()
}

// setRefused records why shipping failed (nil: it succeeds again) and reports whether that
// changed the spool from accepting to refusing or back.
func (sp *spool) setRefused(err error) (changed bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	changed = (sp.refused == nil) != (err == nil)
	sp.refused = err
	sp.cond.Broadcast()
	return changed
}

// backlog is the number of groups written and not yet acknowledged by JetStream.
func (sp *spool) backlog() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.queue)
}

// drained waits until nothing is queued, JetStream refuses what is, or timeout passes, and
// reports whether nothing is queued.
func (sp *spool) drained(timeout time.Duration) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.waitLocked(timeout, func() bool { return len(sp.queue) == 0 || sp.refused != nil })
	return len(sp.queue) == 0
}

// flushed waits until JetStream holds every group queued when it was called (later ones are
// not waited for), JetStream refuses them, the spool closes, or timeout passes, and returns how
// many of those groups it does not hold.
func (sp *spool) flushed(timeout time.Duration) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	target := sp.next - 1 // the last group queued so far (groups are numbered from 1)
	sp.waitLocked(timeout, func() bool {
		return len(sp.queue) == 0 || sp.queue[0].seq > target || sp.refused != nil || sp.curSeg == nil
	})
	left := 0
	for _, g := range sp.queue {
		if g.seq <= target {
			left++
		}
	}
	return left
}

// waitLocked waits on sp.cond, sp.mu held, until done says so or timeout passes.
func (sp *spool) waitLocked(timeout time.Duration, done func() bool) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { sp.mu.Lock(); sp.cond.Broadcast(); sp.mu.Unlock() })
	defer t.Stop()
	for !done() && time.Now().Before(deadline) {
		sp.cond.Wait()
	}
}

// close refuses further appends and lets the shipper stop once nothing is queued. What is
// still queued stays in the segments, for the next open.
func (sp *spool) close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.closing = true
	sp.cond.Broadcast()
	if seg := sp.curSeg; seg != nil && seg.f != nil {
		seg.f.Truncate(seg.size) // a torn-free end; a failure leaves zeros, read as the end
		seg.f.Close()
		seg.f = nil
	}
	sp.curSeg = nil
}

// release unmaps every segment and deletes those JetStream holds all of, once that has
// settled (a later open would otherwise ship them again if the stream's last message no
// longer named them, as when retention has emptied it). Only once the shipper has stopped:
// queued events point into the mappings.
func (sp *spool) release() {
	sp.mu.Lock()
	wait := time.Duration(0)
	if n := len(sp.marks); n > 0 {
		wait = min(spoolSettle, time.Until(sp.marks[n-1].at.Add(spoolSettle)))
	}
	sp.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, seg := range append(sp.segs, sp.free...) {
		if seg.last <= sp.shipped {
			os.Remove(seg.path)
		}
		unmapSegment(seg)
	}
	sp.segs, sp.free, sp.queue = nil, nil, nil
}
