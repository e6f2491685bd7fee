package ssh

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ledger-secrets/ledger/engines"
	sshview "github.com/ledger-secrets/ledger/projections/ssh"
)

// caSigner returns the mount's CA as an ssh.Signer using the role's signature algorithm.
func (b *Backend) caSigner(r sshview.Role) (gossh.Signer, error) {
	ca, ok := b.view.CA(b.mount.UUID)
	if !ok {
		return nil, engines.BadRequest("no CA configured; write config/ca first")
	}
	k, err := gossh.ParseRawPrivateKey(ca.PrivateKey)
	if err != nil {
		return nil, err
	}
	cs, ok := asSigner(k)
	if !ok {
		return nil, engines.BadRequest("stored CA key cannot sign")
	}
	s, err := gossh.NewSignerFromSigner(cs)
	if err != nil {
		return nil, err
	}
	if _, isRSA := cs.(*rsa.PrivateKey); isRSA {
		alg := r.AlgorithmSigner
		if alg == "" || alg == "default" {
			alg = gossh.KeyAlgoRSASHA256
		}
		as, ok := s.(gossh.AlgorithmSigner)
		if !ok {
			return nil, engines.BadRequest("CA key cannot sign with %s", alg)
		}
		return gossh.NewSignerWithAlgorithms(as, []string{alg})
	}
	return s, nil
}

// checkUserKey applies allowed_user_key_lengths.
func checkUserKey(r sshview.Role, pub gossh.PublicKey) error {
	if len(r.AllowedUserKeyLengths) == 0 {
		return nil
	}
	fam := keyFamily(pub.Type())
	cp, ok := pub.(gossh.CryptoPublicKey)
	if fam == "" || !ok {
		return engines.BadRequest("public_key failed to meet the key requirements: key type %s is not allowed", pub.Type())
	}
	allowed, ok := r.AllowedUserKeyLengths[fam]
	if !ok {
		return engines.BadRequest("public_key failed to meet the key requirements: key type %s is not allowed", pub.Type())
	}
	bits := 0
	switch k := cp.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		bits = k.N.BitLen()
	case *ecdsa.PublicKey:
		bits = k.Curve.Params().BitSize
	default:
		bits = 256 // ed25519
	}
	for _, n := range allowed {
		if n == bits || (fam == "ed25519" && n == 0) {
			return nil
		}
	}
	return engines.BadRequest("public_key failed to meet the key requirements: key is of an invalid size: %d", bits)
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// hostAllowed applies allowed_domains to a host principal.
func hostAllowed(r sshview.Role, h string) bool {
	for _, d := range splitList(r.AllowedDomains) {
		if d == "*" {
			return true
		}
		if r.AllowBareDomains && strings.EqualFold(h, d) {
			return true
		}
		if r.AllowSubdomains && strings.HasSuffix(strings.ToLower(h), "."+strings.ToLower(d)) {
			return true
		}
	}
	return false
}

// sign serves sign/:role. pub, when given, is a key issue/:role generated.
func (b *Backend) sign(req *engines.Request, roleName string, pub gossh.PublicKey) (*engines.Response, error) {
	r, ok := b.view.Role(b.mount.UUID, roleName)
	if !ok {
		return nil, engines.BadRequest("unknown role: %s", roleName)
	}
	if r.KeyType != "ca" {
		return nil, engines.BadRequest("role %s is not of key_type ca", roleName)
	}
	if pub == nil {
		text, err := engines.String(req.Data, "public_key", "")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(text) == "" {
			return nil, engines.BadRequest("missing public_key")
		}
		if pub, _, _, _, err = gossh.ParseAuthorizedKey([]byte(text)); err != nil {
			return nil, engines.BadRequest("failed to parse public_key as SSH key: expected an authorized_keys line such as \"ssh-ed25519 AAAA…\"")
		}
		if _, isCert := pub.(*gossh.Certificate); isCert {
			return nil, engines.BadRequest("public_key is a certificate; sign the key itself")
		}
	}
	if err := checkUserKey(r, pub); err != nil {
		return nil, err
	}
	certType, err := engines.String(req.Data, "cert_type", "user")
	if err != nil {
		return nil, err
	}
	var ct uint32
	switch certType {
	case "user":
		if !r.AllowUserCertificates {
			return nil, engines.BadRequest("cert_type 'user' is not allowed by role")
		}
		ct = gossh.UserCert
	case "host":
		if !r.AllowHostCertificates {
			return nil, engines.BadRequest("cert_type 'host' is not allowed by role")
		}
		ct = gossh.HostCert
	default:
		return nil, engines.BadRequest("cert_type must be either 'user' or 'host'")
	}
	principalsIn, err := engines.String(req.Data, "valid_principals", "")
	if err != nil {
		return nil, err
	}
	principals := splitList(principalsIn)
	if ct == gossh.UserCert {
		if len(principals) == 0 && r.DefaultUser != "" {
			principals = []string{r.DefaultUser}
		}
		allowed := splitList(r.AllowedUsers)
		for _, p := range principals {
			if !contains(allowed, "*") && !contains(allowed, p) && p != r.DefaultUser {
				return nil, engines.BadRequest("%s is not a valid value for valid_principals", p)
			}
		}
	} else {
		for _, p := range principals {
			if !hostAllowed(r, p) {
				return nil, engines.BadRequest("%s is not a valid value for valid_principals", p)
			}
		}
	}
	if len(principals) == 0 {
		return nil, engines.BadRequest("empty valid principals not allowed by role")
	}
	crit, err := engines.StringMap(req.Data, "critical_options")
	if err != nil {
		return nil, err
	}
	if len(crit) == 0 {
		crit = r.DefaultCriticalOptions
	} else if r.AllowedCriticalOptions != "" {
		allowed := splitList(r.AllowedCriticalOptions)
		var bad []string
		for k := range crit {
			if !contains(allowed, k) && !contains(allowed, "*") {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return nil, engines.BadRequest("critical options not on allowed list: %s", strings.Join(bad, ", "))
		}
	}
	ext, err := engines.StringMap(req.Data, "extensions")
	if err != nil {
		return nil, err
	}
	if len(ext) == 0 {
		ext = r.DefaultExtensions
	} else {
		allowed := splitList(r.AllowedExtensions)
		var bad []string
		for k := range ext {
			if !contains(allowed, k) && !contains(allowed, "*") {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return nil, engines.BadRequest("extensions not on allowed list: %s", strings.Join(bad, ", "))
		}
	}
	if ct == gossh.HostCert {
		crit, ext = nil, nil // meaningless on host certificates
	}
	ttl, err := engines.Duration(req.Data, "ttl", 0)
	if err != nil {
		return nil, err
	}
	if ttl == 0 {
		ttl = r.TTL
	}
	if ttl == 0 {
		ttl = b.mount.DefaultLeaseTTL
	}
	max := b.mount.MaxLeaseTTL
	if r.MaxTTL > 0 && r.MaxTTL < max {
		max = r.MaxTTL
	}
	var warnings []string
	if ttl > max {
		warnings = append(warnings, "ttl "+ttl.String()+" is longer than the role's max_ttl "+max.String()+"; max_ttl is used")
		ttl = max
	}
	keyID, err := engines.String(req.Data, "key_id", "")
	if err != nil {
		return nil, err
	}
	if keyID != "" && !r.AllowUserKeyIDs {
		return nil, engines.BadRequest("setting key_id is not allowed by role")
	}
	sum := sha256.Sum256(pub.Marshal())
	if keyID == "" {
		display := "unknown"
		if req.Caller != nil && req.Caller.DisplayName != "" {
			display = req.Caller.DisplayName
		}
		keyID = "vault-" + display + "-" + hex.EncodeToString(sum[:])
		if r.KeyIDFormat != "" {
			keyID = strings.NewReplacer("{{role_name}}", roleName, "{{token_display_name}}", display,
				"{{public_key_hash}}", hex.EncodeToString(sum[:])).Replace(r.KeyIDFormat)
		}
	}
	signer, err := b.caSigner(r)
	if err != nil {
		return nil, err
	}
	var sb [8]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, err
	}
	serial := binary.BigEndian.Uint64(sb[:])
	now := req.Now
	cert := &gossh.Certificate{Key: pub, Serial: serial, CertType: ct, KeyId: keyID, ValidPrincipals: principals,
		ValidAfter: uint64(now.Add(-r.NotBeforeDuration).Unix()), ValidBefore: uint64(now.Add(ttl).Unix()),
		Permissions: gossh.Permissions{CriticalOptions: crit, Extensions: ext}}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return nil, engines.BadRequest("failed to sign the key: %s", err)
	}
	return &engines.Response{Data: map[string]any{
		"serial_number": strconv.FormatUint(serial, 16), "signed_key": string(gossh.MarshalAuthorizedKey(cert)),
	}, Warnings: warnings}, nil
}

// issue serves issue/:role: a new key pair, signed; the private key is returned once.
func (b *Backend) issue(req *engines.Request, roleName string) (*engines.Response, error) {
	if _, ok := b.view.Role(b.mount.UUID, roleName); !ok {
		return nil, engines.BadRequest("unknown role: %s", roleName)
	}
	typ, err := engines.String(req.Data, "key_type", "rsa")
	if err != nil {
		return nil, err
	}
	bits, err := engines.Int(req.Data, "key_bits", 0)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(typ, bits, 4096)
	if err != nil {
		return nil, err
	}
	pub, err := gossh.NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	resp, err := b.sign(req, roleName, pub)
	if err != nil {
		return nil, err
	}
	priv, err := marshalPrivate(key)
	if err != nil {
		return nil, err
	}
	resp.Data["private_key"] = string(priv)
	resp.Data["private_key_type"] = keyFamily(pub.Type())
	return resp, nil
}
