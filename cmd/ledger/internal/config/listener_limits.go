package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Listener timeout defaults, as Vault's.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 5 * time.Minute
	// DefaultWriteTimeout is 0, no limit, as in Vault: a snapshot download may take long.
	DefaultWriteTimeout = 0
)

// Request body limits: Vault's defaults for the max_json_* options; max_request_fields is
// Ledger's bound on the fields of a whole body.
const (
	DefaultMaxRequestFields         = 100000
	DefaultMaxJSONDepth             = 500
	DefaultMaxJSONObjectEntryCount  = 10000
	DefaultMaxJSONArrayElementCount = 10000
	DefaultMaxJSONStringValueLength = 1 << 20
)

// ListenerLimits are a listener's timeouts and request body limits. Every field is positive
// after Parse, except WriteTimeout, where 0 means no limit.
type ListenerLimits struct {
	ReadHeaderTimeout time.Duration // http_read_header_timeout
	ReadTimeout       time.Duration // http_read_timeout: the whole request, body included
	WriteTimeout      time.Duration // http_write_timeout
	IdleTimeout       time.Duration // http_idle_timeout

	MaxRequestFields         int // max_request_fields: object keys and array elements of a body
	MaxJSONDepth             int // max_json_depth
	MaxJSONObjectEntryCount  int // max_json_object_entry_count
	MaxJSONArrayElementCount int // max_json_array_element_count
	MaxJSONStringValueLength int // max_json_string_value_length, bytes
}

// DefaultListenerLimits are the limits of a listener that sets none.
func DefaultListenerLimits() ListenerLimits {
	return ListenerLimits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxRequestFields: DefaultMaxRequestFields, MaxJSONDepth: DefaultMaxJSONDepth,
		MaxJSONObjectEntryCount: DefaultMaxJSONObjectEntryCount, MaxJSONArrayElementCount: DefaultMaxJSONArrayElementCount,
		MaxJSONStringValueLength: DefaultMaxJSONStringValueLength,
	}
}

// listenerLimitAttrs are the listener keys decodeLimits reads.
var listenerLimitAttrs = []string{
	"http_read_header_timeout", "http_read_timeout", "http_write_timeout", "http_idle_timeout",
	"max_request_fields", "max_json_depth", "max_json_object_entry_count", "max_json_array_element_count",
	"max_json_string_value_length",
}

// decodeLimits reads a listener's timeouts and body limits over the defaults.
func (d *decoder) decodeLimits(c *hcl.BodyContent, l *ListenerLimits) {
	durations := []struct {
		name      string
		dst       *time.Duration
		zeroMeans string // "" when 0 is refused
	}{
		{"http_read_header_timeout", &l.ReadHeaderTimeout, ""},
		{"http_read_timeout", &l.ReadTimeout, ""},
		{"http_write_timeout", &l.WriteTimeout, "no limit"},
		{"http_idle_timeout", &l.IdleTimeout, ""},
	}
	for _, f := range durations {
		a, ok := c.Attributes[f.name]
		if !ok {
			continue
		}
		v, ok := d.duration(a)
		if !ok {
			continue
		}
		if v == 0 && f.zeroMeans == "" {
			// A server without this timeout holds slow clients' connections forever.
			d.errorf(a.Range, "%s must be positive; ledger does not support disabling it", f.name)
			continue
		}
		*f.dst = v
	}
	counts := []struct {
		name string
		dst  *int
	}{
		{"max_request_fields", &l.MaxRequestFields},
		{"max_json_depth", &l.MaxJSONDepth},
		{"max_json_object_entry_count", &l.MaxJSONObjectEntryCount},
		{"max_json_array_element_count", &l.MaxJSONArrayElementCount},
		{"max_json_string_value_length", &l.MaxJSONStringValueLength},
	}
	for _, f := range counts {
		a, ok := c.Attributes[f.name]
		if !ok {
			continue
		}
		n, ok := d.integer(a)
		if !ok {
			continue
		}
		if n <= 0 || n > 1<<31-1 {
			d.errorf(a.Range, "%s must be a positive number, got %d; ledger does not support disabling the limit", f.name, n)
			continue
		}
		*f.dst = int(n)
	}
}

// noLimitIfZero: a retention of 0 written in the file means "keep everything", which the
// server options spell -1 (their 0 means "the default").
func noLimitIfZero[T ~int64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
