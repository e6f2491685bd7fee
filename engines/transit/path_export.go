package transit

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// Export types.
const (
	exportEncryption = "encryption-key"
	exportSigning    = "signing-key"
	exportHMAC       = "hmac-key"
	exportPublic     = "public-key"
)

// export is export/:type/:name[/:version]: key material of an exportable key, or the public
// keys of any asymmetric key.
func (b *Backend) export(r route) (*engines.Response, error) {
	typ := r.args[0]
	switch typ {
	case exportEncryption, exportSigning, exportHMAC, exportPublic:
	default:
		return nil, engines.BadRequest("invalid export type: %s", typ)
	}
	k, ok := b.view.Get(b.mount.UUID, r.name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	if !k.Config.Exportable && typ != exportPublic {
		return nil, engines.BadRequest("private key material is not exportable")
	}
	caps := keyTypes[k.Type]
	switch {
	case typ == exportEncryption && !caps.encrypt:
		return nil, engines.BadRequest("encryption not supported for the key")
	case (typ == exportSigning || typ == exportPublic) && !caps.sign:
		return nil, engines.BadRequest("signing not supported for the key")
	}
	versions := make([]int, 0, len(k.Versions))
	if len(r.args) == 1 {
		for n := range k.Versions {
			versions = append(versions, n)
		}
	} else {
		var n int
		if r.args[1] == "latest" {
			n = k.LatestVersion
		} else {
			var err error
			if n, err = strconv.Atoi(strings.TrimPrefix(r.args[1], "v")); err != nil {
				return nil, engines.BadRequest("invalid key version")
			}
		}
		if n < k.Config.MinDecryptionVersion {
			return nil, engines.BadRequest("version for export is below minimum decryption version")
		}
		if _, ok := k.Versions[n]; !ok {
			return nil, engines.BadRequest("version does not exist or cannot be found")
		}
		versions = append(versions, n)
	}
	keys := make(map[string]any, len(versions))
	for _, n := range versions {
		s, err := exportKey(k, n, typ)
		if err != nil {
			return nil, err
		}
		keys[strconv.Itoa(n)] = s
	}
	return &engines.Response{Data: map[string]any{"name": k.Name, "type": k.Type, "keys": keys}}, nil
}

// exportKey formats one version as Vault's export does.
func exportKey(k transitview.Key, n int, typ string) (string, error) {
	v := k.Versions[n]
	switch typ {
	case exportHMAC:
		return base64.StdEncoding.EncodeToString(hmacKey(k, n)), nil
	case exportPublic:
		return strings.TrimSpace(v.PublicKey), nil
	}
	switch {
	case isSymmetric(k.Type):
		return base64.StdEncoding.EncodeToString(v.Key), nil
	case isRSA(k.Type):
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: v.Key})), nil
	case isECDSA(k.Type):
		priv, err := ecdsaKey(k.Type, v.Key)
		if err != nil {
			return "", err
		}
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			return "", fmt.Errorf("encode ecdsa key: %w", err)
		}
		return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))), nil
	case k.Type == typeEd25519:
		// Vault exports the 64-byte private key (seed || public key).
		priv := ed25519.NewKeyFromSeed(v.Key)
		defer clear(priv)
		return base64.StdEncoding.EncodeToString(priv), nil
	}
	return "", engines.BadRequest("unknown key type %v for export type %v", k.Type, typ)
}

// backupFormat names the backup blob's encoding. A backup is Ledger's own format (the key as
// the view holds it, material included); it does not read Vault's keysutil backups.
const backupFormat = "ledger-transit-backup-v1"

type backupBlob struct {
	Format string          `json:"format"`
	Key    transitview.Key `json:"key"`
}

func decodeBackup(s string) (transitview.Key, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return transitview.Key{}, engines.BadRequest("failed to decode backup: not base64")
	}
	var bb backupBlob
	if err := json.Unmarshal(raw, &bb); err != nil || bb.Format != backupFormat {
		return transitview.Key{}, engines.BadRequest("failed to decode backup: not a transit key backup")
	}
	return bb.Key, nil
}

// backup is backup/:name: the whole key, material included, as a base64 blob. Vault allows it
// only for keys that are both exportable and allow plaintext backups.
func (b *Backend) backup(_ *engines.Request, name string) (*engines.Response, error) {
	k, ok := b.view.Get(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("key %q not found", name)
	}
	if !k.Config.AllowPlaintextBackup || !k.Config.Exportable {
		return nil, engines.BadRequest("plaintext backup is disallowed on the policy")
	}
	raw, err := json.Marshal(backupBlob{Format: backupFormat, Key: k})
	if err != nil {
		return nil, fmt.Errorf("encode backup: %w", err)
	}
	defer clear(raw)
	return &engines.Response{Data: map[string]any{"backup": base64.StdEncoding.EncodeToString(raw)}}, nil
}

// restore is restore[/:name]: a backup becomes a key again, under its own name or the one in
// the path. An existing key is replaced only with force.
func (b *Backend) restore(req *engines.Request, name string) (*engines.Response, error) {
	s, err := engines.String(req.Data, "backup", "")
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, engines.BadRequest("'backup' must be supplied")
	}
	force, err := engines.Bool(req.Data, "force", false)
	if err != nil {
		return nil, err
	}
	k, err := decodeBackup(s)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = k.Name
	}
	if !nameRE.MatchString(name) {
		return nil, errInvalidName()
	}
	if err := checkRestored(&k); err != nil {
		return nil, engines.BadRequest("invalid backup: %s", err)
	}
	if _, exists := b.view.Get(b.mount.UUID, name); exists && !force {
		return nil, engines.BadRequest("key %q already exists", name)
	}
	k.Name = name
	k.RestoreInfo = &transitview.Info{Time: req.Now.UTC(), Version: k.LatestVersion}
	ev, err := b.event(req, transitview.KeyRestored, name, transitview.KeyPayload{Mount: b.mount.UUID, Name: name, Key: k})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

// checkRestored validates a key from a backup, which the client supplied and so may be
// anything: its configuration must be consistent and every version's material valid for its
// type. Public keys are recomputed from the private material.
func checkRestored(k *transitview.Key) error {
	caps, ok := keyTypes[k.Type]
	switch {
	case !ok:
		return fmt.Errorf("unknown key type")
	case k.LatestVersion < 1 || len(k.Versions) == 0 || len(k.Versions) > k.LatestVersion:
		return fmt.Errorf("inconsistent versions")
	case (k.Derived || k.ConvergentEncryption) && !caps.derive,
		k.ConvergentEncryption && (!k.Derived || !isSymmetric(k.Type)):
		return fmt.Errorf("derivation not supported for the key type")
	case k.Config.MinDecryptionVersion < 1 || k.Config.MinDecryptionVersion > k.LatestVersion,
		k.Config.MinEncryptionVersion < 0 || k.Config.MinEncryptionVersion > k.LatestVersion,
		k.MinAvailableVersion < 0 || k.MinAvailableVersion > k.Config.MinDecryptionVersion,
		k.Config.AutoRotatePeriod < 0:
		return fmt.Errorf("inconsistent configuration")
	}
	if k.Type != typeHMAC {
		k.KeySize = 0
	}
	lowest := max(k.MinAvailableVersion, 1)
	for n := lowest; n <= k.LatestVersion; n++ {
		v, ok := k.Versions[n]
		if !ok {
			return fmt.Errorf("version %d is missing", n)
		}
		if err := validateMaterial(*k, n, v); err != nil {
			return err
		}
		pub, err := publicKeyOf(k.Type, v.Key)
		if err != nil {
			return fmt.Errorf("version %d: %w", n, err)
		}
		v.PublicKey = pub
		if len(v.HMACKey) == 0 && k.Type != typeHMAC {
			return fmt.Errorf("version %d: missing hmac key", n)
		}
		k.Versions[n] = v
	}
	for n := range k.Versions {
		if n < lowest || n > k.LatestVersion {
			return fmt.Errorf("version %d is out of range", n)
		}
	}
	return nil
}
