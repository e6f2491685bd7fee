package main

import (
	"fmt"
	"os"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/nats-io/nats.go"
)

// nodeID is the configured node_id, or the hostname as Vault's raft node_id defaults to.
func nodeID(cfg *config.Config) (string, error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node_id: the config sets none and the hostname is unknown (%w); set node_id", err)
	}
	if err := config.ValidNodeID(h); err != nil {
		return "", fmt.Errorf("node_id: the config sets none and the hostname %q cannot be used: it %v; set node_id", h, err)
	}
	return h, nil
}

// storageOptions turns the storage block into the log's options: the embedded server (and its
// cluster membership) or the external connection with its credentials and TLS.
func storageOptions(cfg *config.Config) (ledger.Options, error) {
	st := cfg.Storage
	id, err := nodeID(cfg)
	if err != nil {
		return ledger.Options{}, err
	}
	lo := ledger.Options{Dir: st.Path, URL: st.URL, Replicas: st.Replicas, NodeName: id}
	if c := st.Cluster; c != nil {
		lo.Cluster = &ledger.ClusterOptions{Name: c.Name, Listen: c.Listen, Advertise: c.Advertise, Routes: c.Routes}
	}
	if st.URL == "" {
		return lo, nil
	}
	lo.NATSOptions = append(lo.NATSOptions, nats.Name("ledger "+id))
	if st.CredsFile != "" {
		lo.NATSOptions = append(lo.NATSOptions, nats.UserCredentials(st.CredsFile))
	}
	if st.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(st.NKeySeedFile)
		if err != nil {
			return ledger.Options{}, fmt.Errorf("storage nkey_seed_file: %w", err)
		}
		lo.NATSOptions = append(lo.NATSOptions, opt)
	}
	if st.TLSCAFile != "" {
		lo.NATSOptions = append(lo.NATSOptions, nats.RootCAs(st.TLSCAFile))
	}
	if st.TLSCertFile != "" {
		lo.NATSOptions = append(lo.NATSOptions, nats.ClientCert(st.TLSCertFile, st.TLSKeyFile))
	}
	return lo, nil
}
