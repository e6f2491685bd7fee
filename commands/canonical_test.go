package commands

import (
	"errors"
	"testing"
)

func TestCanonicalReadPathKeepsOCSPRequestSlashes(t *testing.T) {
	// A base64 OCSP request may hold "//" (and end in "/"): a read keeps it whole.
	for _, p := range []string{"pki/ocsp/MFUw//5zVCRE", "pki_int/ocsp/ab/", "a/b/ocsp/x//y"} {
		got, err := CanonicalReadPath(p)
		if err != nil || got != p {
			t.Errorf("CanonicalReadPath(%q) = %q, %v; want it unchanged", p, got, err)
		}
	}
	// Anything else is as strict as ever, for reads too and for every write.
	for _, p := range []string{"a//b", "//ocsp/x", "a//b/ocsp/x", "/pki/ocsp/x"} {
		if got, err := CanonicalReadPath(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("CanonicalReadPath(%q) = %q, %v; want ErrInvalidPath", p, got, err)
		}
	}
	if got, err := CanonicalPath("pki/ocsp/a//b", false); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("CanonicalPath (a write) let %q through as %q", "pki/ocsp/a//b", got)
	}
	if got, err := CanonicalReadPath("secret/data/x//"); err != nil || got != "secret/data/x/" {
		t.Errorf("trailing slashes on a read: %q, %v", got, err)
	}
}
