package token

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// calculateTTL is Vault's framework.CalculateTTL: the TTL of a token issued (or renewed) now,
// given the mount's default and max, the requested increment, the token's current TTL, its
// period and explicit max TTL, and when it was issued. The max TTL counts from issue, so
// renewals cannot push a token past issue + max; a period replaces the TTL at every renewal
// and is bounded only by the explicit max. Warnings are Vault's.
func calculateTTL(defTTL, maxTTL, increment, currentTTL, period, explicitMax time.Duration, issued, now time.Time) (time.Duration, []string, error) {
	now = now.Truncate(time.Second)
	issued = issued.Truncate(time.Second)
	if explicitMax > 0 && explicitMax < maxTTL {
		maxTTL = explicitMax
	}
	var (
		ttl      time.Duration
		warnings []string
		maxValid time.Time
	)
	switch {
	case period > 0:
		if period > maxTTL {
			warnings = append(warnings, fmt.Sprintf("period of %q exceeded the effective max_ttl of %q; period value is capped accordingly", HumanDuration(period), HumanDuration(maxTTL)))
			period = maxTTL
		}
		ttl = period
		if explicitMax > 0 {
			maxValid = issued.Add(explicitMax)
		}
	default:
		switch {
		case increment > 0:
			ttl = increment
		case currentTTL > 0:
			ttl = currentTTL
		default:
			ttl = defTTL
		}
		maxValid = issued.Add(maxTTL)
	}
	if !maxValid.IsZero() {
		left := maxValid.Sub(now)
		if left <= 0 {
			return 0, nil, engines.BadRequest("past the max TTL, cannot renew")
		}
		if ttl > left {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", HumanDuration(ttl), HumanDuration(left)))
			ttl = left
		}
	}
	return ttl, warnings, nil
}

// capByParent keeps a child from outliving its parent, whose expiry revokes it anyway: its TTL
// is cut to the parent's remaining time, with a warning in Vault's style.
func capByParent(ttl time.Duration, parentExpires, now time.Time) (time.Duration, string) {
	left := parentExpires.Sub(now).Truncate(time.Second)
	if left <= 0 {
		left = parentExpires.Sub(now)
	}
	if ttl <= left {
		return ttl, ""
	}
	return left, fmt.Sprintf("TTL of %q exceeded the parent token's remaining TTL of %q; TTL value is capped accordingly", HumanDuration(ttl), HumanDuration(left))
}

// HumanDuration prints a duration as Vault's TTL warnings and messages do: "768h", "1h30m",
// "45s".
func HumanDuration(d time.Duration) string {
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

// SanitizePolicies is Vault's policyutil.SanitizePolicies: trimmed, lower-cased, deduplicated
// and sorted; "root" swallows every other policy; "default" added when asked.
func SanitizePolicies(in []string, addDefault bool) []string {
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

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func subset(super, sub []string) bool {
	for _, s := range sub {
		if !contains(super, s) {
			return false
		}
	}
	return true
}

func without(list []string, s string) []string {
	out := list[:0:0]
	for _, e := range list {
		if e != s {
			out = append(out, e)
		}
	}
	return out
}

// displayNameSanitize is Vault's: anything but letters, digits and dashes becomes a dash.
var displayNameSanitize = regexp.MustCompile("[^a-zA-Z0-9-]")

// positiveDuration reads a duration field, refusing negative values with Vault's
// "<name> must be positive" before the generic parser sees them.
func positiveDuration(data map[string]any, key string) (time.Duration, error) {
	if engines.Negative(data[key]) {
		return 0, engines.BadRequest("%s must be positive", key)
	}
	return engines.Duration(data, key, 0)
}
