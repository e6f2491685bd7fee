package commands

import "strings"

// matchSegments matches a path against a pattern in Vault's PathsSpecial form where "+" stands
// for exactly one path segment ("issuer/+/pem") and a trailing "*" for any rest.
func matchSegments(pattern, path string) bool {
	pp := strings.Split(pattern, "/")
	sp := strings.Split(path, "/")
	for i, p := range pp {
		if i == len(pp)-1 {
			if pre, ok := strings.CutSuffix(p, "*"); ok {
				return i < len(sp) && strings.HasPrefix(strings.Join(sp[i:], "/"), pre)
			}
		}
		if i >= len(sp) {
			return false
		}
		if p == "+" {
			if sp[i] == "" {
				return false
			}
			continue
		}
		if p != sp[i] {
			return false
		}
	}
	return len(pp) == len(sp)
}
