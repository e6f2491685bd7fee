//go:build unix && !linux

package ledger

import "os"

// reserve allocates a segment's blocks by writing zeros.
func reserve(f *os.File, size int) error { return reserveZeros(f, size) }
