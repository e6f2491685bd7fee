package approle

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
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

// subsetCIDRs reports whether every block of sub lies inside a block of super; an empty super
// allows anything, as Vault's verifyCIDRRoleSecretIDSubset.
func subsetCIDRs(super, sub []string) bool {
	if len(super) == 0 {
		return true
	}
	for _, s := range sub {
		sp, ok := prefixOf(s)
		if !ok {
			return false
		}
		inside := false
		for _, c := range super {
			if cp, ok := prefixOf(c); ok && cp.Bits() <= sp.Bits() && cp.Contains(sp.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			return false
		}
	}
	return true
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

// newUUID is a random UUID in Vault's go-uuid format: all 128 bits random (go-uuid does not set
// version bits either), since role IDs and secret IDs are credentials.
func newUUID() string {
	var b [16]byte
	// crypto/rand.Read never fails (it aborts the program if the kernel's generator does).
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// parseMetadata reads a secret ID's metadata as Vault's strutil.ParseArbitraryKeyValues: a
// JSON object in a string (or base64 of one), or "k=v,k2=v2"; a JSON object is accepted too.
func parseMetadata(data map[string]any) (map[string]string, error) {
	v, ok := data["metadata"]
	if !ok || v == nil {
		return nil, nil
	}
	bad := func(why string) error { return engines.BadRequest("failed to parse metadata: %s", why) }
	s, isString := v.(string)
	if !isString {
		m, err := engines.StringMap(data, "metadata")
		if err != nil {
			return nil, bad("expected a JSON object of strings")
		}
		return m, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if dec, err := base64.StdEncoding.DecodeString(s); err == nil && strings.HasPrefix(strings.TrimSpace(string(dec)), "{") {
		s = string(dec)
	}
	if strings.HasPrefix(s, "{") {
		var m map[string]string
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, bad("expected a JSON object of strings")
		}
		return m, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, bad("expected a JSON object or key=value pairs")
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return m, nil
}
