package config

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// problem is one error in a config file. It wraps ErrInvalid.
type problem struct {
	file string
	pos  hcl.Pos // Line 0 when the problem is the absence of something
	msg  string
}

func (p *problem) Error() string {
	if p.pos.Line == 0 {
		return fmt.Sprintf("%s: %s", p.file, p.msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.file, p.pos.Line, p.msg)
}

func (p *problem) Unwrap() error { return ErrInvalid }

// decoder collects the errors and warnings of one Parse call, so that a file
// with several mistakes is reported in one go.
type decoder struct {
	file     string
	problems []*problem
	warnings []*problem
}

func (d *decoder) errorf(r hcl.Range, format string, args ...any) {
	d.problems = append(d.problems, &problem{file: d.file, pos: r.Start, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(r hcl.Range, format string, args ...any) {
	d.warnings = append(d.warnings, &problem{file: d.file, pos: r.Start, msg: fmt.Sprintf(format, args...)})
}

// addDiags records HCL's own diagnostics (syntax errors, duplicate keys,
// missing labels) in our file:line form.
func (d *decoder) addDiags(diags hcl.Diagnostics) {
	for _, diag := range diags {
		var r hcl.Range
		if diag.Subject != nil {
			r = *diag.Subject
		}
		msg := diag.Summary
		if diag.Detail != "" {
			msg += ": " + diag.Detail
		}
		if diag.Severity == hcl.DiagError {
			d.errorf(r, "%s", msg)
		} else {
			d.warnf(r, "%s", msg)
		}
	}
}

func byPosition(a, b *problem) int {
	// Problems without a line (a missing block) read best after the rest.
	if (a.pos.Line == 0) != (b.pos.Line == 0) {
		return cmp.Compare(b.pos.Line, a.pos.Line)
	}
	return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Column, b.pos.Column))
}

func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(d.problems, byPosition)
	errs := make([]error, len(d.problems))
	for i, p := range d.problems {
		errs[i] = p
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func (d *decoder) warningStrings() []string {
	slices.SortStableFunc(d.warnings, byPosition)
	out := make([]string, len(d.warnings))
	for i, w := range d.warnings {
		out[i] = w.Error()
	}
	return out
}

// content extracts the given attributes and blocks from body and warns about
// every other key, except those in silent, which Vault defines and Ledger
// accepts without acting on. where names the enclosing block for the warning
// and is empty at the top level.
func (d *decoder) content(body hcl.Body, where string, attrs []string, blocks []hcl.BlockHeaderSchema, silent ...string) *hcl.BodyContent {
	schema := &hcl.BodySchema{Blocks: blocks}
	known := map[string]bool{}
	for _, a := range attrs {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: a})
		known[a] = true
	}
	for _, b := range blocks {
		known[b.Type] = true
	}
	for _, s := range silent {
		known[s] = true
	}

	c, _, diags := body.PartialContent(schema)
	d.addDiags(diags)

	suffix := " (ignored)"
	if where != "" {
		suffix = " in " + where + suffix
	}
	for _, k := range keys(body) {
		if !known[k.name] {
			d.warnf(k.rng, "unknown key %q%s", k.name, suffix)
		}
	}
	return c
}

type key struct {
	name string
	rng  hcl.Range
}

// keys lists every attribute and block name written in body. hcl.Body has
// no such method: native syntax exposes its structure directly, and in JSON,
// where attributes and blocks look alike, JustAttributes returns every
// property.
func keys(body hcl.Body) []key {
	var out []key
	if native, ok := body.(*hclsyntax.Body); ok {
		for name, a := range native.Attributes {
			out = append(out, key{name: name, rng: a.NameRange})
		}
		for _, b := range native.Blocks {
			out = append(out, key{name: b.Type, rng: b.TypeRange})
		}
		return out
	}
	// Diagnostics here repeat what PartialContent already reported.
	attrs, _ := body.JustAttributes()
	for name, a := range attrs {
		out = append(out, key{name: name, rng: a.NameRange})
	}
	return out
}

func (d *decoder) decodeRoot(body hcl.Body) *Config {
	c := d.content(body, "",
		[]string{"api_addr", "cluster_name", "log_level", "audit_retention_age", "audit_retention_bytes", "audit_read_spool", "node_id",
			"events_nats_subject_prefix", "events_nats_url"},
		[]hcl.BlockHeaderSchema{
			{Type: "storage", LabelNames: []string{"type"}},
			{Type: "listener", LabelNames: []string{"type"}},
			{Type: "telemetry"},
			{Type: "service_registration", LabelNames: []string{"type"}},
			{Type: "seal", LabelNames: []string{"type"}},
		},
		// Vault settings with no meaning here: Ledger has no web UI and
		// leaves memory locking to the operating system's configuration.
		"ui", "disable_mlock",
	)

	cfg := &Config{ClusterName: DefaultClusterName, LogLevel: DefaultLogLevel}
	var storages, listeners, registrations, seals []*hcl.Block
	for _, b := range c.Blocks {
		switch b.Type {
		case "service_registration":
			registrations = append(registrations, b)
		case "storage":
			storages = append(storages, b)
		case "listener":
			listeners = append(listeners, b)
		case "telemetry":
			cfg.Telemetry = d.decodeTelemetry(b)
		case "seal":
			seals = append(seals, b)
		}
	}

	switch len(storages) {
	case 0:
		d.errorf(hcl.Range{}, `no storage block; add storage "jetstream" { path = "/var/lib/ledger" }`)
	case 1:
		cfg.Storage = d.decodeStorage(storages[0])
	default:
		for _, b := range storages[1:] {
			d.errorf(b.DefRange, "only one storage block is allowed; the first is at line %d", storages[0].DefRange.Start.Line)
		}
	}

	cfg.ServiceRegistration = d.decodeServiceRegistrations(registrations)
	cfg.Seals = d.decodeSeals(seals)

	if len(listeners) == 0 {
		d.errorf(hcl.Range{}, `no listener block; add listener "tcp" { address = %q }`, DefaultAddress)
	}
	addresses := map[string]int{}
	for _, b := range listeners {
		l, ok := d.decodeListener(b)
		if !ok {
			continue
		}
		if line, dup := addresses[l.Address]; dup {
			d.errorf(b.DefRange, "listener address %s is already used by the listener at line %d", l.Address, line)
			continue
		}
		addresses[l.Address] = b.DefRange.Start.Line
		cfg.Listeners = append(cfg.Listeners, l)
	}

	if a, ok := c.Attributes["api_addr"]; ok {
		if s, ok := d.str(a); ok {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.errorf(a.Range, "api_addr %q must be an http:// or https:// URL with a host", s)
			} else {
				cfg.APIAddr = s
			}
		}
	}
	if a, ok := c.Attributes["node_id"]; ok {
		if s, ok := d.nonEmptyStr(a); ok {
			if err := validNodeID(s); err != nil {
				d.errorf(a.Range, "node_id %q %v", s, err)
			} else {
				cfg.NodeID = s
			}
		}
	}
	if a, ok := c.Attributes["cluster_name"]; ok {
		if s, ok := d.str(a); ok && s != "" {
			cfg.ClusterName = s
		}
	}
	if a, ok := c.Attributes["events_nats_subject_prefix"]; ok {
		if v, ok := d.str(a); ok {
			if !natsSubjectRE.MatchString(v) {
				d.errorf(a.Range, "events_nats_subject_prefix %q must be a NATS subject without wildcards, such as \"ledger.events\"", v)
			} else {
				cfg.EventsNATSSubjectPrefix = v
			}
		}
	}
	if a, ok := c.Attributes["events_nats_url"]; ok {
		if v, ok := d.str(a); ok {
			if !strings.HasPrefix(v, "nats://") && !strings.HasPrefix(v, "tls://") {
				d.errorf(a.Range, "events_nats_url must be a nats:// or tls:// URL")
			} else {
				cfg.EventsNATSURL = v
			}
		}
	}
	if a, ok := c.Attributes["audit_retention_age"]; ok {
		if v, ok := d.duration(a); ok {
			cfg.AuditRetentionAge = noLimitIfZero(v)
		}
	}
	if a, ok := c.Attributes["audit_retention_bytes"]; ok {
		if n, ok := d.integer(a); ok {
			if n < 0 {
				d.errorf(a.Range, "audit_retention_bytes must be 0 (no limit) or a positive number of bytes, got %d", n)
			} else {
				cfg.AuditRetentionBytes = noLimitIfZero(n)
			}
		}
	}
	if a, ok := c.Attributes["audit_read_spool"]; ok {
		if v, ok := d.boolean(a); ok {
			cfg.AuditDirectReads = !v
		}
	}
	if a, ok := c.Attributes["log_level"]; ok {
		if s, ok := d.str(a); ok {
			if level, ok := logLevel(s); ok {
				cfg.LogLevel = level
			} else {
				d.errorf(a.Range, "log_level %q is not one of trace, debug, info, warn, error", s)
			}
		}
	}
	return cfg
}

// logLevel normalises a level name, accepting the aliases Vault accepts.
func logLevel(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return "trace", true
	case "debug":
		return "debug", true
	case "info", "notice", "":
		return "info", true
	case "warn", "warning":
		return "warn", true
	case "error", "err":
		return "error", true
	}
	return "", false
}

func (d *decoder) decodeListener(b *hcl.Block) (Listener, bool) {
	l := Listener{Type: b.Labels[0], Address: DefaultAddress, MaxRequestSize: DefaultMaxRequestSize, Limits: DefaultListenerLimits()}
	if l.Type != "tcp" {
		d.errorf(b.DefRange, `listener type %q is not supported; only "tcp" is`, l.Type)
		return l, false
	}
	where := fmt.Sprintf("listener %q", l.Type)
	c := d.content(b.Body, where, append([]string{"address", "tls_disable", "tls_cert_file", "tls_key_file", "max_request_size"}, listenerLimitAttrs...),
		[]hcl.BlockHeaderSchema{{Type: "telemetry"}})
	before := len(d.problems)
	d.decodeLimits(c, &l.Limits)
	for _, tb := range c.Blocks {
		tc := d.content(tb.Body, where+" telemetry", []string{"unauthenticated_metrics_access"}, nil)
		if a, ok := tc.Attributes["unauthenticated_metrics_access"]; ok {
			l.UnauthenticatedMetricsAccess, _ = d.boolean(a)
		}
	}

	if a, ok := c.Attributes["address"]; ok {
		if s, ok := d.str(a); ok {
			if _, _, err := net.SplitHostPort(s); err != nil {
				d.errorf(a.Range, "address %q must be host:port: %v", s, err)
			} else {
				l.Address = s
			}
		}
	}
	if a, ok := c.Attributes["tls_disable"]; ok {
		l.TLSDisable, _ = d.boolean(a)
	}
	if a, ok := c.Attributes["tls_cert_file"]; ok {
		l.TLSCertFile, _ = d.nonEmptyStr(a)
	}
	if a, ok := c.Attributes["tls_key_file"]; ok {
		l.TLSKeyFile, _ = d.nonEmptyStr(a)
	}
	// A tls_disable or file setting that failed to decode has already been
	// reported; judging TLS on the remains would only add noise.
	if !l.TLSDisable && len(d.problems) == before {
		switch {
		case l.TLSCertFile == "" && l.TLSKeyFile == "":
			d.errorf(b.DefRange, "%s needs tls_cert_file and tls_key_file, or tls_disable = true", where)
		case l.TLSCertFile == "":
			d.errorf(b.DefRange, "%s has tls_key_file but no tls_cert_file", where)
		case l.TLSKeyFile == "":
			d.errorf(b.DefRange, "%s has tls_cert_file but no tls_key_file", where)
		}
	}
	if a, ok := c.Attributes["max_request_size"]; ok {
		if n, ok := d.integer(a); ok {
			switch {
			case n < 0:
				// Vault reads a negative size as "no limit"; a secrets
				// server should not accept unbounded bodies by config typo.
				d.errorf(a.Range, "max_request_size must be positive; ledger does not support disabling the limit")
			case n > 0:
				l.MaxRequestSize = n
			}
		}
	}
	return l, len(d.problems) == before
}

// value evaluates an attribute that must be a literal: there are no
// variables or functions in a config file.
func (d *decoder) value(a *hcl.Attribute) (cty.Value, bool) {
	v, diags := a.Expr.Value(nil)
	d.addDiags(diags)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() {
		d.errorf(a.Range, "%s must not be null", a.Name)
		return cty.NilVal, false
	}
	return v, true
}

func (d *decoder) str(a *hcl.Attribute) (string, bool) {
	v, ok := d.value(a)
	if !ok {
		return "", false
	}
	if v.Type() != cty.String {
		d.errorf(a.Range, "%s must be a string, got %s", a.Name, v.Type().FriendlyName())
		return "", false
	}
	return v.AsString(), true
}

func (d *decoder) nonEmptyStr(a *hcl.Attribute) (string, bool) {
	s, ok := d.str(a)
	if ok && s == "" {
		d.errorf(a.Range, "%s must not be empty", a.Name)
		return "", false
	}
	return s, ok
}

// boolean accepts what Vault accepts for a flag: a bool, a string such as
// "true" or "1", or the numbers 0 and 1. Other numbers are rejected rather
// than read as true, because a typo must not be able to turn TLS off.
func (d *decoder) boolean(a *hcl.Attribute) (bool, bool) {
	v, ok := d.value(a)
	if !ok {
		return false, false
	}
	switch v.Type() {
	case cty.Bool:
		return v.True(), true
	case cty.String:
		if b, err := strconv.ParseBool(strings.TrimSpace(v.AsString())); err == nil {
			return b, true
		}
	case cty.Number:
		switch f := v.AsBigFloat(); {
		case f.Cmp(big.NewFloat(0)) == 0:
			return false, true
		case f.Cmp(big.NewFloat(1)) == 0:
			return true, true
		}
	}
	d.errorf(a.Range, "%s must be true or false", a.Name)
	return false, false
}

// duration accepts a number of seconds or a duration string ("720h", "30d"), as Vault does.
func (d *decoder) duration(a *hcl.Attribute) (time.Duration, bool) {
	v, ok := d.value(a)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case cty.Number:
		if n, acc := v.AsBigFloat().Int64(); acc == big.Exact && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
	case cty.String:
		s := strings.TrimSpace(v.AsString())
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			if n, err := strconv.ParseInt(days, 10, 64); err == nil && n >= 0 {
				return time.Duration(n) * 24 * time.Hour, true
			}
		}
		if dur, err := time.ParseDuration(s); err == nil && dur >= 0 {
			return dur, true
		}
	}
	d.errorf(a.Range, "%s must be a duration such as \"720h\" or \"30d\", or a number of seconds", a.Name)
	return 0, false
}

// integer accepts a whole number or a string holding one, as Vault does.
func (d *decoder) integer(a *hcl.Attribute) (int64, bool) {
	v, ok := d.value(a)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case cty.Number:
		if n, acc := v.AsBigFloat().Int64(); acc == big.Exact {
			return n, true
		}
	case cty.String:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.AsString()), 10, 64); err == nil {
			return n, true
		}
	}
	d.errorf(a.Range, "%s must be a whole number", a.Name)
	return 0, false
}

// decodeTelemetry reads the telemetry block. Push sinks are Vault settings Ledger does not
// act on: they warn (as unknown keys do) rather than fail, so a Vault config still loads.
func (d *decoder) decodeTelemetry(b *hcl.Block) Telemetry {
	var t Telemetry
	c := d.content(b.Body, "telemetry", []string{"prometheus_retention_time", "disable_hostname"}, nil,
		"usage_gauge_period", "maximum_gauge_cardinality", "enable_hostname_label", "lease_metrics_epsilon",
		"num_lease_metrics_buckets", "add_lease_metrics_namespace_labels", "filter_default", "prefix_filter")
	if a, ok := c.Attributes["prometheus_retention_time"]; ok {
		if v, ok := d.duration(a); ok {
			t.PrometheusRetention = v
			if v == 0 {
				t.PrometheusRetention = -1
			}
		}
	}
	if a, ok := c.Attributes["disable_hostname"]; ok {
		t.DisableHostname, _ = d.boolean(a)
	}
	return t
}

var natsSubjectRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
