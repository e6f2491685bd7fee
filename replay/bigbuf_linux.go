package replay

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on the platforms Ledger runs on.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back b's whole huge pages with huge pages when it first
// touches them (madvise MADV_HUGEPAGE; the default "madvise" mode of transparent huge pages
// needs it). b must not have been written yet, or the advice changes nothing until the kernel
// collapses the pages. A hint: an error (no THP support, a kernel that refuses) changes
// nothing. b stays Go memory, owned and freed by the garbage collector as usual.
func adviseHuge(b []byte) {
	if len(b) < 2*hugePage {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	beg := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + uintptr(len(b))) &^ (hugePage - 1)
	if beg >= end {
		return
	}
	_ = unix.Madvise(b[beg-p:end-p], unix.MADV_HUGEPAGE)
}
