package replay

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdviseHuge: a large buffer's whole huge pages are marked for huge pages (the kernel's
// VmFlags "hg" on the mapping that holds them), its bytes are unchanged, and small or odd
// buffers are left alone without error.
func TestAdviseHuge(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("this kernel has no transparent huge pages")
	}
	b := make([]byte, 8*hugePage+12345)
	adviseHuge(b)
	for i := range b {
		b[i] = byte(i * 7)
	}
	for i := range b {
		if b[i] != byte(i*7) {
			t.Fatalf("byte %d changed", i)
		}
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := (p + hugePage - 1) &^ (hugePage - 1)
	if flags := vmFlags(t, first); !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the mapping at %#x has VmFlags %q: no hg (huge pages advised)", first, flags)
	}
	last := (p+uintptr(len(b)))&^(hugePage-1) - 1
	if flags := vmFlags(t, last); !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the mapping at %#x (the last whole huge page) has VmFlags %q", last, flags)
	}
	for _, n := range []int{0, 1, hugePage, 2*hugePage - 1} {
		adviseHuge(make([]byte, n))
	}
	adviseHuge(b[1:]) // unaligned start
}

// vmFlags returns the VmFlags line of the mapping of this process that holds addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
