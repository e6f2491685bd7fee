// Package cors is the view of the CORS configuration (sys/config/cors): whether cross-origin
// requests are allowed, from which origins and with which headers. The HTTP edge applies it.
package cors

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types.
const (
	Configured = "cors.configured.v1"
	Disabled   = "cors.disabled.v1"
)

// Config is the CORS configuration; the zero value is disabled.
type Config struct {
	Enabled        bool     `json:"enabled"`
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	AllowedHeaders []string `json:"allowed_headers,omitempty"`
}

// View holds the configuration.
type View struct {
	mu sync.RWMutex
	c  Config
}

// New returns a view with CORS disabled.
func New() *View { return &View{} }

// Name implements projections.View.
func (v *View) Name() string { return "cors" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Configured:
		var c Config
		if err := projections.Decode(rec, &c); err != nil {
			return err
		}
		c.Enabled = true
		v.mu.Lock()
		v.c = c
		v.mu.Unlock()
	case Disabled:
		v.mu.Lock()
		v.c = Config{}
		v.mu.Unlock()
	}
	return nil
}

// Config returns the configuration (a copy).
func (v *View) Config() Config {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c := v.c
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	c.AllowedHeaders = append([]string(nil), c.AllowedHeaders...)
	return c
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(v.c)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("restore cors view: %w", err)
	}
	v.mu.Lock()
	v.c = c
	v.mu.Unlock()
	return nil
}
