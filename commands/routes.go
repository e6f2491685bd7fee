package commands

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// ignoredPrefix starts Vault's warning for request fields an endpoint does not read.
const ignoredPrefix = "Endpoint ignored these unrecognized parameters: "

// warnIgnored adds Vault's warning naming the request fields the route does not read. Vault
// accepts and ignores them (node-vault sends every argument in the body, mount_point
// included), so Ledger does too, for every described path; a known field of the wrong type
// stays the backend's 400. A field that differs from a known one only in case ("TTL") is
// ignored as well — fields are case-sensitive — and gets a warning of its own naming the
// field that was meant.
func warnIgnored(b engines.Backend, req *engines.Request, resp *engines.Response) {
	d, ok := b.(engines.Describer)
	if !ok || len(req.Data) == 0 {
		return
	}
	for _, w := range resp.Warnings {
		if strings.HasPrefix(w, ignoredPrefix) {
			return // the backend checked its own fields
		}
	}
	r, _, ok := engines.Match(d.Routes(), req.Path)
	if !ok {
		return
	}
	ignored, shadows := r.Ignored(req.Data)
	if len(ignored) == 0 {
		return
	}
	resp.Warnings = append(resp.Warnings, fmt.Sprintf("%s%v", ignoredPrefix, ignored))
	names := make([]string, 0, len(shadows))
	for k := range shadows {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("Parameter %q was ignored: parameter names are case-sensitive; did you mean %q?", k, shadows[k]))
	}
}
