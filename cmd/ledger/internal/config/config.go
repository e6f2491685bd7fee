// Package config owns the server's configuration file: parsing Vault-shaped
// HCL (or its JSON form) into a validated Config with defaults applied.
//
// Keys Ledger does not know are warnings, not errors, so that an operator can
// point the server at an existing Vault config and be told what is ignored
// instead of having to strip it first.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// Defaults applied when the file leaves a setting out.
const (
	DefaultAddress        = "127.0.0.1:8200"
	DefaultMaxRequestSize = 32 << 20 // bytes, as in Vault
	DefaultClusterName    = "ledger-cluster"
	DefaultLogLevel       = "info"
	DefaultStreamReplicas = 1
)

// MaxStreamReplicas is the largest replica count JetStream accepts for a
// stream.
const MaxStreamReplicas = 5

// ErrInvalid is wrapped by every error Parse and Load return for a file
// that was read but whose content is wrong, as opposed to one that could not
// be read at all.
var ErrInvalid = errors.New("invalid config")

// Config is a parsed and validated server configuration.
type Config struct {
	Storage   Storage
	Listeners []Listener
	APIAddr   string // externally reachable URL; empty when not set
	// NodeID names this node in a cluster (its NATS server name, raft list-peers, the lease
	// holder). Empty when the file leaves it out: the server then uses the hostname.
	NodeID      string
	ClusterName string
	LogLevel    string // one of trace, debug, info, warn, error
	// AuditRetentionAge and AuditRetentionBytes bound the LEDGER_AUDIT stream of read and
	// denial records: 0 when the file says nothing (the server then uses
	// DefaultAuditRetentionAge and …Bytes), -1 (no limit) when it says 0. Write records live in
	// the log, kept with it.
	AuditRetentionAge   time.Duration
	AuditRetentionBytes int64
	// AuditDirectReads: audit_read_spool = false, each read's record acknowledged by JetStream
	// before the answer instead of kept in the node's spool first.
	AuditDirectReads bool
	// EventsNATSSubjectPrefix, when set, publishes change events on <prefix>.<event type>
	// (events_nats_subject_prefix); EventsNATSURL is the server (events_nats_url; empty: the
	// node's own).
	EventsNATSSubjectPrefix string
	EventsNATSURL           string
	// Telemetry is the telemetry block.
	Telemetry Telemetry
	// ServiceRegistration is the service_registration "kubernetes" block; nil without one.
	ServiceRegistration *ServiceRegistration
	// Seals are the seal "TYPE" blocks: none (Shamir), one enabled, or, during a migration,
	// an enabled one and a disabled one (or only a disabled one, to migrate to Shamir).
	Seals []autoseal.Config

	// Warnings describe parts of the file that were ignored, each prefixed
	// with "file:line:", in file order.
	Warnings []string
}

// Storage is the storage "jetstream" block. Exactly one of Path (embedded JetStream) and URL
// (external NATS) is set. Cluster is set only with Path; the credential and TLS files only
// with URL.
type Storage struct {
	Type         string // always "jetstream"
	Path         string
	URL          string
	Cluster      *StorageCluster // embedded mode: this node's NATS server joins a JetStream cluster
	CredsFile    string          // credentials_file (or creds_file): a NATS .creds file
	NKeySeedFile string
	TLSCAFile    string
	TLSCertFile  string // client certificate for the NATS connection; set with TLSKeyFile
	TLSKeyFile   string
	Replicas     int // 1 to MaxStreamReplicas; above 1 only with Cluster or URL
}

// StorageCluster is the cluster block inside storage "jetstream": the embedded NATS server
// listens for routes on Listen and connects to Routes, forming one JetStream cluster named Name.
type StorageCluster struct {
	Name      string
	Listen    string   // host:port for cluster routes
	Routes    []string // nats://host:port of every member (this node's own entry is allowed)
	Advertise string   // host:port other members use to reach Listen; empty: Listen
}

// Listener is one listener "tcp" block. When TLSDisable is false both
// TLSCertFile and TLSKeyFile are set.
type Listener struct {
	Type           string // always "tcp"
	Address        string // host:port
	TLSDisable     bool
	TLSCertFile    string
	TLSKeyFile     string
	MaxRequestSize int64 // bytes, always positive
	Limits         ListenerLimits
	// UnauthenticatedMetricsAccess: telemetry { unauthenticated_metrics_access = true } — this
	// listener answers GET /v1/sys/metrics without a token, as Vault's does.
	UnauthenticatedMetricsAccess bool
}

// Telemetry is the telemetry block (Vault's names). Sinks Vault can push to (statsite, statsd,
// Circonus, Datadog, Stackdriver) are accepted with a warning: Ledger exposes sys/metrics only.
type Telemetry struct {
	// PrometheusRetention: Vault's prometheus_retention_time. 0 when the block leaves it out
	// (Ledger then uses 24h, Vault's default); negative when set to 0 (prometheus off).
	PrometheusRetention time.Duration
	DisableHostname     bool
}

// Load reads and parses the config file at path. Errors name the file and,
// for problems in its content, the line, and wrap ErrInvalid.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w (pass the config file's path with -config)", err)
	}
	return Parse(src, path)
}

// Parse parses src as a config file named filename, which is used in error
// and warning positions. A filename ending in ".json" selects the JSON
// syntax, as in Vault. Every problem found is reported, joined into one
// error that wraps ErrInvalid.
func Parse(src []byte, filename string) (*Config, error) {
	// A Parser caches every file it has parsed, so it lives for one call.
	parser := hclparse.NewParser()
	parse := parser.ParseHCL
	if strings.HasSuffix(strings.ToLower(filename), ".json") {
		parse = parser.ParseJSON
	}
	file, diags := parse(src, filename)

	d := &decoder{file: filename}
	d.addDiags(diags)
	if diags.HasErrors() {
		// Decoding a body that failed to parse only piles on confusing
		// follow-on errors.
		return nil, d.err()
	}
	cfg := d.decodeRoot(file.Body)
	if err := d.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = d.warningStrings()
	return cfg, nil
}
