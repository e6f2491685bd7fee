package commands

import (
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// reservedPrefixes are the mount paths no engine may be enabled at, moved to or from, or
// disabled: the system backend, the token auth method, the per-token cubbyhole (a KV there
// would be shared between tokens) and identity. Vault refuses them alike.
var reservedPrefixes = []string{"sys/", "auth/token/", "cubbyhole/", "identity/"}

// ReservedMountPath reports, as a 400, whether path (a mount path with its trailing slash, or
// a path under one) is reserved. what says what was attempted ("mount at", "disable",
// "remount", "tune the type of") and goes into the message.
func ReservedMountPath(what, path string) error {
	p := strings.TrimLeft(path, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	for _, r := range reservedPrefixes {
		if strings.HasPrefix(p, r) {
			return engines.BadRequest("cannot %s %q: %s is a reserved path: it cannot be disabled, moved or mounted over", what, p, r)
		}
	}
	return nil
}
