package commands

import (
	"fmt"
	"strings"
)

// CanonicalPath is the one form an API path takes before it is routed; the HTTP edge calls it
// once, on the decoded path (so "a%2F/" and "a//" are the same request). Clients end paths
// in more than one slash: vault-client-go escapes the path and appends "/" for a LIST
// ("vcg%2F/"), Vault's UI lists a mount's root as "path//". A trailing run of slashes is
// therefore one slash, and a LIST always ends in one, so "", "/" and "//" after a mount's
// list endpoint all name its root.
//
// An empty segment anywhere else ("a//b", "//a") is refused instead of collapsed: KV stores
// "a//b" and "a/b" under different keys, and folding one into the other would make two
// secrets one. A path made only of slashes is empty and refused.
//
// One place keeps its slashes: an OCSP GET ("<pki mount>/ocsp/<request>") carries a base64
// request, whose alphabet includes "/", and RFC 6960 clients do not all escape it. Only a read
// is let through that way, and only the text after the "ocsp" segment.
func CanonicalPath(p string, list bool) (string, error) {
	return canonicalPath(p, list, false)
}

// CanonicalReadPath is CanonicalPath for a read: it keeps an OCSP request's slashes.
func CanonicalReadPath(p string) (string, error) {
	return canonicalPath(p, false, true)
}

func canonicalPath(p string, list, read bool) (string, error) {
	if read {
		if i := strings.Index(p, "/ocsp/"); i > 0 && !strings.Contains(p[:i], "//") && !strings.HasPrefix(p, "/") {
			return p, nil
		}
	}
	if trimmed := strings.TrimRight(p, "/"); trimmed != p {
		if trimmed == "" {
			return "", fmt.Errorf("path %q is made only of slashes: %w", p, ErrInvalidPath)
		}
		p = trimmed + "/"
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return "", fmt.Errorf("path %q has an empty segment (\"//\"); write each segment once: %w", p, ErrInvalidPath)
	}
	if list && p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p, nil
}
