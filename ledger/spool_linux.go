package ledger

import (
	"errors"
	"os"
	"syscall"
)

// reserve allocates a segment's blocks with fallocate(2), or zeros where the file system does
// not have it.
func reserve(f *os.File, size int) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(size))
	if err != nil && (errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)) {
		return reserveZeros(f, size)
	}
	return err
}
