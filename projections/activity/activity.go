// Package activity is the client-count view behind sys/internal/counters/activity: for each
// month, the distinct clients that were issued a token, and where. A client is its entity when
// the token has one, else (as Vault counts non-entity tokens) the hash of its sorted policies.
// It is derived from token.created events alone, so replaying the log rebuilds the same counts.
package activity

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Client is one client seen in a month: whether it is an entity, and the path of its first
// token that month (the mount is resolved when the counts are read).
type Client struct {
	Entity bool   `json:"entity,omitempty"`
	Path   string `json:"path"`
}

// View holds the clients per month ("2006-01", UTC).
type View struct {
	mu     sync.RWMutex
	months map[string]map[string]Client
}

// New returns an empty view.
func New() *View { return &View{months: map[string]map[string]Client{}} }

// Name implements projections.View.
func (v *View) Name() string { return "activity" }

// MonthKey is the key of the month holding t.
func MonthKey(t time.Time) string { return t.UTC().Format("2006-01") }

// ClientID is the client a token counts as.
func ClientID(entityID string, policies []string) (string, bool) {
	if entityID != "" {
		return entityID, true
	}
	p := append([]string(nil), policies...)
	sort.Strings(p)
	h := sha256.Sum256([]byte("root/" + strings.Join(p, ",")))
	return base64.StdEncoding.EncodeToString(h[:]), false
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	if rec.Type != tokenview.Created {
		return nil
	}
	var p tokenview.CreatedPayload
	if err := projections.Decode(rec, &p); err != nil {
		return err
	}
	id, entity := ClientID(p.EntityID, p.Policies)
	month := MonthKey(p.CreationTime)
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.months[month]
	if m == nil {
		m = map[string]Client{}
		v.months[month] = m
	}
	if _, seen := m[id]; !seen {
		m[id] = Client{Entity: entity, Path: p.Path}
	}
	return nil
}

// Month returns the clients of a month (a copy).
func (v *View) Month(key string) map[string]Client {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make(map[string]Client, len(v.months[key]))
	for id, c := range v.months[key] {
		out[id] = c
	}
	return out
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(v.months) // map keys are sorted: the encoding is canonical
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	m := map[string]map[string]Client{}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("restore activity view: %w", err)
	}
	v.mu.Lock()
	v.months = m
	v.mu.Unlock()
	return nil
}
