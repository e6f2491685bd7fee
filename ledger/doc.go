// Package ledger owns Ledger's single source of truth: the append-only, encrypted event log in
// NATS JetStream. It defines Event and its on-disk batch format, the Log (an embedded or external
// JetStream with one group-commit writer per node), and the Keyring that seals event payloads
// under keys that exist only while the server is unsealed.
//
// Nothing in this package knows what an event means; projections give events meaning.
package ledger
