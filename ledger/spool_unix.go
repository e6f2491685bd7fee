//go:build unix

package ledger

import (
	"os"
	"syscall"
)

// spoolSupported: segments are mapped with mmap(2).
const spoolSupported = true

// mapSegment creates (or empties) the segment file name, sizes it and maps it shared, so what
// is copied into the mapping is the file's content in the page cache.
func mapSegment(name string, size int) (*os.File, []byte, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	// The blocks are reserved now: a page of a mapping that the file system has no room for
	// faults with SIGBUS when first written, which would take the process down instead of
	// refusing one append. fallocate(2) where the file system has it, zeros written otherwise.
	if err := reserve(f, size); err != nil {
		f.Close()
		os.Remove(name)
		return nil, nil, err
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		os.Remove(name)
		return nil, nil, err
	}
	return f, data, nil
}

func unmapSegment(seg *spoolSegment) {
	if seg.data != nil {
		syscall.Munmap(seg.data)
		seg.data = nil
	}
	if seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
}

// reserveZeros allocates a file's blocks by writing zeros.
func reserveZeros(f *os.File, size int) error {
	zeros := make([]byte, 64<<10)
	for off := 0; off < size; off += len(zeros) {
		if _, err := f.WriteAt(zeros[:min(len(zeros), size-off)], int64(off)); err != nil {
			return err
		}
	}
	return nil
}
