package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ledger-secrets/ledger/projections"
)

// InvalidUTF8Finding names the keys of one view that hold U+FFFD or invalid UTF-8. Before
// ValidatePath refused such paths, a path with invalid bytes was stored under a key where JSON
// had turned each bad byte into U+FFFD, while its ciphertext stayed bound to the original bytes,
// so its value no longer decrypts. Key names are not secrets; they are reported %+q-escaped (ASCII).
type InvalidUTF8Finding struct {
	View  string   `json:"view"`
	Count int      `json:"count"`
	Keys  []string `json:"keys"`
}

// maxUTF8Keys bounds the names listed per view; Count still says how many there are.
const maxUTF8Keys = 20

// invalidUTF8Keys walks every view's snapshot (which every view has, so no view needs its own
// scanner) and collects the map keys — paths, user, role, key and policy names — that carry
// U+FFFD or invalid bytes. Values are never looked at beyond their keys.
func invalidUTF8Keys(views []projections.View) ([]InvalidUTF8Finding, error) {
	var out []InvalidUTF8Finding
	for _, v := range views {
		seen := map[string]bool{}
		note := func(k string) {
			if strings.ContainsRune(k, utf8.RuneError) {
				seen[k] = true
			}
		}
		if kl, ok := v.(keyLister); ok {
			kl.Keys(note)
		} else {
			b, err := v.Snapshot()
			if err != nil {
				return nil, fmt.Errorf("snapshot view %s: %w", v.Name(), err)
			}
			if !strings.Contains(string(b), "\ufffd") && !strings.Contains(string(b), `\ufffd`) && utf8.Valid(b) {
				continue
			}
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				// A view whose snapshot is not JSON holds no names we can point at.
				continue
			}
			walkKeys(doc, note)
		}
		if len(seen) == 0 {
			continue
		}
		f := InvalidUTF8Finding{View: v.Name(), Count: len(seen)}
		for k := range seen {
			f.Keys = append(f.Keys, fmt.Sprintf("%+q", k)) // ASCII-only: U+FFFD as \ufffd
		}
		sort.Strings(f.Keys)
		if len(f.Keys) > maxUTF8Keys {
			f.Keys = f.Keys[:maxUTF8Keys]
		}
		out = append(out, f)
	}
	return out, nil
}

// keyLister is a view whose snapshot is not JSON (the KV view's is binary): it names the keys
// it holds itself.
type keyLister interface{ Keys(yield func(string)) }

func walkKeys(doc any, fn func(string)) {
	switch d := doc.(type) {
	case map[string]any:
		for k, v := range d {
			fn(k)
			walkKeys(v, fn)
		}
	case []any:
		for _, v := range d {
			walkKeys(v, fn)
		}
	}
}

// reportInvalidUTF8Keys logs, once after unseal, one warning per view holding keys written
// before paths had to be valid UTF-8, with what to do about them.
func (c *Core) reportInvalidUTF8Keys(st *unsealed) {
	if err := st.runner.WaitReady(context.Background()); err != nil {
		return // the node seals (restoreLate)
	}
	found, err := invalidUTF8Keys(st.runner.Views())
	if err != nil {
		c.logger.Warn("scan for keys with invalid UTF-8", "err", err)
		return
	}
	for _, f := range found {
		c.logger.Warn("keys written before paths had to be valid UTF-8 (their values may not decrypt); "+
			"list them with `ledger replay verify` and repair them as README.md says under Paths",
			"view", f.View, "count", f.Count, "keys", strings.Join(f.Keys, ", "))
	}
}
