package ledger

import "errors"

// Sentinel errors returned across the package boundary. Callers test them with errors.Is; the
// HTTP edge maps them to status codes once.
var (
	// ErrSealed: the operation needs the keyring, and the server is sealed.
	ErrSealed = errors.New("ledger: sealed")
	// ErrConflict: another writer appended first; re-read and decide again.
	ErrConflict = errors.New("ledger: version conflict")
	// ErrCorrupt: a stored batch or event failed to decode or authenticate.
	ErrCorrupt = errors.New("ledger: corrupt log")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrTooLarge: a single event is larger than one message may carry.
	ErrTooLarge = errors.New("ledger: event too large")
	// ErrFormat: the data directory was written by an incompatible format version.
	ErrFormat = errors.New("ledger: incompatible data format")
)

// ErrNotActive: this node is not the cluster's active node (a standby, or one deposed or cut
// off from the majority), so it appends nothing.
var ErrNotActive = errors.New("ledger: not the active node")

// ErrFollowLost: a Follow lost the log's feed (its consumer could not be created or failed
// while a clustered stream's leader moved); nothing was applied wrongly, and following again
// from the next sequence is safe.
var ErrFollowLost = errors.New("ledger: lost the log's feed")
