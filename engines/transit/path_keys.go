package transit

import (
	"crypto/ed25519"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

func (b *Backend) listKeys() *engines.Response {
	keys := b.view.List(b.mount.UUID)
	if keys == nil {
		keys = []string{}
	}
	return &engines.Response{Data: map[string]any{"keys": keys}}
}

// formatKey renders a key as Vault's key read does. context derives the public keys of a
// derived ed25519 key; without it they are empty, as in Vault.
func formatKey(k transitview.Key, context []byte) (map[string]any, error) {
	caps := keyTypes[k.Type]
	d := map[string]any{
		"name":                   k.Name,
		"type":                   k.Type,
		"derived":                k.Derived,
		"deletion_allowed":       k.Config.DeletionAllowed,
		"min_available_version":  k.MinAvailableVersion,
		"min_decryption_version": k.Config.MinDecryptionVersion,
		"min_encryption_version": k.Config.MinEncryptionVersion,
		"latest_version":         k.LatestVersion,
		"exportable":             k.Config.Exportable,
		"allow_plaintext_backup": k.Config.AllowPlaintextBackup,
		"supports_encryption":    caps.encrypt,
		"supports_decryption":    caps.encrypt,
		"supports_signing":       caps.sign,
		"supports_derivation":    caps.derive,
		"auto_rotate_period":     int64(k.Config.AutoRotatePeriod / time.Second),
		"imported_key":           false,
	}
	if k.KeySize != 0 {
		d["key_size"] = k.KeySize
	}
	if k.RestoreInfo != nil {
		d["restore_info"] = map[string]any{"time": ts(k.RestoreInfo.Time), "version": k.RestoreInfo.Version}
	}
	if k.Derived {
		d["kdf"] = "hkdf_sha256"
		d["convergent_encryption"] = k.ConvergentEncryption
		if k.ConvergentEncryption {
			d["convergent_encryption_version"] = 3
		}
	}
	if k.Type == typeHMAC || isSymmetric(k.Type) {
		// Vault lists creation times (Unix seconds) for symmetric keys. It lists nothing for
		// hmac keys; we list their versions the same way, which clients can only benefit from.
		times := make(map[string]int64, len(k.Versions))
		for n, v := range k.Versions {
			times[strconv.Itoa(n)] = v.Created.Unix()
		}
		d["keys"] = times
		return d, nil
	}
	versions := make(map[string]any, len(k.Versions))
	for n, v := range k.Versions {
		pub := v.PublicKey
		if k.Type == typeEd25519 && k.Derived {
			pub = ""
			if len(context) > 0 {
				seed, _, err := ed25519Seed(k, v, context)
				if err != nil {
					return nil, err
				}
				p := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
				clear(seed)
				pub = base64.StdEncoding.EncodeToString(p)
			}
		}
		name := k.Type
		switch k.Type {
		case typeECDSA256:
			name = "P-256"
		case typeECDSA384:
			name = "P-384"
		case typeECDSA521:
			name = "P-521"
		}
		versions[strconv.Itoa(n)] = map[string]any{
			"name": name, "public_key": pub, "certificate_chain": "", "creation_time": ts(v.Created),
		}
	}
	d["keys"] = versions
	return d, nil
}

func (b *Backend) readKey(req *engines.Request, name string) (*engines.Response, error) {
	k, ok := b.view.Get(b.mount.UUID, name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	ctxStr, err := engines.String(req.Data, "context", "")
	if err != nil {
		return nil, err
	}
	var context []byte
	if ctxStr != "" {
		if context, err = base64.StdEncoding.DecodeString(ctxStr); err != nil {
			return nil, engines.BadRequest("failed to base64-decode context")
		}
	}
	d, err := formatKey(k, context)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: d}, nil
}

// keySpec is what creating a key needs.
type keySpec struct {
	typ                 string
	derived, convergent bool
	exportable, backup  bool
	autoRotate          time.Duration
	keySize             int
	createdAt           time.Time
}

// checkSpec applies Vault's rules on a new key's parameters.
func checkSpec(s keySpec) error {
	if s.autoRotate != 0 && s.autoRotate < time.Hour {
		return engines.BadRequest("auto rotate period must be 0 to disable or at least an hour")
	}
	if !s.derived && s.convergent {
		return engines.BadRequest("convergent encryption requires derivation to be enabled")
	}
	caps, ok := keyTypes[s.typ]
	if !ok {
		return engines.BadRequest("unknown key type %v", s.typ)
	}
	if s.keySize != 0 {
		if s.typ != typeHMAC {
			return engines.BadRequest("key_size is not valid for algorithm %v", s.typ)
		}
		if s.keySize < hmacMinKeySize || s.keySize > hmacMaxKeySize {
			return engines.BadRequest("invalid key_size %d", s.keySize)
		}
	}
	switch {
	case !caps.derive && (s.derived || s.convergent):
		return engines.BadRequest("key derivation and convergent encryption not supported for keys of type %v", s.typ)
	case s.convergent && !isSymmetric(s.typ):
		return engines.BadRequest("convergent encryption not supported for keys of type %v", s.typ)
	}
	return nil
}

// newKey generates version 1 of a key.
func newKey(name string, s keySpec) (transitview.Key, error) {
	if s.typ == typeHMAC && s.keySize == 0 {
		s.keySize = hmacDefaultKeySize
	}
	v, err := generate(s.typ, s.keySize, s.createdAt)
	if err != nil {
		return transitview.Key{}, err
	}
	k := transitview.Key{
		Name: name, Type: s.typ, Derived: s.derived, ConvergentEncryption: s.convergent,
		Config: transitview.Config{
			MinDecryptionVersion: 1, Exportable: s.exportable, AllowPlaintextBackup: s.backup,
			AutoRotatePeriod: s.autoRotate,
		},
		LatestVersion: 1,
		Versions:      map[int]transitview.Version{1: v},
	}
	if s.typ == typeHMAC {
		k.KeySize = s.keySize
	}
	return k, nil
}

func (b *Backend) createKey(req *engines.Request, name string) (*engines.Response, error) {
	s := keySpec{createdAt: req.Now}
	var err error
	if s.typ, err = engines.String(req.Data, "type", typeAES256); err != nil {
		return nil, err
	}
	if s.typ == "" {
		s.typ = typeAES256
	}
	if s.derived, err = engines.Bool(req.Data, "derived", false); err != nil {
		return nil, err
	}
	if s.convergent, err = engines.Bool(req.Data, "convergent_encryption", false); err != nil {
		return nil, err
	}
	if s.exportable, err = engines.Bool(req.Data, "exportable", false); err != nil {
		return nil, err
	}
	if s.backup, err = engines.Bool(req.Data, "allow_plaintext_backup", false); err != nil {
		return nil, err
	}
	if s.autoRotate, err = engines.Duration(req.Data, "auto_rotate_period", 0); err != nil {
		return nil, err
	}
	if s.keySize, err = engines.Int(req.Data, "key_size", 0); err != nil {
		return nil, err
	}
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	if existing, ok := b.view.Get(b.mount.UUID, name); ok {
		d, err := formatKey(existing, nil)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: d, Warnings: []string{"key " + name + " already existed"}}, nil
	}
	k, err := newKey(name, s)
	if err != nil {
		return nil, err
	}
	ev, err := b.event(req, transitview.KeyCreated, name, transitview.KeyPayload{Mount: b.mount.UUID, Name: name, Key: k})
	if err != nil {
		return nil, err
	}
	d, err := formatKey(k, nil)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: d, Events: []ledger.Event{ev}}, nil
}

func (b *Backend) deleteKey(req *engines.Request, name string) (*engines.Response, error) {
	k, ok := b.view.Get(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("error deleting policy %s: could not delete policy; not found", name)
	}
	if !k.Config.DeletionAllowed {
		return nil, engines.BadRequest("error deleting policy %s: deletion is not allowed for this policy", name)
	}
	ev, err := b.event(req, transitview.KeyDeleted, name, transitview.DeletedPayload{Mount: b.mount.UUID, Name: name})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

// configKey is keys/:name/config, with Vault's validation order and messages.
func (b *Backend) configKey(req *engines.Request, name string) (*engines.Response, error) {
	k, ok := b.view.Get(b.mount.UUID, name)
	if !ok {
		return nil, engines.BadRequest("no existing key named %s could be found", name)
	}
	c := k.Config
	var warnings []string
	if engines.Has(req.Data, "min_decryption_version") {
		n, err := engines.Int(req.Data, "min_decryption_version", 0)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, engines.BadRequest("min decryption version cannot be negative")
		}
		if n == 0 {
			n = 1
			warnings = append(warnings, "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
		}
		if n != c.MinDecryptionVersion {
			if n > k.LatestVersion {
				return nil, engines.BadRequest("cannot set min decryption version of %d, latest key version is %d", n, k.LatestVersion)
			}
			c.MinDecryptionVersion = n
		}
	}
	if engines.Has(req.Data, "min_encryption_version") {
		n, err := engines.Int(req.Data, "min_encryption_version", 0)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, engines.BadRequest("min encryption version cannot be negative")
		}
		if n != c.MinEncryptionVersion {
			if n > k.LatestVersion {
				return nil, engines.BadRequest("cannot set min encryption version of %d, latest key version is %d", n, k.LatestVersion)
			}
			c.MinEncryptionVersion = n
		}
	}
	if c.MinEncryptionVersion > 0 && c.MinEncryptionVersion < c.MinDecryptionVersion {
		return nil, engines.BadRequest("cannot set min encryption/decryption values; min encryption version of %d must be greater than or equal to min decryption version of %d", c.MinEncryptionVersion, c.MinDecryptionVersion)
	}
	if engines.Has(req.Data, "deletion_allowed") {
		v, err := engines.Bool(req.Data, "deletion_allowed", false)
		if err != nil {
			return nil, err
		}
		c.DeletionAllowed = v
	}
	if engines.Has(req.Data, "exportable") {
		v, err := engines.Bool(req.Data, "exportable", false)
		if err != nil {
			return nil, err
		}
		c.Exportable = c.Exportable || v // once set, it cannot be unset
	}
	if engines.Has(req.Data, "allow_plaintext_backup") {
		v, err := engines.Bool(req.Data, "allow_plaintext_backup", false)
		if err != nil {
			return nil, err
		}
		c.AllowPlaintextBackup = c.AllowPlaintextBackup || v
	}
	if engines.Has(req.Data, "auto_rotate_period") {
		d, err := engines.Duration(req.Data, "auto_rotate_period", 0)
		if err != nil {
			return nil, err
		}
		if d != 0 && d < time.Hour {
			return nil, engines.BadRequest("auto rotate period must be 0 to disable or at least an hour")
		}
		c.AutoRotatePeriod = d
	}
	resp := &engines.Response{Warnings: warnings}
	if c != k.Config {
		switch {
		case k.MinAvailableVersion > c.MinEncryptionVersion:
			return nil, engines.BadRequest("min encryption version should not be less than min available version")
		case k.MinAvailableVersion > c.MinDecryptionVersion:
			return nil, engines.BadRequest("min decryption version should not be less then min available version")
		}
		ev, err := b.event(req, transitview.KeyConfigUpdated, name, transitview.ConfigPayload{Mount: b.mount.UUID, Name: name, Config: c})
		if err != nil {
			return nil, err
		}
		resp.Events = []ledger.Event{ev}
		k.Config = c
	}
	d, err := formatKey(k, nil)
	if err != nil {
		return nil, err
	}
	resp.Data = d
	return resp, nil
}

// rotation decides the next version of k.
func (b *Backend) rotation(req *engines.Request, k transitview.Key) (ledger.Event, transitview.Key, error) {
	v, err := generate(k.Type, k.KeySize, req.Now)
	if err != nil {
		return ledger.Event{}, k, err
	}
	n := k.LatestVersion + 1
	ev, err := b.event(req, transitview.KeyRotated, k.Name, transitview.RotatedPayload{Mount: b.mount.UUID, Name: k.Name, Version: n, Material: v})
	if err != nil {
		return ledger.Event{}, k, err
	}
	vs := make(map[int]transitview.Version, len(k.Versions)+1)
	for i, old := range k.Versions {
		vs[i] = old
	}
	vs[n] = v
	k.Versions, k.LatestVersion = vs, n
	return ev, k, nil
}

func (b *Backend) rotateKey(req *engines.Request, name string) (*engines.Response, error) {
	k, err := b.lookup(name, "invalid key name")
	if err != nil {
		return nil, err
	}
	ev, k, err := b.rotation(req, k)
	if err != nil {
		return nil, err
	}
	d, err := formatKey(k, nil)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: d, Events: []ledger.Event{ev}}, nil
}

func (b *Backend) trimKey(req *engines.Request, name string) (*engines.Response, error) {
	k, err := b.lookup(name, "invalid key name")
	if err != nil {
		return nil, err
	}
	if !engines.Has(req.Data, "min_available_version") {
		return nil, engines.BadRequest("missing min_available_version")
	}
	n, err := engines.Int(req.Data, "min_available_version", 0)
	if err != nil {
		return nil, err
	}
	switch {
	case n < k.MinAvailableVersion:
		return nil, engines.BadRequest("minimum available version cannot be decremented")
	case k.Config.MinEncryptionVersion == 0:
		return nil, engines.BadRequest("minimum available version cannot be set when minimum encryption version is not set")
	case k.Config.MinDecryptionVersion == 0:
		return nil, engines.BadRequest("minimum available version cannot be set when minimum decryption version is not set")
	case n > k.Config.MinEncryptionVersion:
		return nil, engines.BadRequest("minimum available version cannot be greater than minmum encryption version")
	case n > k.Config.MinDecryptionVersion:
		return nil, engines.BadRequest("minimum available version cannot be greater than minimum decryption version")
	case n < 0:
		return nil, engines.BadRequest("minimum available version cannot be negative")
	case n == 0:
		return nil, engines.BadRequest("minimum available version should be positive")
	}
	resp := &engines.Response{}
	if n > k.MinAvailableVersion {
		ev, err := b.event(req, transitview.KeyTrimmed, name, transitview.TrimmedPayload{Mount: b.mount.UUID, Name: name, MinAvailableVersion: n})
		if err != nil {
			return nil, err
		}
		resp.Events = []ledger.Event{ev}
		vs := make(map[int]transitview.Version, len(k.Versions))
		for i, v := range k.Versions {
			if i >= n {
				vs[i] = v
			}
		}
		k.Versions, k.MinAvailableVersion = vs, n
	}
	d, err := formatKey(k, nil)
	if err != nil {
		return nil, err
	}
	resp.Data = d
	return resp, nil
}

// RotateDue decides a rotation for every key of this mount whose auto_rotate_period has
// elapsed at now. Call it on the active node only, and append the events it returns (each to
// its key's subject); the view ignores a rotation that lost a race with another.
func (b *Backend) RotateDue(now time.Time) []ledger.Event {
	var out []ledger.Event
	req := &engines.Request{Now: now.UTC()}
	for _, ref := range b.view.Due(now) {
		if ref.Mount != b.mount.UUID {
			continue
		}
		k, ok := b.view.Get(ref.Mount, ref.Name)
		if !ok {
			continue
		}
		ev, _, err := b.rotation(req, k)
		if err != nil {
			continue // key generation failed (no entropy?): the key is due again next time
		}
		out = append(out, ev)
	}
	return out
}
