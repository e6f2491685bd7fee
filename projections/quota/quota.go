// Package quota is the view of resource quotas: rate-limit quotas (sys/quotas/rate-limit),
// lease-count quotas (sys/quotas/lease-count) and the quota configuration (sys/quotas/config).
// It stores the rules as accepted by the writer; counting requests is the pipeline's (in memory,
// per node, as Vault does) and counting leases is a question to the lease and token views.
package quota

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types.
const (
	Written       = "quota.written.v1"
	Deleted       = "quota.deleted.v1"
	ConfigWritten = "quota.config.written.v1"
)

// Quota types, by Vault's names.
const (
	TypeRateLimit  = "rate-limit"
	TypeLeaseCount = "lease-count"
)

// Quota is one rule. MountPath is empty for a global quota; PathSuffix narrows a mount quota to
// the paths under it; Role narrows an auth mount quota to logins with that role.
type Quota struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	MountPath   string `json:"mount_path,omitempty"`
	PathSuffix  string `json:"path_suffix,omitempty"`
	Role        string `json:"role,omitempty"`
	Inheritable bool   `json:"inheritable,omitempty"`
	// Rate-limit quotas: Rate requests per Interval per client address; a client over the rate
	// is refused for BlockInterval when that is set.
	Rate          float64       `json:"rate,omitempty"`
	Interval      time.Duration `json:"interval,omitempty"`
	BlockInterval time.Duration `json:"block_interval,omitempty"`
	// Lease-count quotas: at most MaxLeases live leases (and login tokens) under the path.
	MaxLeases int `json:"max_leases,omitempty"`
	// Version is the position of the write; in-memory counters restart when it changes.
	Version ledger.Position `json:"version"`
}

// Path is the quota's path as the API shows it.
func (q Quota) Path() string { return q.MountPath + q.PathSuffix }

// DeletedPayload removes a quota.
type DeletedPayload struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// Config is sys/quotas/config. Configured is false until the first write, when Vault's default
// exempt paths apply.
type Config struct {
	Configured                     bool     `json:"configured"`
	EnableRateLimitAuditLogging    bool     `json:"enable_rate_limit_audit_logging"`
	EnableRateLimitResponseHeaders bool     `json:"enable_rate_limit_response_headers"`
	RateLimitExemptPaths           []string `json:"rate_limit_exempt_paths"`
}

// DefaultExemptPaths are Vault's rate-limit exempt paths until the config is first written.
var DefaultExemptPaths = []string{
	"sys/generate-recovery-token/attempt", "sys/generate-recovery-token/update",
	"sys/generate-root/attempt", "sys/generate-root/update",
	"sys/health", "sys/seal-status", "sys/unseal",
}

// View holds the quotas and the configuration.
type View struct {
	mu     sync.RWMutex
	quotas map[string]map[string]Quota // type → name → quota
	config Config
}

// New returns an empty view.
func New() *View {
	return &View{quotas: map[string]map[string]Quota{TypeRateLimit: {}, TypeLeaseCount: {}}}
}

// Name implements projections.View.
func (v *View) Name() string { return "quota" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Written:
		var q Quota
		if err := projections.Decode(rec, &q); err != nil {
			return err
		}
		q.Version = rec.Pos
		v.mu.Lock()
		if m, ok := v.quotas[q.Type]; ok {
			m[q.Name] = q
		}
		v.mu.Unlock()
	case Deleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		delete(v.quotas[p.Type], p.Name)
		v.mu.Unlock()
	case ConfigWritten:
		var c Config
		if err := projections.Decode(rec, &c); err != nil {
			return err
		}
		c.Configured = true
		v.mu.Lock()
		v.config = c
		v.mu.Unlock()
	}
	return nil
}

// Get returns the quota of type typ called name.
func (v *View) Get(typ, name string) (Quota, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	q, ok := v.quotas[typ][name]
	return q, ok
}

// Names lists the quotas of a type, sorted.
func (v *View) Names(typ string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.quotas[typ]))
	for n := range v.quotas[typ] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All returns the quotas of a type.
func (v *View) All(typ string) []Quota {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Quota, 0, len(v.quotas[typ]))
	for _, q := range v.quotas[typ] {
		out = append(out, q)
	}
	return out
}

// Config returns the configuration, with Vault's default exempt paths until one was written.
func (v *View) Config() Config {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c := v.config
	if !c.Configured {
		c.RateLimitExemptPaths = DefaultExemptPaths
	}
	c.RateLimitExemptPaths = append([]string{}, c.RateLimitExemptPaths...)
	return c
}

type state struct {
	Quotas []Quota `json:"quotas"`
	Config Config  `json:"config"`
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := state{Quotas: []Quota{}, Config: v.config}
	for _, m := range v.quotas {
		for _, q := range m {
			s.Quotas = append(s.Quotas, q)
		}
	}
	sort.Slice(s.Quotas, func(i, j int) bool {
		a, b := s.Quotas[i], s.Quotas[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Name < b.Name
	})
	return json.Marshal(s)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore quota view: %w", err)
	}
	qs := map[string]map[string]Quota{TypeRateLimit: {}, TypeLeaseCount: {}}
	for _, q := range s.Quotas {
		if m, ok := qs[q.Type]; ok {
			m[q.Name] = q
		}
	}
	v.mu.Lock()
	v.quotas, v.config = qs, s.Config
	v.mu.Unlock()
	return nil
}
