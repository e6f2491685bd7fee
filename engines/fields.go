package engines

import (
	"encoding/json"
	"math"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Field accessors read request data the way Vault's framework does: JSON numbers or numeric
// strings for integers, "1h"/"90s"/seconds for durations, comma-separated strings or arrays for
// lists, and "true"/"1" for booleans. A value of the wrong type is a 400 naming the field.

// Has reports whether key was supplied.
func Has(data map[string]any, key string) bool {
	_, ok := data[key]
	return ok
}

// String returns data[key] as a string, def when absent.
func String(data map[string]any, key, def string) (string, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(t), nil
	}
	return "", BadRequest("field %q: expected a string", key)
}

// Int returns data[key] as an integer, def when absent.
func Int(data map[string]any, key string, def int) (int, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return def, nil
	}
	bad := BadRequest("field %q: expected an integer", key)
	switch t := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(t.String(), 10, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			return 0, bad
		}
		return int(i), nil
	case float64:
		if t != math.Trunc(t) || t > math.MaxInt32 || t < math.MinInt32 {
			return 0, bad
		}
		return int(t), nil
	case string:
		if t == "" {
			return def, nil
		}
		i, err := strconv.ParseInt(t, 10, 32)
		if err != nil {
			return 0, bad
		}
		return int(i), nil
	}
	return 0, bad
}

// Bool returns data[key] as a boolean, def when absent.
func Bool(data map[string]any, key string, def bool) (bool, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		if t == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(t)
		if err != nil {
			return false, BadRequest("field %q: expected a boolean", key)
		}
		return b, nil
	case json.Number:
		return t.String() != "0", nil
	case float64:
		return t != 0, nil
	}
	return false, BadRequest("field %q: expected a boolean", key)
}

// Duration returns data[key] as a duration: an integer number of seconds or a Go/Vault duration
// string ("90s", "1h", "7d"). def when absent.
func Duration(data map[string]any, key string, def time.Duration) (time.Duration, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return def, nil
	}
	bad := BadRequest("field %q: expected a duration such as \"1h\" or a number of seconds", key)
	switch t := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(t.String(), 10, 64)
		if err != nil || i < 0 {
			return 0, bad
		}
		return time.Duration(i) * time.Second, nil
	case float64:
		if t < 0 || t != math.Trunc(t) {
			return 0, bad
		}
		return time.Duration(t) * time.Second, nil
	case string:
		d, err := ParseDuration(t)
		if err != nil {
			return 0, bad
		}
		return d, nil
	}
	return 0, bad
}

// NonNegativeDuration is Duration (0 when absent) refusing a negative value with Vault's
// tokenutil message, "'<key>' cannot be negative", before the generic parser's.
func NonNegativeDuration(data map[string]any, key string) (time.Duration, error) {
	if Negative(data[key]) {
		return 0, BadRequest("'%s' cannot be negative", key)
	}
	return Duration(data, key, 0)
}

// Negative reports whether a request value is a negative number or a string starting with "-",
// so that a backend can refuse it with Vault's own message rather than the generic parser's.
func Negative(v any) bool {
	switch t := v.(type) {
	case json.Number:
		return strings.HasPrefix(strings.TrimSpace(t.String()), "-")
	case string:
		return strings.HasPrefix(strings.TrimSpace(t), "-")
	case float64:
		return t < 0
	case int:
		return t < 0
	case int64:
		return t < 0
	}
	return false
}

// ParseDuration parses "", seconds ("30"), Go durations ("1h30m") and days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i < 0 {
			return 0, strconv.ErrRange
		}
		return time.Duration(i) * time.Second, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		i, err := strconv.ParseInt(d, 10, 64)
		if err != nil || i < 0 {
			return 0, strconv.ErrSyntax
		}
		return time.Duration(i) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, strconv.ErrSyntax
	}
	return d, nil
}

// Strings returns data[key] as a list: a JSON array of strings or a comma-separated string.
// Entries are trimmed; empty entries dropped.
func Strings(data map[string]any, key string) ([]string, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return nil, nil
	}
	var raw []string
	switch t := v.(type) {
	case string:
		raw = strings.Split(t, ",")
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, BadRequest("field %q: expected a list of strings", key)
			}
			raw = append(raw, s)
		}
	case []string:
		raw = t
	default:
		return nil, BadRequest("field %q: expected a list of strings", key)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// StringMap returns data[key] as a map of strings: a JSON object or "k=v,k2=v2".
func StringMap(data map[string]any, key string) (map[string]string, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return nil, nil
	}
	out := map[string]string{}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, BadRequest("field %q: values must be strings", key)
			}
			out[k] = s
		}
	case string:
		for _, kv := range strings.Split(t, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, BadRequest("field %q: expected key=value pairs", key)
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	default:
		return nil, BadRequest("field %q: expected an object of strings", key)
	}
	return out, nil
}

// Unknown returns the keys of data not in allowed, sorted, so a backend can warn about or
// refuse them.
func Unknown(data map[string]any, allowed ...string) []string {
	var out []string
	for k := range data {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// CIDR lists (token_bound_cidrs, secret_id_bound_cidrs, …) hold blocks or bare addresses, as
// Vault's sockaddr parsing accepts them; a bare address is the block of that one address.

// CheckCIDRs returns a 400 with msg unless every entry is an address or a CIDR block.
func CheckCIDRs(msg string, cidrs []string) error {
	for _, c := range cidrs {
		if _, ok := prefixOf(c); !ok {
			return BadRequest("%s", msg)
		}
	}
	return nil
}

// HostOf is the address part of a "host:port" remote address.
func HostOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return strings.TrimSpace(remote)
	}
	return host
}

// InCIDRs reports whether host lies in one of the blocks.
func InCIDRs(host string, cidrs []string) bool {
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

// SubsetCIDRs reports whether every block of sub lies inside a block of super; an empty super
// allows anything, as Vault's verifyCIDRRoleSecretIDSubset.
func SubsetCIDRs(super, sub []string) bool {
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

// prefixOf reads a CIDR block, or a bare address as the block of that one address. IPv4-mapped
// IPv6 blocks are read as the IPv4 blocks they map, so they match IPv4 peers.
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
