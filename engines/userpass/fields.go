package userpass

import (
	"encoding/json"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// nonNegativeDuration reads a duration field, refusing a negative one with tokenutil's
// "'<name>' cannot be negative" before the generic parser sees it.
func nonNegativeDuration(data map[string]any, key string) (time.Duration, error) {
	if negative(data[key]) {
		return 0, engines.BadRequest("'%s' cannot be negative", key)
	}
	return engines.Duration(data, key, 0)
}

func negative(v any) bool {
	switch t := v.(type) {
	case json.Number:
		return strings.HasPrefix(strings.TrimSpace(t.String()), "-")
	case string:
		return strings.HasPrefix(strings.TrimSpace(t), "-")
	case float64:
		return t < 0
	case int:
		return t < 0
	}
	return false
}

// prefixOf reads a CIDR block, or a bare address as the block of that one address.
func prefixOf(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// checkCIDRs returns a 400 with msg unless every entry is an address or a CIDR block.
func checkCIDRs(msg string, cidrs []string) error {
	for _, c := range cidrs {
		if _, ok := prefixOf(c); !ok {
			return engines.BadRequest("%s", msg)
		}
	}
	return nil
}

// hostOf is the address part of a "host:port" remote address.
func hostOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return strings.TrimSpace(remote)
	}
	return host
}

// inCIDRs reports whether host lies in one of the blocks.
func inCIDRs(host string, cidrs []string) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, c := range cidrs {
		if p, ok := prefixOf(c); ok && p.Contains(a) {
			return true
		}
	}
	return false
}

// sanitizePolicies is Vault's policyutil.SanitizePolicies: trimmed, lower-cased, deduplicated
// and sorted; "root" swallows every other policy; "default" added when asked.
func sanitizePolicies(in []string, addDefault bool) []string {
	out := make([]string, 0, len(in)+1)
	seen := make(map[string]bool, len(in))
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || seen[p] {
			continue
		}
		if p == "root" {
			return []string{"root"}
		}
		seen[p] = true
		out = append(out, p)
	}
	if addDefault && !seen["default"] {
		out = append(out, "default")
	}
	sort.Strings(out)
	return out
}

// humanDuration prints a duration as Vault's warnings do: "768h", "1h30m", "45s".
func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// seconds is a duration as Vault's JSON shows it: whole seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// list copies a list for a response: [] rather than null when empty, as Vault shows lists.
func list(in []string) []string { return append([]string{}, in...) }

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
