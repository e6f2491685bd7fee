package transit

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strconv"
	"strings"

	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	macsubtle "github.com/tink-crypto/tink-go/v2/mac/subtle"
	sigsubtle "github.com/tink-crypto/tink-go/v2/signature/subtle"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ledger-secrets/ledger/engines"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// Vault's messages for the errors a client can cause. They are shown as written, so none of
// them may ever contain plaintext or key material.
var (
	errMissingContext  = engines.BadRequest("missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key")
	errTooOld          = engines.BadRequest("ciphertext or signature version is disallowed by policy (too old)")
	errAuthFailed      = engines.BadRequest("cipher: message authentication failed")
	errNonceNotAllowed = engines.BadRequest("provided nonce not allowed for this key")
)

const (
	prefix    = "vault:v"
	nonceSize = 12 // AES-GCM96 and ChaCha20-Poly1305
	tagSize   = 16
)

// format renders Vault's "vault:v<N>:<base64>" envelope.
func format(version int, raw []byte, enc *base64.Encoding) string {
	return prefix + strconv.Itoa(version) + ":" + enc.EncodeToString(raw)
}

// envelope is a parsed "vault:v<N>:<payload>".
type envelope struct {
	version int
	payload string
}

// parseEnvelope splits a Vault envelope. what names the value in messages ("ciphertext",
// "signature"). The version is checked against the key: above latest is too new, below
// min_decryption_version (or trimmed) too old. Version 0 means 1, as in Vault.
func parseEnvelope(k transitview.Key, s, what string) (envelope, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return envelope{}, engines.BadRequest("invalid %s: no prefix", what)
	}
	ver, payload, ok := strings.Cut(rest, ":")
	if !ok {
		return envelope{}, engines.BadRequest("invalid %s: wrong number of fields", what)
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n < 0 || ver == "" || ver[0] == '+' {
		return envelope{}, engines.BadRequest("invalid %s: version number could not be decoded", what)
	}
	if n == 0 {
		n = 1
	}
	if n > k.LatestVersion {
		return envelope{}, engines.BadRequest("invalid %s: version is too new", what)
	}
	if n < k.Config.MinDecryptionVersion {
		return envelope{}, errTooOld
	}
	if _, ok := k.Versions[n]; !ok {
		return envelope{}, errTooOld // trimmed
	}
	return envelope{version: n, payload: payload}, nil
}

// encryptionVersion resolves the key_version of an encrypting operation (encrypt, rewrap,
// datakey) as Vault does: 0 is the latest.
func encryptionVersion(k transitview.Key, requested int) (int, error) {
	switch {
	case requested == 0:
		return k.LatestVersion, nil
	case requested < 0:
		return 0, engines.BadRequest("requested version for encryption is negative")
	case requested > k.LatestVersion:
		return 0, engines.BadRequest("requested version for encryption is higher than the latest key version")
	case requested < k.Config.MinEncryptionVersion:
		return 0, engines.BadRequest("requested version for encryption is less than the minimum encryption key version")
	}
	if _, ok := k.Versions[requested]; !ok {
		return 0, engines.BadRequest("requested version for encryption is less than the minimum encryption key version")
	}
	return requested, nil
}

// symmetricKey returns the AEAD key of a version for a context; owned keys are the caller's to
// clear. A context given to a key that is not derived is ignored, as in Vault.
func symmetricKey(k transitview.Key, v transitview.Version, context []byte) (key []byte, owned bool, err error) {
	if len(v.Key) != symmetricKeySize(k.Type) {
		return nil, false, fmt.Errorf("%s key material has %d bytes", k.Type, len(v.Key))
	}
	if !k.Derived {
		return v.Key, false, nil
	}
	key, err = deriveKey(v.Key, context, symmetricKeySize(k.Type))
	return key, err == nil, err
}

// aead is the Tink primitive for version ver of k with raw key key: the cached one for a
// version's own key, a new one for a key derived for the request (owned).
func (b *Backend) aead(k transitview.Key, ver int, key []byte, owned bool) (tink.AEAD, error) {
	if owned {
		return tinkAEAD(k.Type, key)
	}
	return b.aeads.get(b.view, b.mount.UUID, k, ver, key)
}

// tinkAEAD is the Tink primitive for a symmetric type, without output prefix: its ciphertext is
// nonce || ciphertext || tag, exactly Vault's layout after the "vault:vN:" envelope.
func tinkAEAD(typ string, key []byte) (tink.AEAD, error) {
	if typ == typeChaCha20 {
		return aeadsubtle.NewChaCha20Poly1305(key)
	}
	return aeadsubtle.NewAESGCM(key)
}

// convergentSeal encrypts with a nonce derived from the plaintext under a key that itself
// depends on the context, so equal (plaintext, context) pairs give equal ciphertexts and the
// nonce never repeats for different plaintexts. Tink deliberately offers no AEAD with a
// caller-chosen nonce, so this one path uses the same primitives from crypto/cipher and
// x/crypto directly; its output has the layout Tink reads, and decryption goes through Tink.
func convergentSeal(typ string, key, plaintext, ad []byte) ([]byte, error) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("ledger transit convergent nonce v1\x00"))
	mac.Write(plaintext)
	nonce := mac.Sum(nil)[:nonceSize]
	var a cipher.AEAD
	var err error
	if typ == typeChaCha20 {
		a, err = chacha20poly1305.New(key)
	} else {
		var block cipher.Block
		if block, err = aes.NewCipher(key); err == nil {
			a, err = cipher.NewGCM(block)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("convergent aead: %w", err)
	}
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+a.Overhead())
	copy(out, nonce)
	return a.Seal(out, nonce, plaintext, ad), nil
}

// sealItem encrypts plaintext under version ver of k and returns Vault's ciphertext string.
func (b *Backend) sealItem(k transitview.Key, ver int, context, plaintext, ad []byte) (string, error) {
	v := k.Versions[ver]
	switch {
	case isSymmetric(k.Type):
		key, owned, err := symmetricKey(k, v, context)
		if err != nil {
			return "", err
		}
		if owned {
			defer clear(key)
		}
		var raw []byte
		if k.ConvergentEncryption {
			raw, err = convergentSeal(k.Type, key, plaintext, ad)
		} else {
			var a tink.AEAD
			if a, err = b.aead(k, ver, key, owned); err == nil {
				raw, err = a.Encrypt(plaintext, ad)
			}
		}
		if err != nil {
			return "", fmt.Errorf("encrypt: %w", err)
		}
		return format(ver, raw, base64.StdEncoding), nil
	case isRSA(k.Type):
		if len(ad) > 0 {
			return "", engines.BadRequest("associated data is not supported for key type %s", k.Type)
		}
		// Tink has no RSA encryption primitive; Vault's RSA encryption is RSA-OAEP with SHA-256.
		priv, err := rsaKey(v.Key)
		if err != nil {
			return "", err
		}
		raw, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, plaintext, nil)
		if err != nil {
			if errors.Is(err, rsa.ErrMessageTooLong) {
				return "", engines.BadRequest("plaintext is too long for key type %s", k.Type)
			}
			return "", fmt.Errorf("encrypt: %w", err)
		}
		return format(ver, raw, base64.StdEncoding), nil
	}
	return "", engines.BadRequest("message encryption not supported for key type %s", k.Type)
}

// openItem decrypts Vault's ciphertext string. Every malformed, truncated, tampered or
// misdirected input is a 400 with a fixed message: no plaintext, no key material.
func (b *Backend) openItem(k transitview.Key, ciphertext string, context, ad []byte) ([]byte, error) {
	if !keyTypes[k.Type].encrypt {
		return nil, engines.BadRequest("message decryption not supported for key type %s", k.Type)
	}
	env, err := parseEnvelope(k, ciphertext, "ciphertext")
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(env.payload)
	if err != nil {
		return nil, engines.BadRequest("invalid ciphertext: could not decode base64")
	}
	v := k.Versions[env.version]
	if isRSA(k.Type) {
		priv, err := rsaKey(v.Key)
		if err != nil {
			return nil, err
		}
		pt, err := rsa.DecryptOAEP(sha256.New(), nil, priv, raw, nil)
		if err != nil {
			return nil, engines.BadRequest("crypto/rsa: decryption error")
		}
		return pt, nil
	}
	if len(raw) < nonceSize+tagSize {
		return nil, engines.BadRequest("invalid ciphertext length")
	}
	key, owned, err := symmetricKey(k, v, context)
	if err != nil {
		return nil, err
	}
	if owned {
		defer clear(key)
	}
	a, err := b.aead(k, env.version, key, owned)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	pt, err := a.Decrypt(raw, ad)
	if err != nil {
		return nil, errAuthFailed
	}
	return pt, nil
}

// --- hashes ---

// hashes maps Vault's hash algorithm names to crypto.Hash.
var hashes = map[string]crypto.Hash{
	"sha1":     crypto.SHA1,
	"sha2-224": crypto.SHA224,
	"sha2-256": crypto.SHA256,
	"sha2-384": crypto.SHA384,
	"sha2-512": crypto.SHA512,
	"sha3-224": crypto.SHA3_224,
	"sha3-256": crypto.SHA3_256,
	"sha3-384": crypto.SHA3_384,
	"sha3-512": crypto.SHA3_512,
}

// newHash returns the hash function of a crypto.Hash this package links in.
func newHash(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA224:
		return sha256.New224
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	case crypto.SHA3_224:
		return func() hash.Hash { return sha3.New224() }
	case crypto.SHA3_256:
		return func() hash.Hash { return sha3.New256() }
	case crypto.SHA3_384:
		return func() hash.Hash { return sha3.New384() }
	case crypto.SHA3_512:
		return func() hash.Hash { return sha3.New512() }
	}
	return h.New // SHA-1: crypto/sha1 is linked in by Tink
}

// tinkHash is Tink's name for a hash Tink's HMAC and ECDSA support, "" for the others.
func tinkHash(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA224:
		return "SHA224"
	case crypto.SHA256:
		return "SHA256"
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	}
	return ""
}

func digest(h crypto.Hash, input []byte) []byte {
	f := newHash(h)()
	f.Write(input)
	return f.Sum(nil)
}

// --- MACs ---

// hmacSum computes an HMAC with Tink for SHA-1 and SHA-2; Tink has no SHA-3 HMAC, so those use
// crypto/hmac.
func hmacSum(h crypto.Hash, key, input []byte) ([]byte, error) {
	if name := tinkHash(h); name != "" {
		m, err := macsubtle.NewHMAC(name, key, uint32(h.Size()))
		if err != nil {
			return nil, fmt.Errorf("hmac: %w", err)
		}
		return m.ComputeMAC(input)
	}
	m := hmac.New(newHash(h), key)
	m.Write(input)
	return m.Sum(nil), nil
}

// hmacEqual verifies an HMAC in constant time (Tink's VerifyMAC where Tink has the hash).
func hmacEqual(h crypto.Hash, key, input, tag []byte) (bool, error) {
	if name := tinkHash(h); name != "" {
		m, err := macsubtle.NewHMAC(name, key, uint32(h.Size()))
		if err != nil {
			return false, fmt.Errorf("hmac: %w", err)
		}
		return m.VerifyMAC(tag, input) == nil, nil
	}
	sum, err := hmacSum(h, key, input)
	if err != nil {
		return false, err
	}
	return hmac.Equal(sum, tag), nil
}

// --- signatures ---

// signOpts are the per-request signing parameters.
type signOpts struct {
	hash       crypto.Hash
	prehashed  bool
	pss        bool // RSA: PSS (default) or PKCS #1 v1.5
	saltLength int  // RSA-PSS
	jws        bool // marshaling_algorithm=jws: raw r||s for ECDSA, URL-safe base64
}

func (o signOpts) encoding() *base64.Encoding {
	if o.jws {
		return base64.RawURLEncoding
	}
	return base64.StdEncoding
}

// tinkECDSAOK reports whether Tink's ECDSA signer can do this request: Tink hashes the input
// itself and insists on the hash its security level pairs with the curve. Vault also signs
// prehashed digests and any hash on any curve (its default is SHA-256 on every curve), which
// crypto/ecdsa does for the remaining cases.
func tinkECDSAOK(typ string, o signOpts) bool {
	if o.prehashed {
		return false
	}
	switch typ {
	case typeECDSA256:
		return o.hash == crypto.SHA256
	case typeECDSA384:
		return o.hash == crypto.SHA384 || o.hash == crypto.SHA512
	case typeECDSA521:
		return o.hash == crypto.SHA512
	}
	return false
}

func ecdsaEncoding(o signOpts) string {
	if o.jws {
		return "IEEE_P1363"
	}
	return "DER"
}

// signed is a signature and, for derived ed25519 keys, the public key that verifies it.
type signed struct {
	sig       string
	publicKey []byte
}

// signItem signs input under version ver of k.
func (b *Backend) signItem(k transitview.Key, ver int, context, input []byte, o signOpts) (signed, error) {
	v := k.Versions[ver]
	switch {
	case k.Type == typeEd25519:
		if o.prehashed {
			return signed{}, engines.BadRequest("prehashed input is not supported for key type ed25519")
		}
		seed, owned, err := ed25519Seed(k, v, context)
		if err != nil {
			return signed{}, err
		}
		if owned {
			defer clear(seed)
		}
		s, err := sigsubtle.NewED25519Signer(seed)
		if err != nil {
			return signed{}, fmt.Errorf("ed25519 signer: %w", err)
		}
		sig, err := s.Sign(input)
		if err != nil {
			return signed{}, fmt.Errorf("ed25519 sign: %w", err)
		}
		out := signed{sig: format(ver, sig, o.encoding())}
		if k.Derived {
			out.publicKey = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		}
		return out, nil
	case isECDSA(k.Type):
		priv, err := ecdsaKey(k.Type, v.Key)
		if err != nil {
			return signed{}, err
		}
		var sig []byte
		if tinkECDSAOK(k.Type, o) {
			s, err := sigsubtle.NewECDSASignerFromPrivateKey(tinkHash(o.hash), ecdsaEncoding(o), priv)
			if err != nil {
				return signed{}, fmt.Errorf("ecdsa signer: %w", err)
			}
			if sig, err = s.Sign(input); err != nil {
				return signed{}, fmt.Errorf("ecdsa sign: %w", err)
			}
		} else {
			d := input
			if !o.prehashed {
				d = digest(o.hash, input)
			}
			if o.jws {
				r, s, err := ecdsa.Sign(rand.Reader, priv, d)
				if err != nil {
					return signed{}, fmt.Errorf("ecdsa sign: %w", err)
				}
				size := (priv.Curve.Params().BitSize + 7) / 8
				sig = make([]byte, 2*size)
				r.FillBytes(sig[:size])
				s.FillBytes(sig[size:])
			} else if sig, err = ecdsa.SignASN1(rand.Reader, priv, d); err != nil {
				return signed{}, fmt.Errorf("ecdsa sign: %w", err)
			}
		}
		return signed{sig: format(ver, sig, o.encoding())}, nil
	case isRSA(k.Type):
		// crypto/rsa, not Tink: tink-go's RSA signers are built only from keyset handles whose
		// parameters fix the hash and PSS salt length per key, and cannot sign a caller's
		// prehashed digest or use SHA-224, SHA-1 or SHA-3; Vault's API chooses all of those per
		// request.
		priv, err := rsaKey(v.Key)
		if err != nil {
			return signed{}, err
		}
		d := input
		if !o.prehashed {
			d = digest(o.hash, input)
		}
		if len(d) != o.hash.Size() {
			return signed{}, engines.BadRequest("prehashed input has %d bytes, want %d for the hash algorithm", len(d), o.hash.Size())
		}
		var sig []byte
		if o.pss {
			sig, err = rsa.SignPSS(rand.Reader, priv, o.hash, d, &rsa.PSSOptions{SaltLength: o.saltLength})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, o.hash, d)
		}
		if err != nil {
			return signed{}, engines.BadRequest("unable to sign with the given parameters")
		}
		return signed{sig: format(ver, sig, o.encoding())}, nil
	}
	return signed{}, engines.BadRequest("key type %s does not support signing", k.Type)
}

// verifyItem checks a signature. A signature that does not verify is valid=false, not an
// error; a malformed envelope is an error, as in Vault.
func (b *Backend) verifyItem(k transitview.Key, signature string, context, input []byte, o signOpts) (bool, error) {
	env, err := parseEnvelope(k, signature, "signature")
	if err != nil {
		return false, err
	}
	sig, err := o.encoding().DecodeString(env.payload)
	if err != nil {
		return false, engines.BadRequest("invalid base64 signature value")
	}
	v := k.Versions[env.version]
	switch {
	case k.Type == typeEd25519:
		if o.prehashed {
			return false, engines.BadRequest("prehashed input is not supported for key type ed25519")
		}
		var pub []byte
		if k.Derived {
			seed, _, err := ed25519Seed(k, v, context)
			if err != nil {
				return false, err
			}
			pub = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
			clear(seed)
		} else {
			if pub, err = base64.StdEncoding.DecodeString(v.PublicKey); err != nil {
				return false, fmt.Errorf("ed25519 public key: %w", err)
			}
		}
		ver, err := sigsubtle.NewED25519Verifier(pub)
		if err != nil {
			return false, fmt.Errorf("ed25519 verifier: %w", err)
		}
		return ver.Verify(sig, input) == nil, nil
	case isECDSA(k.Type):
		priv, err := ecdsaKey(k.Type, v.Key)
		if err != nil {
			return false, err
		}
		pub := &priv.PublicKey
		if tinkECDSAOK(k.Type, o) {
			ver, err := sigsubtle.NewECDSAVerifierFromPublicKey(tinkHash(o.hash), ecdsaEncoding(o), pub)
			if err != nil {
				return false, fmt.Errorf("ecdsa verifier: %w", err)
			}
			return ver.Verify(sig, input) == nil, nil
		}
		d := input
		if !o.prehashed {
			d = digest(o.hash, input)
		}
		if !o.jws {
			return ecdsa.VerifyASN1(pub, d, sig), nil
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false, nil
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, d, r, s), nil
	case isRSA(k.Type):
		priv, err := rsaKey(v.Key)
		if err != nil {
			return false, err
		}
		d := input
		if !o.prehashed {
			d = digest(o.hash, input)
		}
		if o.pss {
			salt := o.saltLength
			return rsa.VerifyPSS(&priv.PublicKey, o.hash, d, sig, &rsa.PSSOptions{SaltLength: salt}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(&priv.PublicKey, o.hash, d, sig) == nil, nil
	}
	return false, engines.BadRequest("key type %s does not support verification", k.Type)
}
