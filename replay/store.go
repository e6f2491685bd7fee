package replay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream object store that holds the node's snapshots: automatic ones
// ("auto/<seq>", views only, for fast startup) and restored ones ("restore/<id>", the file an
// operator uploaded, which a snapshot.restored.v1 event in the log points to).
const Bucket = "LEDGER_SNAPSHOTS"

const (
	autoPrefix    = "auto/"
	restorePrefix = "restore/"
	seqHeader     = "Ledger-Seq"
)

// AutoName is the object name of an automatic snapshot at seq; names sort by sequence.
func AutoName(seq uint64) string { return fmt.Sprintf("%s%020d", autoPrefix, seq) }

// RestoreName is the object name of an uploaded snapshot.
func RestoreName(id string) string { return restorePrefix + id }

// Store is the snapshot object store.
type Store struct {
	obs       jetstream.ObjectStore
	js        jetstream.JetStream
	partSize  int
	firstPart int // PutFrom's first part (streamPart)

	// Prune's memory of the automatic snapshots (see Prune): filled by a full listing, kept
	// up to date by PutFrom and Delete, listed afresh every fullListEvery.
	mu     sync.Mutex
	stream jetstream.Stream // the bucket's stream (bucketStream)
	known  map[string]Info
	listed time.Time
	now    func() time.Time

	local *Local // this node's copies of the checkpoints it stores (UseLocal), or nil
	// prefetched: one of those copies read ahead of unseal (UsePrefetched), or nil.
	prefetched *Prefetch
}

// UseLocal makes the store keep a copy of every automatic snapshot it stores in l, and read
// them from there (LoadBase). Call it before the store is used.
//
// It also narrows the bucket stream's duplicate window to JetStream's least (narrowDedupe).
// Without local copies the two-minute default served unseal by accident: a restarted
// nats-server reloads every message inside the window before the stream is up, so the newest
// checkpoints were in its caches when unseal read them (at 1M secrets the load took 4.5 s so,
// 9.9 s from cold blocks: README, Checkpoints). A node reading its own copy gains nothing from
// that reload and pays for it in every start.
func (s *Store) UseLocal(ctx context.Context, l *Local) {
	s.local = l
	// Best effort: a clustered bucket may still be electing its leader; the next unseal tries
	// again, and meanwhile the window costs only a restart's time.
	_ = s.narrowDedupe(ctx)
}

// UsePrefetched lets the local copies be read from p where it holds the one asked for (set
// before LoadBase; UseLocal must be in force too). The Store does not release p: its owner
// does (Prefetch.Close) once the load is over.
func (s *Store) UsePrefetched(p *Prefetch) { s.prefetched = p }

// OpenStore creates (or binds to) the LEDGER_SNAPSHOTS bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      Bucket,
		Description: "Ledger snapshots (sealed under the keyring)",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", Bucket, err)
	}
	return &Store{obs: obs, js: js, partSize: partSize, firstPart: streamPart, now: time.Now}, nil
}

// bucketDedupe is the bucket stream's duplicate window: JetStream's least. The object store
// publishes without message ids, so no window dedupes anything here, but a restarted
// nats-server reloads every message stored inside it before the stream is up: with
// JetStream's default of two minutes, every checkpoint written in the two minutes before a
// crash (hundreds of megabytes each at 1M secrets).
const bucketDedupe = 100 * time.Millisecond

// narrowDedupe sets the bucket stream's duplicate window to bucketDedupe. nats.go's
// CreateOrUpdateObjectStore has no field for it and puts JetStream's default back on every
// open, so the stream is updated after it; an update reloads nothing.
func (s *Store) narrowDedupe(ctx context.Context) error {
	st, err := s.bucketStream(ctx)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates == bucketDedupe {
		return nil
	}
	cfg.Duplicates = bucketDedupe
	_, err = s.js.UpdateStream(ctx, cfg)
	return err
}

// bucketStream is the bucket's stream, asked for on first use (a clustered stream may still be
// electing its leader when the store is opened) and kept.
func (s *Store) bucketStream(ctx context.Context) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != nil {
		return s.stream, nil
	}
	st, err := s.js.Stream(ctx, "OBJ_"+Bucket)
	if err != nil {
		return nil, err
	}
	s.stream = st
	return st, nil
}

// metaPrefix is the subject prefix of the bucket's metadata messages, one subject per object
// name (base64url), as nats.go's object store names them.
const metaPrefix = "$O." + Bucket + ".M."

func metaSubject(name string) string {
	return metaPrefix + base64.URLEncoding.EncodeToString([]byte(name))
}

// AutoNames lists the automatic snapshots newest first from the bucket stream's subjects
// alone, where Auto reads every object's metadata message, each from its own 8 MiB block (a
// tenth of a second of unseal at 100k secrets). An Info here has Name and Seq only (the seq
// is in the name), and a name may outlive its object: a deleted object's metadata stays as a
// tombstone unless Delete purged it (builds before it did not), so opening one may say
// jetstream.ErrObjectNotFound.
func (s *Store) AutoNames(ctx context.Context) ([]Info, error) {
	st, err := s.bucketStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", Bucket, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(metaPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", Bucket, err)
	}
	var out []Info
	for subj := range info.State.Subjects {
		b, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(subj, metaPrefix))
		if err != nil {
			continue
		}
		if seq, ok := autoSeq(string(b)); ok {
			out = append(out, Info{Name: string(b), Seq: seq})
		}
	}
	sortInfos(out)
	return out, nil
}

// autoSeq is the position an automatic snapshot's name gives (AutoName), false for any other
// name (an upload, a part).
func autoSeq(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, autoPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil && AutoName(seq) == name
}

// Info describes one stored snapshot.
type Info struct {
	Name     string
	Seq      uint64 // the position the snapshot was taken at
	Size     uint64
	Modified time.Time
}

// Large snapshots are stored as several objects: JetStream refuses an object store upload
// that puts hundreds of megabytes in flight at once ("too many requests"). The named object
// holds the first part and says how many there are and under which part-set id the others
// are ("<name>.<set>.p1", …). Parts are written first and under a fresh set id, so replacing a
// snapshot switches from the old parts to the new ones in one metadata update.
const (
	partSize      = 64 << 20
	chunkBytes    = 512 << 10 // below the 1 MiB max_payload of a default NATS server
	partsHeader   = "Ledger-Parts"
	partSetHeader = "Ledger-Part-Set"
	partOfHeader  = "Ledger-Part-Of"
)

func partName(name, set string, i int) string { return fmt.Sprintf("%s.%s.p%d", name, set, i) }

// Put stores data under name, replacing any object of that name.
func (s *Store) Put(ctx context.Context, name string, data []byte, seq uint64) error {
	return s.PutFrom(ctx, name, seq, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// streamPart is the size of PutFrom's first part, which is held in memory until the rest are
// stored (it carries the parts count), so it is kept small; the other parts are partSize.
// Readers take any part sizes. Every part is an object with a metadata message, and listing
// the bucket reads each of those from its 8 MiB JetStream block: 8 MiB parts throughout made a
// listing (each checkpoint prunes) load a block per 8 MiB of every snapshot kept.
const streamPart = 8 << 20

// putTimeout bounds a PutFrom given a context without a deadline. Without one, the object
// store gives each chunk of a part the JetStream default of 5 s from its publish to its ack,
// and a 64 MiB part is 128 chunks published at once: under a write burst on two cores the last
// acks came later than that and checkpoint after checkpoint failed ("timeout waiting for ack"),
// so a restart would replay ever longer tails. With a deadline the put as a whole gets it.
const putTimeout = 10 * time.Minute

// PutFrom stores what write writes as snapshot name, without holding the whole of it: the
// bytes are stored in parts as they come (the first streamPart bytes, then partSize each), and
// the first part, which names how many there are, last — so a reader never sees a partial
// object under name. A failed write stores nothing under name (parts already stored are
// removed, best effort).
func (s *Store) PutFrom(ctx context.Context, name string, seq uint64, write func(io.Writer) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, putTimeout)
		defer cancel()
	}
	ps := s.partSize
	var lw *localWrite
	if s.local != nil {
		lw = s.local.create(name)
	}
	stored := false
	defer func() {
		if lw != nil && !stored {
			lw.abort()
		}
	}()
	write = tee(write, lw)
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		werr <- err
	}()
	fail := func(err error) error {
		pr.CloseWithError(err) // unblocks the writer
		<-werr
		return err
	}
	br := bufio.NewReaderSize(pr, 64<<10)
	first := make([]byte, min(ps, s.firstPart))
	n0, err := io.ReadFull(br, first)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fail(fmt.Errorf("store snapshot %s: %w", name, err))
	}
	first = first[:n0]
	set := fmt.Sprintf("%x", time.Now().UnixNano())
	opts := &jetstream.ObjectMetaOptions{ChunkSize: chunkBytes}
	n := 1
	cleanup := func() {
		for i := 1; i < n; i++ {
			_ = s.remove(context.WithoutCancel(ctx), partName(name, set, i))
		}
	}
	for {
		if _, err := br.Peek(1); err == io.EOF {
			break
		} else if err != nil {
			cleanup()
			return fail(fmt.Errorf("store snapshot %s: %w", name, err))
		}
		meta := jetstream.ObjectMeta{Name: partName(name, set, n), Opts: opts, Headers: map[string][]string{partOfHeader: {name}}}
		if _, err := s.obs.Put(ctx, meta, io.LimitReader(br, int64(ps))); err != nil {
			cleanup()
			return fail(fmt.Errorf("store snapshot %s part %d: %w", name, n, err))
		}
		n++
	}
	if err := <-werr; err != nil {
		cleanup()
		return err
	}
	old, _ := s.obs.GetInfo(ctx, name)
	meta := jetstream.ObjectMeta{Name: name, Opts: opts, Headers: map[string][]string{
		seqHeader: {strconv.FormatUint(seq, 10)}, partsHeader: {strconv.Itoa(n)}, partSetHeader: {set}}}
	if _, err := s.obs.Put(ctx, meta, bytes.NewReader(first)); err != nil {
		cleanup()
		return fmt.Errorf("store snapshot %s: %w", name, err)
	}
	stored = true
	if lw != nil {
		_ = lw.commit() // without a copy, unseal reads the object
	}
	if old != nil {
		s.deleteParts(ctx, name, old)
	}
	if strings.HasPrefix(name, autoPrefix) {
		s.mu.Lock()
		if s.known != nil {
			s.known[name] = Info{Name: name, Seq: seq, Size: uint64(n0), Modified: s.now()}
		}
		s.mu.Unlock()
	}
	return nil
}

func parts(info *jetstream.ObjectInfo) (int, string) {
	n, err := strconv.Atoi(info.Headers.Get(partsHeader))
	if err != nil || n < 1 {
		n = 1
	}
	return n, info.Headers.Get(partSetHeader)
}

// deleteParts removes the extra parts of an object version (best effort: a leftover part is
// only wasted space, skipped by listings).
func (s *Store) deleteParts(ctx context.Context, name string, info *jetstream.ObjectInfo) {
	n, set := parts(info)
	for i := 1; i < n; i++ {
		_ = s.remove(ctx, partName(name, set, i))
	}
}

// Get reads a whole snapshot. A missing object is an error wrapping jetstream.ErrObjectNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	r, size, err := s.Reader(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// One buffer of the right size: growing a buffer (and copying each part once more) cost a
	// third of unseal's CPU with 100k secrets, when unseal still read checkpoints with Get.
	out := make([]byte, size)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, err
	}
	// Read to the end: that is where the object store checks the last part's digest.
	var one [1]byte
	if k, err := r.Read(one[:]); k != 0 || !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read snapshot %s: longer than its size, or %v", name, err)
	}
	return out, nil
}

// Reader streams a snapshot's bytes, its parts one after the other, and says how many there
// are: DecodeFrom reads a checkpoint from it with no copy of the whole file in memory. Each
// part is read to its end, where the object store checks its digest; a part shorter or longer
// than its size is an error. Close the reader when done.
func (s *Store) Reader(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	info, err := s.obs.GetInfo(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("read snapshot %s: %w", name, err)
	}
	st, err := s.bucketStream(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read snapshot %s: %w", name, err)
	}
	n, set := parts(info)
	objs := make([]*jetstream.ObjectInfo, n)
	total := int64(0)
	for i := range n {
		if i > 0 {
			if info, err = s.obs.GetInfo(ctx, partName(name, set, i)); err != nil {
				return nil, 0, fmt.Errorf("read snapshot %s part %d: %w", name, i, err)
			}
		}
		objs[i] = info
		total += int64(info.Size)
	}
	return &partsReader{ctx: ctx, stream: st, objs: objs}, total, nil
}

// Decode reads and decodes a snapshot from the store (Reader, DecodeFrom), all but the digest
// of the whole file: File.SHA256 is left zero. It reads checkpoints (EncodeCheckpoint) as well
// as snapshot files (a restore's upload, checkpoints of earlier builds). On the way the object store has checked each
// part's own SHA-256, and the file's checksums and seals are checked as for any file; a
// third pass over a checkpoint (450 MB at 1M secrets) would only slow unseal.
func (s *Store) Decode(ctx context.Context, name string) (*File, error) {
	r, size, err := s.Reader(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return decodeFrom(r, size, false, true)
}

// DecodeEarly is Decode for a checkpoint whose last sections are views late reports: it stops
// before them and returns a File that opens the others; File.Rest reads the rest (on another
// goroutine, after unseal) and File.Close gives it up. Until then the object stays open, read
// under a context of its own: ctx ending does not cut the rest short, and the object store's
// default timeout (which would end a read paused for longer) is replaced by lateReadFor. A
// checkpoint that does not end with such views is read whole, as by Decode.
func (s *Store) DecodeEarly(ctx context.Context, name string, late func(view string) bool) (*File, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lateReadFor)
	r, size, err := s.Reader(rctx, name)
	if err != nil {
		cancel()
		return nil, err
	}
	return decodeEarly(r, size, late, func() {
		r.Close()
		cancel()
	})
}

// decodeEarly decodes a checkpoint from r up to the views late reports, and calls release once
// the source is no longer needed: at once when the file was read whole or is invalid, else
// when the rest is read or given up (File.Rest, File.Close).
func decodeEarly(r io.Reader, size int64, late func(view string) bool, release func()) (*File, error) {
	f, err := decode(r, size, false, true, late)
	if err != nil || f.rest == nil {
		release()
		return f, sourced(err)
	}
	f.rest.close = release
	return f, nil
}

// lateReadFor bounds how long after DecodeEarly the rest of a checkpoint can be read.
const lateReadFor = 10 * time.Minute

// partsReader reads the parts of a snapshot in order (Store.Reader).
type partsReader struct {
	ctx    context.Context
	stream jetstream.Stream
	objs   []*jetstream.ObjectInfo
	i      int
	cur    *chunkReader
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.i == len(p.objs) {
			return 0, io.EOF
		}
		if p.cur == nil {
			p.cur = readChunks(p.ctx, p.stream, p.objs[p.i])
		}
		n, err := p.cur.Read(b)
		switch {
		case errors.Is(err, io.EOF):
			// The end of a part, where its size and digest were checked.
			p.cur.Close()
			p.cur = nil
			p.i++
			if n > 0 {
				return n, nil
			}
			continue
		case err != nil:
			return n, fmt.Errorf("read snapshot %s: %w", p.objs[p.i].Name, err)
		}
		return n, nil
	}
}

func (p *partsReader) Close() error {
	if p.cur != nil {
		p.cur.Close()
		p.cur = nil
	}
	p.i = len(p.objs)
	return nil
}

// chunkReader reads one object of the bucket by fetching its chunks from the bucket's stream
// with direct gets, one chunk ahead of the reader, and checks the object's size and SHA-256
// digest at its end, as the object store's own Get does. Get delivers the chunks through an
// ordered push consumer into a pipe; at unseal, beside everything else a restarting node does,
// that read a checkpoint at 56–89 MB/s where the same object alone reads at several hundred.
type chunkReader struct {
	info   *jetstream.ObjectInfo
	chunks chan fetched
	cancel context.CancelFunc
	fetch  sync.WaitGroup
	cur    []byte
	got    uint64
	sum    hash.Hash
	err    error
}

type fetched struct {
	data []byte
	err  error
}

// chunksAhead is how many chunks the fetcher may hold before the reader takes them (128 KiB each).
const chunksAhead = 4

func readChunks(ctx context.Context, st jetstream.Stream, info *jetstream.ObjectInfo) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &chunkReader{info: info, chunks: make(chan fetched, chunksAhead), cancel: cancel, sum: sha256.New()}
	subject := "$O." + info.Bucket + ".C." + info.NUID
	r.fetch.Go(func() {
		defer close(r.chunks)
		next := uint64(1)
		for range info.Chunks {
			m, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					err = fmt.Errorf("chunks missing: %d stored, fewer found", info.Chunks)
				}
				select {
				case r.chunks <- fetched{err: err}:
				case <-ctx.Done():
				}
				return
			}
			next = m.Sequence + 1
			select {
			case r.chunks <- fetched{data: m.Data}:
			case <-ctx.Done():
				return
			}
		}
	})
	return r
}

func (r *chunkReader) Read(b []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		c, ok := <-r.chunks
		switch {
		case !ok:
			r.err = r.finish()
			continue
		case c.err != nil:
			r.err = c.err
			continue
		}
		r.got += uint64(len(c.data))
		if r.got > r.info.Size {
			r.err = fmt.Errorf("longer than its size %d", r.info.Size)
			continue
		}
		r.sum.Write(c.data)
		r.cur = c.data
	}
	n := copy(b, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// finish checks a fully read object: io.EOF when it is whole and its digest is right.
func (r *chunkReader) finish() error {
	if r.got != r.info.Size {
		return fmt.Errorf("%d bytes, its size is %d", r.got, r.info.Size)
	}
	if want := "SHA-256=" + base64.URLEncoding.EncodeToString(r.sum.Sum(nil)); want != r.info.Digest {
		return fmt.Errorf("digest does not match: %w", jetstream.ErrDigestMismatch)
	}
	return io.EOF
}

// Close stops the fetcher and waits for it.
func (r *chunkReader) Close() error {
	r.cancel()
	r.fetch.Wait()
	r.cur = nil
	return nil
}

// Delete removes a snapshot and its parts; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if s.local != nil {
		s.local.remove(name)
	}
	s.mu.Lock()
	delete(s.known, name)
	s.mu.Unlock()
	info, err := s.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	if err := s.remove(ctx, name); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	s.deleteParts(ctx, name, info)
	return nil
}

// remove deletes one object, then the tombstone the object store leaves in its place (the
// metadata message, marked deleted): checkpoints come every few seconds under load, and a
// tombstone per name ever used would make every listing longer for good.
func (s *Store) remove(ctx context.Context, name string) error {
	if err := s.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	st, err := s.bucketStream(ctx)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(metaSubject(name)))
}

// listWait bounds one listing of the bucket, and listRetry how long a bucket whose stream
// cannot answer yet (a cluster electing its leader) is asked again.
const (
	listWait  = 30 * time.Second
	listRetry = 10 * time.Second
)

// list returns the stored snapshots whose names start with prefix, newest position first.
//
// nats.go's ObjectStore.List ends when its watcher sends the "initial values done" marker. For
// an empty bucket that marker comes only if the watcher's own last-message lookup answers "not
// found"; any other answer (no responders, 503: a clustered stream still electing its leader)
// is dropped, and List waits for a message that never comes. The first unseal of a three-node
// cluster hung there. So an empty bucket is answered from the stream's state, asked again while
// the stream cannot answer, and the listing itself is bounded.
func (s *Store) list(ctx context.Context, prefix string) ([]Info, error) {
	var st jetstream.ObjectStoreStatus
	var err error
	for start := time.Now(); ; {
		if st, err = s.obs.Status(ctx); err == nil || ctx.Err() != nil || time.Since(start) > listRetry {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", Bucket, err)
	}
	if st.Size() == 0 {
		return nil, nil
	}
	lctx, cancel := context.WithTimeout(ctx, listWait)
	defer cancel()
	objs, err := s.obs.List(lctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", Bucket, err)
	}
	var out []Info
	for _, o := range objs {
		if o.Deleted || !strings.HasPrefix(o.Name, prefix) || o.Headers.Get(partOfHeader) != "" {
			continue
		}
		seq, _ := strconv.ParseUint(o.Headers.Get(seqHeader), 10, 64)
		out = append(out, Info{Name: o.Name, Seq: seq, Size: o.Size, Modified: o.ModTime})
	}
	sortInfos(out)
	return out, nil
}

// sortInfos orders snapshots newest position first.
func sortInfos(out []Info) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq > out[j].Seq
		}
		return out[i].Name > out[j].Name
	})
}

// Auto lists the automatic snapshots, newest first.
func (s *Store) Auto(ctx context.Context) ([]Info, error) { return s.list(ctx, autoPrefix) }

// Restored lists the uploaded snapshots, newest first.
func (s *Store) Restored(ctx context.Context) ([]Info, error) { return s.list(ctx, restorePrefix) }

// fullListEvery is how often Prune lists the bucket in full rather than from what it knows.
const fullListEvery = time.Hour

// Prune deletes automatic snapshots beyond the newest keep, and uploaded snapshots other than
// keepRestore (the one the log's latest restore points to, which replay verify starts from)
// that are older than an hour — younger ones may be a restore whose event is being appended.
// It returns the names deleted.
//
// A listing reads every object's metadata message, each from its own JetStream block (an 8 MiB
// buffer), and Prune runs after every checkpoint. So only the first Prune of a Store and one
// every fullListEvery list the bucket; the others prune the automatic snapshots this Store
// knows of (listed, or stored since). One stored by another node meanwhile (an earlier active
// node of a cluster) is unknown until the next full listing and is only kept longer: Prune
// never deletes a snapshot unless keep newer ones are known to exist.
func (s *Store) Prune(ctx context.Context, keep int, keepRestore string) ([]string, error) {
	var auto, restored []Info
	s.mu.Lock()
	full := s.known == nil || s.now().Sub(s.listed) >= fullListEvery
	if !full {
		for _, in := range s.known {
			auto = append(auto, in)
		}
	}
	s.mu.Unlock()
	if full {
		// One listing for both kinds.
		all, err := s.list(ctx, "")
		if err != nil {
			return nil, err
		}
		known := map[string]Info{}
		for _, in := range all {
			switch {
			case strings.HasPrefix(in.Name, autoPrefix):
				auto = append(auto, in)
				known[in.Name] = in
			case strings.HasPrefix(in.Name, restorePrefix):
				restored = append(restored, in)
			}
		}
		s.mu.Lock()
		s.known, s.listed = known, s.now()
		s.mu.Unlock()
	} else {
		sortInfos(auto)
	}
	var drop []string
	if keep >= 0 && len(auto) > keep {
		for _, in := range auto[keep:] {
			drop = append(drop, in.Name)
		}
	}
	for _, in := range restored {
		if in.Name != keepRestore && time.Since(in.Modified) > time.Hour {
			drop = append(drop, in.Name)
		}
	}
	var deleted []string
	for _, name := range drop {
		if err := s.Delete(ctx, name); err != nil {
			return deleted, err
		}
		deleted = append(deleted, name)
	}
	if s.local != nil {
		// Copies of checkpoints the bucket no longer has (another node pruned them, or this one
		// crashed between the two deletes), and what a crash left half-written.
		s.mu.Lock()
		names := make([]string, 0, len(s.known))
		for name := range s.known {
			names = append(names, name)
		}
		s.mu.Unlock()
		s.local.keepOnly(names)
	}
	return deleted, nil
}

// decodeLocal is DecodeEarly (Decode with late nil) of this node's copy of checkpoint name
// (UseLocal); ok is false when it has none. The file stays open while the rest is unread.
func (s *Store) decodeLocal(name string, late func(view string) bool) (f *File, ok bool, err error) {
	if s.local == nil {
		return nil, false, nil
	}
	if f, ok, err := s.prefetched.take(name, late); ok {
		return f, true, err
	}
	src, size, err := s.local.open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	f, err = decodeEarly(src, size, late, func() { src.Close() })
	return f, true, err
}

// dropLocal deletes this node's copy of checkpoint name (found unusable).
func (s *Store) dropLocal(name string) {
	if s.local != nil {
		s.local.remove(name)
	}
}
