package database

import (
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// WithFingerprint makes the engine record a keyed fingerprint (ledger.Keyring.Fingerprint) of
// every password it sets or issues — static-role rotations, root rotations, configured root
// passwords, credentials — so `ledger scan` and `ledger incident` can recognise them.
func WithFingerprint(f func([]byte) string) Option { return func(b *Backend) { b.fingerprint = f } }

// fingerprintEvents returns the fingerprint.recorded.v1 event of a password, or none when the
// engine was built without WithFingerprint or there is no password.
func (b *Backend) fingerprintEvents(req *engines.Request, now time.Time, kind, path string, version uint64, ref, password string) ([]ledger.Event, error) {
	if b.fingerprint == nil || password == "" {
		return nil, nil
	}
	actor, id := "", ""
	if req != nil {
		id = req.ID
		if req.Caller != nil {
			actor = req.Caller.Accessor
		}
	}
	ev, err := fpview.Event(fpview.RecordedPayload{
		Kind: kind, Mount: b.mount.UUID, Path: path, Version: version, Ref: ref,
		Fields: map[string]string{"password": b.fingerprint([]byte(password))}, Time: now.UTC(),
	}, actor, id, now)
	if err != nil {
		return nil, err
	}
	return []ledger.Event{ev}, nil
}
