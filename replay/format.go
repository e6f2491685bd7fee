// Package replay owns what rebuilds state from the log: snapshots (their file format, the
// LEDGER_SNAPSHOTS object store, the cut of live views at one sequence, loading a snapshot back
// into views) and replay (rebuilding views from genesis or from a snapshot, verifying them
// against the live ones, at a measured rate).
//
// Replay never has side effects. This package holds views, the log and the keyring and nothing
// else: it cannot revoke a lease, rotate a key or call a database, because it is never handed
// anything that could. That is how restore avoids vault#22275 (leases revoked because a
// restored snapshot carried stale expiry times): restoring only replaces view state; the live
// expiration manager, which starts after the restore like after any unseal, revokes a lease
// only when the restored lease view says it has expired — by the TTL the snapshot recorded,
// including every renewal the snapshot saw, plus the renewals appended after it.
package replay

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/seal"
)

// A snapshot file is a gzip-compressed tar archive, the envelope Vault's raft snapshots use, so
// `client.Sys().RaftSnapshot` accepts it (it checks for a non-empty SHA256SUMS.sealed entry):
//
//	meta.json            Header, in clear: position, cluster, seal configuration (the keyring
//	                     wrapped under the root key), sections with sizes and view digests
//	views/<name>.sealed  one per view: its Snapshot() bytes in 1 MiB chunks, each sealed under
//	                     the keyring, framed as uvarint(len) ‖ sealed chunk
//	datakeys.sealed      the live data keys (DataKeys.Snapshot, keys already sealed), chunked
//	                     and sealed again like a view; absent from automatic snapshots
//	SHA256SUMS           sha256 of every file above, as sha256sum prints them
//	SHA256SUMS.sealed    SHA256SUMS sealed under the keyring: last, never empty
//
// Every sealed piece is bound by its associated data to sha256(meta.json), its file name, its
// chunk index and whether it is the last chunk, so chunks cannot be moved, dropped, reordered
// or paired with another header. No value, token or key is in clear anywhere in the file.
//
// A checkpoint, the automatic snapshot a server keeps in its own bucket, is the same archive
// without the gzip layer (EncodeCheckpoint); it never leaves the server as a file.
//
// Without keys (a fresh server receiving a restore) the gzip CRC, the tar framing, the chunk
// framing and SHA256SUMS catch truncation and corruption. With the keyring (at unseal, or on an
// unsealed server of the same cluster) every chunk and SHA256SUMS.sealed authenticate too.
const (
	// FormatVersion is the snapshot format this build writes and reads.
	FormatVersion = 1

	metaFile       = "meta.json"
	sumsFile       = "SHA256SUMS"
	sealedSumsFile = "SHA256SUMS.sealed"
	dataKeysFile   = "datakeys.sealed"
	viewDir        = "views/"
	product        = "ledger"

	// KindView and KindDataKeys are the section kinds.
	KindView     = "view"
	KindDataKeys = "datakeys"

	chunkSize = 1 << 20
)

// Errors. Every refusal of a file wraps ErrInvalid, with a message that says what is wrong and
// what to do; a file that is well formed but does not open under the keyring wraps
// ErrNotAuthentic.
var (
	ErrInvalid      = errors.New("invalid snapshot")
	ErrNotAuthentic = errors.New("snapshot does not authenticate")
)

// SealConfig is the seal state a snapshot carries, so that a server restored from it is opened
// by the snapshot's own unseal keys.
type SealConfig struct {
	Shares    int       `json:"shares"`
	Threshold int       `json:"threshold"`
	Term      uint32    `json:"term"`
	InitTime  time.Time `json:"init_time"`
	// Keyring is the keyring wrapped under the root key, as the seal view stores it.
	Keyring []byte `json:"keyring"`
	// AutoSeal is the auto-seal that wraps the root key (empty for Shamir), so a restore
	// unseals with the same seal and recovery keys.
	AutoSeal seal.AutoSeal `json:"auto_seal"`
}

// Section describes one sealed file of the archive.
type Section struct {
	Name   string `json:"name"` // view name, or "datakeys"
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Size   int64  `json:"size"` // plaintext bytes
	Chunks int    `json:"chunks"`
	Digest string `json:"digest,omitempty"` // hex of the view's Digest at Seq
}

// Header is meta.json: everything about a snapshot that can be read without keys.
type Header struct {
	Format      int        `json:"format"`
	Product     string     `json:"product"`
	ClusterID   string     `json:"cluster_id"`
	ClusterName string     `json:"cluster_name,omitempty"`
	Seq         uint64     `json:"seq"`
	Hash        string     `json:"hash"` // hex sha256 of the batch at Seq
	Created     time.Time  `json:"created"`
	Seal        SealConfig `json:"seal"`
	Sections    []Section  `json:"sections"`
}

// Views returns the view sections.
func (h Header) Views() []Section {
	var out []Section
	for _, s := range h.Sections {
		if s.Kind == KindView {
			out = append(out, s)
		}
	}
	return out
}

// HasDataKeys reports whether the snapshot carries data keys.
func (h Header) HasDataKeys() bool {
	for _, s := range h.Sections {
		if s.Kind == KindDataKeys {
			return true
		}
	}
	return false
}

// BatchHash decodes Hash.
func (h Header) BatchHash() ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(h.Hash)
	if err != nil || len(b) != len(out) {
		return out, fmt.Errorf("batch hash %q: %w", h.Hash, ErrInvalid)
	}
	copy(out[:], b)
	return out, nil
}

// Part is one view's state in a snapshot.
type Part struct {
	Name   string
	Data   []byte
	Digest [32]byte
}

// Snapshot is a snapshot in memory, in clear. Encode seals it; File.Open opens it.
type Snapshot struct {
	ClusterID   string
	ClusterName string
	Seq         uint64
	Hash        [32]byte
	Created     time.Time
	Seal        SealConfig
	Views       []Part
	// DataKeys is DataKeys.Snapshot's output, nil when the snapshot carries none.
	DataKeys []byte
}

// View returns the part named name.
func (s *Snapshot) View(name string) (Part, bool) {
	for _, p := range s.Views {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

var viewNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

func chunks(n int) int { return max(1, (n+chunkSize-1)/chunkSize) }

// chunkAD binds a sealed chunk to its header, file, place and finality.
func chunkAD(metaSum [32]byte, file string, idx int, last bool) []byte {
	ad := make([]byte, 0, 64+len(file))
	ad = append(ad, "ledger snapshot v1\x00"...)
	ad = append(ad, metaSum[:]...)
	ad = binary.AppendUvarint(ad, uint64(len(file)))
	ad = append(ad, file...)
	ad = binary.AppendUvarint(ad, uint64(idx))
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

func sumsAD(metaSum [32]byte) []byte {
	return append([]byte("ledger snapshot sums v1\x00"), metaSum[:]...)
}

// Encode writes s as a snapshot file, sealing every section under kr. It returns the number of
// bytes written.
func (s *Snapshot) Encode(w io.Writer, kr *ledger.Keyring) (int64, error) {
	return s.encode(w, kr, true, nil)
}

// EncodeCheckpoint writes s as a checkpoint: the archive of a snapshot file without its gzip
// layer, for the server's own bucket (Store.Decode reads both forms; Decode, for files given
// by users and tools, only the gzip one). The gzip layer compresses nothing — every section is
// sealed — yet reading through it was a quarter to a half of decoding a checkpoint
// (BenchmarkCheckpointForms); what it also checks, a CRC of the bytes, the per-file SHA-256
// sums, the object store's digests and the seals check already.
//
// The views named in last are written after the others, in that order: a server unsealing
// from the checkpoint reads it up to them (Store.DecodeEarly) and them once it answers.
func (s *Snapshot) EncodeCheckpoint(w io.Writer, kr *ledger.Keyring, last ...string) (int64, error) {
	return s.encode(w, kr, false, last)
}

func (s *Snapshot) encode(w io.Writer, kr *ledger.Keyring, gzipped bool, last []string) (int64, error) {
	if kr == nil {
		return 0, ledger.ErrSealed
	}
	h := Header{Format: FormatVersion, Product: product, ClusterID: s.ClusterID, ClusterName: s.ClusterName,
		Seq: s.Seq, Hash: hex.EncodeToString(s.Hash[:]), Created: s.Created.UTC(), Seal: s.Seal}
	type body struct {
		file string
		data []byte
	}
	var bodies []body
	seen := map[string]bool{}
	views := s.Views
	if len(last) > 0 {
		views = make([]Part, 0, len(s.Views))
		for _, p := range s.Views {
			if !slices.Contains(last, p.Name) {
				views = append(views, p)
			}
		}
		for _, name := range last {
			for _, p := range s.Views {
				if p.Name == name {
					views = append(views, p)
				}
			}
		}
	}
	for _, p := range views {
		if !viewNameRE.MatchString(p.Name) || seen[p.Name] {
			return 0, fmt.Errorf("encode snapshot: view name %q is not usable (empty, odd characters or twice)", p.Name)
		}
		seen[p.Name] = true
		f := viewDir + p.Name + ".sealed"
		h.Sections = append(h.Sections, Section{Name: p.Name, Kind: KindView, File: f, Size: int64(len(p.Data)),
			Chunks: chunks(len(p.Data)), Digest: hex.EncodeToString(p.Digest[:])})
		bodies = append(bodies, body{f, p.Data})
	}
	if s.DataKeys != nil {
		h.Sections = append(h.Sections, Section{Name: KindDataKeys, Kind: KindDataKeys, File: dataKeysFile,
			Size: int64(len(s.DataKeys)), Chunks: chunks(len(s.DataKeys))})
		bodies = append(bodies, body{dataKeysFile, s.DataKeys})
	}
	meta, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("encode snapshot header: %w", err)
	}
	metaSum := sha256.Sum256(meta)

	cw := &countingWriter{w: w}
	var gz *gzip.Writer
	var archive io.Writer = cw
	if gzipped {
		gz, _ = gzip.NewWriterLevel(cw, gzip.NoCompression) // sealed bytes do not compress
		archive = gz
	}
	tw := tar.NewWriter(archive)
	var sums strings.Builder
	put := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: h.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write snapshot %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("write snapshot %s: %w", name, err)
		}
		if name != sumsFile && name != sealedSumsFile {
			fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(data), name)
		}
		return nil
	}
	if err := put(metaFile, meta); err != nil {
		return cw.n, err
	}
	// Each body is written as it is sealed, a chunk at a time: the tar header needs the sealed
	// size first, and AES-GCM's ciphertext is the plaintext plus a fixed overhead, so the size is
	// known before sealing (and every chunk is checked against it). Holding a sealed copy of a
	// large view was tens of megabytes at 100k secrets, for as long as a snapshot took.
	probe, err := kr.Seal(nil, []byte("ledger snapshot overhead probe"))
	if err != nil {
		return cw.n, fmt.Errorf("seal: %w", err)
	}
	overhead := len(probe)
	var lenBuf [binary.MaxVarintLen64]byte
	for _, b := range bodies {
		n := chunks(len(b.data))
		size := 0
		for i := range n {
			ctLen := min((i+1)*chunkSize, len(b.data)) - i*chunkSize + overhead
			size += len(binary.AppendUvarint(lenBuf[:0], uint64(ctLen))) + ctLen
		}
		hdr := &tar.Header{Name: b.file, Mode: 0o600, Size: int64(size), ModTime: h.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, fmt.Errorf("write snapshot %s: %w", b.file, err)
		}
		sum := sha256.New()
		out := io.MultiWriter(tw, sum)
		for i := range n {
			lo, hi := i*chunkSize, min((i+1)*chunkSize, len(b.data))
			ct, err := kr.Seal(b.data[lo:hi], chunkAD(metaSum, b.file, i, i == n-1))
			if err != nil {
				return cw.n, fmt.Errorf("seal %s: %w", b.file, err)
			}
			if len(ct) != hi-lo+overhead {
				return cw.n, fmt.Errorf("seal %s: the keyring's cipher is not length-preserving (%d bytes sealed to %d); snapshots need AES-GCM", b.file, hi-lo, len(ct))
			}
			if _, err := out.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(ct)))); err != nil {
				return cw.n, fmt.Errorf("write snapshot %s: %w", b.file, err)
			}
			if _, err := out.Write(ct); err != nil {
				return cw.n, fmt.Errorf("write snapshot %s: %w", b.file, err)
			}
		}
		fmt.Fprintf(&sums, "%x  %s\n", sum.Sum(nil), b.file)
	}
	if err := put(sumsFile, []byte(sums.String())); err != nil {
		return cw.n, err
	}
	sealedSums, err := kr.Seal([]byte(sums.String()), sumsAD(metaSum))
	if err != nil {
		return cw.n, fmt.Errorf("seal %s: %w", sealedSumsFile, err)
	}
	if err := put(sealedSumsFile, sealedSums); err != nil {
		return cw.n, err
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return cw.n, fmt.Errorf("write snapshot: %w", err)
		}
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// File is a snapshot file whose structure and checksums were verified, not yet opened.
type File struct {
	Header Header
	// SHA256 is the digest of the file as given (zero from Store.Decode); Size its length.
	SHA256 [32]byte
	Size   int64

	meta  []byte
	files map[string][]byte
	// digests holds the sha256 of each entry, taken as it was read — but for the sections of a
	// checkpoint decoded with its late sections left unread (Store.DecodeEarly): those are
	// hashed when the file is checked whole, unless Open has authenticated them by then.
	digests    map[string][32]byte
	sums       []byte
	sealedSums []byte
	opened     bool            // Open decrypts the sections in place: a File opens once
	decrypted  map[string]bool // the files Open decrypted
	// authentic holds the sections whose every chunk opened under the keyring: bound to
	// sha256(meta.json), their name and place, they need no SHA256SUMS line to be trusted.
	authentic map[string]bool
	// rest is how to read the sections left unread (Store.DecodeEarly), nil once read.
	rest *decoding
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Decode checks a snapshot file without keys: gzip and tar framing, every file's checksum, the
// header and the chunk framing. A truncated, corrupted or foreign file is an ErrInvalid whose
// message says which.
func Decode(data []byte) (*File, error) {
	return DecodeFrom(bytes.NewReader(data), int64(len(data)))
}

// DecodeFrom is Decode for a file of size bytes read from r: the object store's parts stream
// into the entries' buffers, with no copy of the whole file in between. An error reading r is
// returned as it is (wrapped), not as a verdict on the file.
func DecodeFrom(r io.Reader, size int64) (*File, error) {
	return decodeFrom(r, size, true, false)
}

// decodeFrom is DecodeFrom; without hashFile, File.SHA256 is left zero; with checkpoint, the
// bare archive EncodeCheckpoint writes is read too.
func decodeFrom(r io.Reader, size int64, hashFile, checkpoint bool) (*File, error) {
	f, err := decode(r, size, hashFile, checkpoint, nil)
	return f, sourced(err)
}

// sourced reports an error of the reader a file is decoded from as such, not as a verdict on
// the file.
func sourced(err error) error {
	var rerr sourceError
	if errors.As(err, &rerr) {
		return fmt.Errorf("read snapshot: %w", rerr.err)
	}
	return err
}

// sourceError marks an error of the reader a file is decoded from.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }

// hashingReader hashes and counts what is read through it, and marks its source's errors.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if h.h != nil {
		h.h.Write(p[:n])
	}
	h.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		err = sourceError{err}
	}
	return n, err
}

// tarBlock is the size of a tar header block.
const tarBlock = 512

// archiveEnd passes a bare archive to the tar reader, counting it and keeping its last two
// blocks: the end marker.
type archiveEnd struct {
	r    io.Reader
	n    int64
	last [2 * tarBlock]byte
}

func (a *archiveEnd) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.n += int64(n)
	if n >= len(a.last) {
		copy(a.last[:], p[n-len(a.last):n])
	} else {
		copy(a.last[:], a.last[n:])
		copy(a.last[len(a.last)-n:], p[:n])
	}
	return n, err
}

// marked reports whether what was read ends with the end marker: two zero blocks.
func (a *archiveEnd) marked() bool {
	return a.n >= int64(len(a.last)) && !slices.ContainsFunc(a.last[:], func(b byte) bool { return b != 0 })
}

// decoding is a snapshot file being read: what decode has read so far and how to go on. A
// checkpoint decoded with its late sections left unread (Store.DecodeEarly) keeps one in
// File.rest until File.Rest reads them.
type decoding struct {
	f         *File
	src       *hashingReader
	br        *bufio.Reader
	gz        *gzip.Reader
	bare      *archiveEnd
	tr        *tar.Reader
	hashFile  bool
	fileLen   int
	truncated error
	order     []string
	// late reports the views whose sections may be left unread; deferred holds the files of
	// the sections that are (set once meta.json is read), pending the header of the first.
	late     func(name string) bool
	deferred []string
	// deferSums: the sections' digests are taken when the file is checked whole (Store.DecodeEarly).
	deferSums bool
	pending   *tar.Header
	close     func()
}

func decode(r io.Reader, size int64, hashFile, checkpoint bool, late func(string) bool) (*File, error) {
	src := &hashingReader{r: r}
	if hashFile {
		src.h = sha256.New()
	}
	br := bufio.NewReaderSize(src, 64<<10)
	f := &File{Size: size, files: map[string][]byte{}, digests: map[string][32]byte{}}
	d := &decoding{f: f, src: src, br: br, hashFile: hashFile, late: late, deferSums: late != nil,
		fileLen:   int(min(size, int64(math.MaxInt))),
		truncated: invalid("snapshot is truncated (%d bytes): it ends before its last entry %s; the download or copy was cut short, take or copy it again", size, sealedSumsFile)}
	magic, err := br.Peek(2)
	var rerr sourceError
	if errors.As(err, &rerr) {
		return nil, err
	}
	var body io.Reader = br
	switch {
	case err == nil && magic[0] == 0x1f && magic[1] == 0x8b:
		if d.gz, err = gzip.NewReader(br); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, d.truncated
			}
			return nil, invalid("not a Ledger snapshot: %v", err)
		}
		d.gz.Multistream(false)
		body = d.gz
	case checkpoint:
		// A checkpoint (EncodeCheckpoint) is the bare archive: its first block is a tar header.
		first, err := br.Peek(tarBlock)
		if errors.As(err, &rerr) {
			return nil, err
		}
		if err != nil {
			return nil, d.truncated
		}
		if string(first[257:262]) != "ustar" {
			return nil, invalid("not a Ledger checkpoint: the object is neither a gzip-compressed nor a bare tar archive")
		}
		d.bare = &archiveEnd{r: br}
		body = d.bare
	default:
		return nil, invalid("not a Ledger snapshot: the file is not gzip-compressed (a snapshot starts with a gzip header)")
	}
	d.tr = tar.NewReader(body)
	if err := d.entries(); err != nil {
		return nil, err
	}
	if d.pending != nil {
		// Stopped before the late sections: what was read must be whole and described.
		if err := d.header(); err != nil {
			return nil, err
		}
		f.rest = d
		return f, nil
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return f, nil
}

func (d *decoding) readErr(err error) error {
	var rerr sourceError
	switch {
	case errors.As(err, &rerr):
		return rerr
	case errors.Is(err, io.ErrUnexpectedEOF):
		return d.truncated
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return invalid("snapshot is corrupted: its gzip checksum does not match; the file was altered or damaged, use another copy")
	}
	return invalid("snapshot is corrupted: %v; use another copy", err)
}

// entries reads the archive's entries to its end marker, or, when late sections may be left
// unread, up to the first of them (d.pending).
func (d *decoding) entries() error {
	f := d.f
	for {
		hdr := d.pending
		d.pending = nil
		if hdr == nil {
			var err error
			hdr, err = d.tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return d.readErr(err)
			}
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size < 0 || !knownFile(hdr.Name) {
			return invalid("not a Ledger snapshot: unexpected entry %q (a Vault raft snapshot cannot be restored into Ledger)", hdr.Name)
		}
		if _, dup := f.files[hdr.Name]; dup {
			return invalid("snapshot is corrupted: entry %q appears twice", hdr.Name)
		}
		if d.late != nil && len(d.deferred) > 0 && hdr.Name == d.deferred[0] {
			d.pending, d.late = hdr, nil
			return nil
		}
		b, err := readEntry(d.tr, hdr.Size, d.fileLen)
		if err != nil {
			return d.readErr(err)
		}
		f.files[hdr.Name] = b
		// A checkpoint read at unseal opens its sections under the keyring next, which
		// authenticates every chunk: hashing them first as well was a tenth of the CPU of an
		// unseal at a million secrets. Their digests wait for the whole-file check (checkSums).
		if d.deferSums && isSection(hdr.Name) {
			continue
		}
		f.digests[hdr.Name] = sha256.Sum256(b)
		d.order = append(d.order, hdr.Name)
		if hdr.Name == metaFile && len(d.order) == 1 && d.late != nil {
			d.deferred = lateFiles(b, d.late)
		}
	}
}

// lateFiles lists the files of the sections a header ends with that are all views late
// reports: the ones a reader may leave for later. A header that does not decode defers
// nothing (the whole file is read, and its checks say what is wrong).
func lateFiles(meta []byte, late func(string) bool) []string {
	var h Header
	if json.Unmarshal(meta, &h) != nil {
		return nil
	}
	k := len(h.Sections)
	for k > 0 && h.Sections[k-1].Kind == KindView && late(h.Sections[k-1].Name) {
		k--
	}
	var out []string
	for _, s := range h.Sections[k:] {
		out = append(out, s.File)
	}
	return out
}

// finish checks what follows the end marker and the file as a whole: its size, the order of
// its entries, SHA256SUMS and the header.
func (d *decoding) finish() error {
	f := d.f
	// The tar end marker was read; the gzip trailer (CRC and size) must follow and match.
	if d.gz != nil {
		if _, err := io.Copy(io.Discard, d.gz); err != nil {
			return d.readErr(err)
		}
	}
	// A bare archive has no trailer: it must end with the end marker, and nothing after it (the
	// tar reader takes a clean end of input for one).
	if d.bare != nil {
		if !d.bare.marked() {
			return d.truncated
		}
		if d.bare.n != f.Size {
			return invalid("checkpoint is corrupted: %d bytes follow its end marker", f.Size-d.bare.n)
		}
	}
	// SHA256 is the digest of the whole file, whatever follows the gzip stream included.
	if _, err := io.Copy(io.Discard, d.br); err != nil {
		return d.readErr(err)
	}
	if d.src.n != f.Size {
		return invalid("snapshot is %d bytes, %d were expected; the download or copy was cut short, take or copy it again", d.src.n, f.Size)
	}
	if d.hashFile {
		d.src.h.Sum(f.SHA256[:0])
	}
	if len(d.order) == 0 || d.order[0] != metaFile {
		if len(d.order) == 0 {
			return d.truncated
		}
		return invalid("not a Ledger snapshot: it does not start with %s", metaFile)
	}
	if d.order[len(d.order)-1] != sealedSumsFile || len(f.files[sealedSumsFile]) == 0 {
		return d.truncated
	}
	f.sums, f.sealedSums = f.files[sumsFile], f.files[sealedSumsFile]
	if f.sums == nil {
		return invalid("snapshot is corrupted: %s is missing", sumsFile)
	}
	if err := f.checkSums(); err != nil {
		return err
	}
	return d.header()
}

// header decodes meta.json and checks it against the sections read so far.
func (d *decoding) header() error {
	f := d.f
	if len(d.order) == 0 || d.order[0] != metaFile {
		return invalid("not a Ledger snapshot: it does not start with %s", metaFile)
	}
	f.meta = f.files[metaFile]
	if err := json.Unmarshal(f.meta, &f.Header); err != nil {
		return invalid("snapshot is corrupted: %s does not decode", metaFile)
	}
	return f.checkHeader(d.deferredUnread())
}

// deferredUnread is the set of section files not read yet (nil once they all are).
func (d *decoding) deferredUnread() map[string]bool {
	if d.pending == nil && d.f.rest == nil {
		return nil
	}
	out := map[string]bool{}
	for _, name := range d.deferred {
		if _, ok := d.f.files[name]; !ok {
			out[name] = true
		}
	}
	return out
}

// readEntry reads a tar entry of the size its header gives. Sealed entries do not compress, so
// an entry is about as large as its share of the file: one buffer of that size is read into
// directly (io.ReadAll's doubling copied and cleared each view's bytes several times over, a
// quarter of unseal's CPU at 100k secrets). A header claiming more than the file could hold
// uncompressed is not believed up front: the buffer then grows only as bytes actually come.
func readEntry(r io.Reader, size int64, fileLen int) ([]byte, error) {
	if size <= int64(fileLen) {
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	var buf bytes.Buffer
	buf.Grow(fileLen)
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != size {
		return nil, io.ErrUnexpectedEOF
	}
	return buf.Bytes(), nil
}

// isSection reports whether an entry is a section: a view's or the data keys'.
func isSection(name string) bool {
	return name == dataKeysFile || strings.HasPrefix(name, viewDir)
}

func knownFile(name string) bool {
	switch name {
	case metaFile, sumsFile, sealedSumsFile, dataKeysFile:
		return true
	}
	v, ok := strings.CutPrefix(name, viewDir)
	if !ok {
		return false
	}
	v, ok = strings.CutSuffix(v, ".sealed")
	return ok && viewNameRE.MatchString(v)
}

// checkSums compares every file with SHA256SUMS, both ways.
func (f *File) checkSums() error {
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(f.sums), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			return invalid("snapshot is corrupted: %s has a malformed line", sumsFile)
		}
		listed[name] = sum
	}
	for name := range f.files {
		if name == sumsFile || name == sealedSumsFile {
			continue
		}
		want, ok := listed[name]
		if !ok {
			return invalid("snapshot is corrupted: %s is not listed in %s", name, sumsFile)
		}
		got, ok := f.digests[name]
		if !ok && f.authentic[name] {
			delete(listed, name) // its chunks authenticated under the keyring (Open)
			continue
		}
		if !ok {
			got = sha256.Sum256(f.files[name]) // read early, not opened: still as stored
		}
		if hex.EncodeToString(got[:]) != want {
			return invalid("snapshot is corrupted: %s does not match its checksum; the file was altered or damaged, use another copy", name)
		}
		delete(listed, name)
	}
	for name := range listed {
		return invalid("snapshot is truncated or corrupted: %s lists %s, which the archive lacks", sumsFile, name)
	}
	return nil
}

// checkHeader checks the header, and that every section it describes is in the archive as
// whole chunks, but for the sections in unread (not read yet: Store.DecodeEarly) and the
// ones Open decrypted since they were checked.
func (f *File) checkHeader(unread map[string]bool) error {
	h := f.Header
	switch {
	case h.Product != product:
		return invalid("not a Ledger snapshot: %s names product %q", metaFile, h.Product)
	case h.Format != FormatVersion:
		return invalid("snapshot format %d is not readable by this build (it reads format %d); restore it with the Ledger version that wrote it", h.Format, FormatVersion)
	case h.ClusterID == "" || h.Seq == 0:
		return invalid("snapshot is corrupted: %s lacks the cluster id or position", metaFile)
	case h.Seal.Threshold < 1 || h.Seal.Shares < h.Seal.Threshold || h.Seal.Term < 1 || len(h.Seal.Keyring) == 0:
		return invalid("snapshot is corrupted: %s has no usable seal configuration", metaFile)
	}
	if _, err := h.BatchHash(); err != nil {
		return invalid("snapshot is corrupted: %s has a malformed batch hash", metaFile)
	}
	names := map[string]bool{}
	for _, s := range h.Sections {
		want := viewDir + s.Name + ".sealed"
		if s.Kind == KindDataKeys {
			want = dataKeysFile
		}
		if (s.Kind != KindView && s.Kind != KindDataKeys) || s.File != want || names[s.File] || s.Size < 0 || s.Chunks != chunks(int(s.Size)) {
			return invalid("snapshot is corrupted: section %q is malformed", s.Name)
		}
		names[s.File] = true
		if unread[s.File] {
			continue
		}
		body, ok := f.files[s.File]
		if !ok {
			return invalid("snapshot is truncated or corrupted: section %s is missing", s.File)
		}
		if f.decrypted[s.File] {
			continue
		}
		n, err := countChunks(body)
		if err != nil || n != s.Chunks {
			return invalid("snapshot is corrupted: %s does not hold %d whole chunks", s.File, s.Chunks)
		}
	}
	for name := range f.files {
		if name != metaFile && name != sumsFile && name != sealedSumsFile && !names[name] {
			return invalid("snapshot is corrupted: entry %s is not described by %s", name, metaFile)
		}
	}
	return nil
}

func countChunks(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return n, errors.New("bad framing")
		}
		b = b[k+int(l):]
		n++
	}
	return n, nil
}

// Keyring unwraps the snapshot's keyring with the root key (ledger.ErrWrongRootKey if the key
// belongs to another cluster).
func (f *File) Keyring(rootKey []byte) (*ledger.Keyring, error) {
	return ledger.UnwrapKeyring(rootKey, f.Header.Seal.Keyring)
}

// Open authenticates and decrypts every section with kr. A file that does not open — sealed by
// another keyring, or altered with its checksums recomputed — is an ErrNotAuthentic. Once
// the keyring is found to be the file's, the sections are decrypted in place (the Snapshot's
// parts are slices of the decoded file), so a File opens once.
//
// A checkpoint decoded with its late sections unread (Store.DecodeEarly) opens the sections
// read: each chunk is bound to sha256(meta.json) and its place, so they authenticate without
// SHA256SUMS, which comes last; Rest reads and opens the others, and checks the file whole.
func (f *File) Open(kr *ledger.Keyring) (*Snapshot, error) {
	if kr == nil {
		return nil, ledger.ErrSealed
	}
	metaSum := sha256.Sum256(f.meta)
	if f.rest == nil {
		sums, err := kr.Open(f.sealedSums, sumsAD(metaSum))
		if err != nil || !bytes.Equal(sums, f.sums) {
			return nil, fmt.Errorf("%s does not open under this keyring: the snapshot was taken by another cluster, or altered: %w", sealedSumsFile, ErrNotAuthentic)
		}
	}
	hash, _ := f.Header.BatchHash()
	s := &Snapshot{ClusterID: f.Header.ClusterID, ClusterName: f.Header.ClusterName, Seq: f.Header.Seq, Hash: hash,
		Created: f.Header.Created, Seal: f.Header.Seal}
	if f.opened {
		return nil, errors.New("snapshot file already opened: its sections were decrypted in place; decode the file again")
	}
	f.opened = true
	f.decrypted = map[string]bool{}
	for _, sec := range f.Header.Sections {
		if f.rest != nil && slices.Contains(f.rest.deferred, sec.File) {
			continue
		}
		data, err := f.openSection(kr, metaSum, sec)
		if err != nil {
			return nil, err
		}
		switch sec.Kind {
		case KindDataKeys:
			s.DataKeys = data
		default:
			s.Views = append(s.Views, sec.part(data))
		}
	}
	sort.SliceStable(s.Views, func(i, j int) bool { return s.Views[i].Name < s.Views[j].Name })
	return s, nil
}

// part is a view section's Part, data its plaintext.
func (sec Section) part(data []byte) Part {
	var d [32]byte
	if b, err := hex.DecodeString(sec.Digest); err == nil && len(b) == 32 {
		copy(d[:], b)
	}
	return Part{Name: sec.Name, Data: data, Digest: d}
}

// openSection authenticates and decrypts one section in place and returns its plaintext.
// Each chunk decrypts into its own bytes and moves down to the end of the plaintext so far,
// which is never past the chunk (a chunk is its plaintext plus framing, prefix, IV and tag):
// the section's plaintext ends up at the start of the file's buffer, and a checkpoint load
// touches no second copy of it.
func (f *File) openSection(kr *ledger.Keyring, metaSum [32]byte, sec Section) ([]byte, error) {
	if f.decrypted[sec.File] {
		return nil, fmt.Errorf("two sections name %s: %w", sec.File, ErrNotAuthentic)
	}
	f.decrypted[sec.File] = true
	file := f.files[sec.File]
	b, w := file, 0
	for i := 0; len(b) > 0; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%s chunk %d is framed wrongly: %w", sec.File, i, ErrNotAuthentic)
		}
		ct := b[k : k+int(l)]
		b = b[k+int(l):]
		pt, err := kr.OpenInPlace(ct, chunkAD(metaSum, sec.File, i, len(b) == 0))
		if err != nil {
			return nil, fmt.Errorf("%s chunk %d does not open under this keyring: %w", sec.File, i, ErrNotAuthentic)
		}
		w += copy(file[w:], pt)
	}
	data := file[:w:w]
	if int64(len(data)) != sec.Size {
		return nil, fmt.Errorf("%s holds %d bytes, its header says %d: %w", sec.File, len(data), sec.Size, ErrNotAuthentic)
	}
	if f.authentic == nil {
		f.authentic = map[string]bool{}
	}
	f.authentic[sec.File] = true
	return data, nil
}

// Unread names the views whose sections a checkpoint decoded by Store.DecodeEarly left
// unread, in the archive's order; nil once Rest has read them (or when none were left).
func (f *File) Unread() []string {
	if f.rest == nil {
		return nil
	}
	var out []string
	for _, sec := range f.Header.Sections {
		if slices.Contains(f.rest.deferred, sec.File) {
			out = append(out, sec.Name)
		}
	}
	return out
}

// Rest reads the sections Store.DecodeEarly left unread, checks the file whole as Decode
// does (its end, SHA256SUMS and its seal) and returns those views' parts, opened under kr
// (nil when nothing was left unread). Call it after Open, once; it closes the file's source.
func (f *File) Rest(kr *ledger.Keyring) ([]Part, error) {
	d := f.rest
	if d == nil {
		return nil, nil
	}
	defer d.release()
	if !f.opened {
		return nil, errors.New("snapshot: Rest before Open")
	}
	if kr == nil {
		return nil, ledger.ErrSealed
	}
	if err := d.entries(); err != nil {
		return nil, sourced(err)
	}
	f.rest = nil
	if err := d.finish(); err != nil {
		return nil, sourced(err)
	}
	metaSum := sha256.Sum256(f.meta)
	sums, err := kr.Open(f.sealedSums, sumsAD(metaSum))
	if err != nil || !bytes.Equal(sums, f.sums) {
		return nil, fmt.Errorf("%s does not open under this keyring: the snapshot was taken by another cluster, or altered: %w", sealedSumsFile, ErrNotAuthentic)
	}
	var parts []Part
	for _, sec := range f.Header.Sections {
		if !slices.Contains(d.deferred, sec.File) {
			continue
		}
		data, err := f.openSection(kr, metaSum, sec)
		if err != nil {
			return nil, err
		}
		parts = append(parts, sec.part(data))
	}
	return parts, nil
}

// Close releases the source of a file whose late sections were left unread and will not be
// read (Rest closes it itself). Safe to call more than once, and on any File.
func (f *File) Close() {
	if f.rest != nil {
		f.rest.release()
		f.rest = nil
	}
}

// release closes the source the rest of the file would have been read from.
func (d *decoding) release() {
	if d.close != nil {
		d.close()
		d.close = nil
	}
}
