package ledger

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// FingerprintPrefix starts every value fingerprint, naming its scheme, so a later scheme can
// live beside this one.
const FingerprintPrefix = "fp1:"

// fingerprintKey is the dedicated key behind value fingerprints, derived once per keyring.
type fingerprintKey struct {
	once sync.Once
	key  []byte
}

// Fingerprint returns a keyed fingerprint of a secret value: "fp1:" + hex HMAC-SHA256 of the
// value's exact bytes under a key of its own. That key is HKDF-SHA256 (info "ledger value
// fingerprint v1") of a PRF output of the keyring's PRF keyset under a label that no other use
// shares; it is neither the token nor the audit HMAC key, so a fingerprint cannot be compared
// with an audit HMAC, and without the keyring nobody can test a guess against it. The PRF
// keyset does not change at key rotation, so fingerprints stay comparable across terms.
func (k *Keyring) Fingerprint(value []byte) string {
	k.fp.once.Do(func() {
		ikm, err := k.prf.ComputePrimaryPRF([]byte("ledger value fingerprint key v1\x00"), sha256.Size)
		if err != nil {
			panic("ledger: keyring prf unusable")
		}
		key, err := hkdf.Key(sha256.New, ikm, nil, "ledger value fingerprint v1", sha256.Size)
		if err != nil {
			panic("ledger: hkdf: " + err.Error())
		}
		clear(ikm)
		k.fp.key = key
	})
	m := hmac.New(sha256.New, k.fp.key)
	m.Write(value)
	return FingerprintPrefix + hex.EncodeToString(m.Sum(nil))
}
