package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// policyFor is the HCL policy a token needs to send method to path, in the
// exact shape of Vault's -output-policy: a paste-ready "path" block.
func policyFor(method, path string) string {
	path = strings.Trim(path, "/")
	var caps []string
	switch strings.ToUpper(method) {
	case http.MethodGet, "":
		caps = []string{"read"}
	case http.MethodPost, http.MethodPut:
		caps = []string{"create", "update"}
	case http.MethodPatch:
		caps = []string{"patch"}
	case http.MethodDelete:
		caps = []string{"delete"}
	case "LIST":
		caps = []string{"list"}
	}
	if isSudoPath(path) {
		caps = append(caps, "sudo")
	}
	return fmt.Sprintf("path %q {\n  capabilities = [\"%s\"]\n}\n", path, strings.Join(caps, `", "`))
}

// sudoPaths are the paths whose policy also needs "sudo"; the list is
// Vault's (api/sudo_paths.go), for the built-in mount points.
var sudoPaths = []*regexp.Regexp{
	regexp.MustCompile(`^auth/token/accessors/?$`),
	regexp.MustCompile(`^auth/token/revoke-orphan$`),
	regexp.MustCompile(`^pki/root$`),
	regexp.MustCompile(`^pki/root/sign-self-issued$`),
	regexp.MustCompile(`^sys/audit$`),
	regexp.MustCompile(`^sys/audit/.+$`),
	regexp.MustCompile(`^sys/auth/.+$`),
	regexp.MustCompile(`^sys/config/auditing/request-headers(/.+)?$`),
	regexp.MustCompile(`^sys/config/cors$`),
	regexp.MustCompile(`^sys/config/ui/headers/?$`),
	regexp.MustCompile(`^sys/config/ui/headers/.+$`),
	regexp.MustCompile(`^sys/internal/inspect/router/.+$`),
	regexp.MustCompile(`^sys/internal/counters/activity/export$`),
	regexp.MustCompile(`^sys/leases$`),
	regexp.MustCompile(`^sys/leases/lookup(/.+)?$`),
	regexp.MustCompile(`^sys/leases/revoke-force/.+$`),
	regexp.MustCompile(`^sys/leases/revoke-prefix/.+$`),
	regexp.MustCompile(`^sys/plugins/catalog/[^/]+$`),
	regexp.MustCompile(`^sys/plugins/catalog/[\w-]+/[^/]+$`),
	regexp.MustCompile(`^sys/plugins/runtimes/catalog/?$`),
	regexp.MustCompile(`^sys/plugins/runtimes/catalog/[\w-]+/[^/]+$`),
	regexp.MustCompile(`^sys/raw(/.+)?$`),
	regexp.MustCompile(`^sys/remount$`),
	regexp.MustCompile(`^sys/revoke-force/.+$`),
	regexp.MustCompile(`^sys/revoke-prefix/.+$`),
	regexp.MustCompile(`^sys/rotate$`),
	regexp.MustCompile(`^sys/seal$`),
	regexp.MustCompile(`^sys/step-down$`),
}

func isSudoPath(path string) bool {
	for _, re := range sudoPaths {
		if re.MatchString(path) {
			return true
		}
	}
	return false
}

// sanitizePath strips the slashes and spaces people type around paths.
func sanitizePath(p string) string {
	return strings.Trim(strings.TrimSpace(p), "/")
}

// ensureTrailingSlash is how mount paths are shown ("secret/").
func ensureTrailingSlash(p string) string {
	p = strings.TrimSpace(p)
	if p == "" || strings.HasSuffix(p, "/") {
		return p
	}
	return p + "/"
}
