package commands

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPath checks the edge's path handling: whatever ValidatePath and CanonicalPath accept is
// valid UTF-8 without NUL, control characters or dot segments, and canonical forms are fixed
// points. The seeds run in every `go test`; `go test -fuzz=FuzzPath ./commands/` runs longer.
func FuzzPath(f *testing.F) {
	for _, s := range []string{
		"secret/data/app", "secret/data/bad-\xff", "secret/data/ok-\uFFFD", "a//b", "a/b//", "//", "/a",
		"secret/data/../x", "secret/data/./x", "x\x00y", " x", "x ", "\xc0\xaf", "\xed\xa0\x80", "auth/userpass/users/é",
		"sys/mounts/cubbyhole", "", "a/b/",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, p string, list bool) {
		if ValidatePath(p) == nil {
			if !utf8.ValidString(p) {
				t.Fatalf("accepted invalid UTF-8 %q", p)
			}
			for _, seg := range strings.Split(p, "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("accepted dot segment in %q", p)
				}
			}
			for _, r := range p {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("accepted control character in %q", p)
				}
			}
		}
		c, err := CanonicalPath(p, list)
		if err != nil {
			return
		}
		if again, err := CanonicalPath(c, list); err != nil || again != c {
			t.Fatalf("CanonicalPath(%q) = %q, and again %q, %v: not a fixed point", p, c, again, err)
		}
		_ = ReservedMountPath("mount at", c)
	})
}
