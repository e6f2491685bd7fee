//go:build !unix

package ledger

import (
	"errors"
	"os"
)

// spoolSupported: without mmap(2) streams append directly.
const spoolSupported = false

func mapSegment(name string, size int) (*os.File, []byte, error) {
	return nil, nil, errors.New("spool segments need mmap")
}

func unmapSegment(seg *spoolSegment) {
	if seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
}
