//go:build !linux

package replay

// adviseHuge is a no-op where the kernel takes no huge-page advice (see bigbuf_linux.go).
func adviseHuge([]byte) {}
