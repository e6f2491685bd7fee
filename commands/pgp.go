package commands

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ledger-secrets/ledger/engines"
)

// pgpKey is one public key given to rekey (pgp_keys) or generate-root (pgp_key): new unseal
// keys and root tokens leave the server encrypted to it, so no one on the way reads them.
type pgpKey struct {
	entity      *openpgp.Entity
	fingerprint string // hex, lower case, as Vault reports it
}

// parsePGPKey reads a public key as Vault takes it: the base64 of its binary (unarmored)
// form. keybase: names are refused: fetching a key from Keybase would make a ceremony depend
// on a third party's answer, and the server makes no outbound calls for it.
func parsePGPKey(field string, i int, s string) (pgpKey, error) {
	name := field
	if i >= 0 {
		name = fmt.Sprintf("%s[%d]", field, i)
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "keybase:") {
		return pgpKey{}, engines.BadRequest("%s: keybase: names are not supported (the server fetches nothing from Keybase); export the public key (gpg --export KEYID | base64 -w0) and pass that", name)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return pgpKey{}, engines.BadRequest("%s: expected the base64 of a binary (unarmored) PGP public key, as `gpg --export KEYID | base64 -w0` prints it", name)
	}
	ent, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return pgpKey{}, engines.BadRequest("%s: not a usable PGP public key: %s", name, err.Error())
	}
	// A key that cannot encrypt (signing-only, expired, revoked) is refused now, not at the
	// end of the ceremony when the new keys exist and must not be lost.
	if _, err := encryptPGP(ent, []byte("probe")); err != nil {
		return pgpKey{}, engines.BadRequest("%s: the PGP key %x cannot encrypt: %s", name, ent.PrimaryKey.Fingerprint, err.Error())
	}
	return pgpKey{entity: ent, fingerprint: hex.EncodeToString(ent.PrimaryKey.Fingerprint)}, nil
}

// parsePGPKeys parses pgp_keys; want is the number of new shares they must match.
func parsePGPKeys(keys []string, want int) ([]pgpKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if len(keys) != want {
		return nil, engines.BadRequest("incorrect number of PGP keys for rekey: %d given for %d shares; give one key per share, in order", len(keys), want)
	}
	out := make([]pgpKey, len(keys))
	for i, k := range keys {
		var err error
		if out[i], err = parsePGPKey("pgp_keys", i, k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// encryptPGP encrypts plaintext to one recipient, as a binary OpenPGP message.
func encryptPGP(to *openpgp.Entity, plaintext []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := openpgp.Encrypt(&buf, []*openpgp.Entity{to}, nil, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fingerprints(keys []pgpKey) []string {
	if len(keys) == 0 {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.fingerprint
	}
	return out
}
