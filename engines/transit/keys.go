package transit

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/tink-crypto/tink-go/v2/subtle"
	"github.com/tink-crypto/tink-go/v2/subtle/random"

	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// Key types, as Vault names them.
const (
	typeAES128   = "aes128-gcm96"
	typeAES256   = "aes256-gcm96"
	typeChaCha20 = "chacha20-poly1305"
	typeEd25519  = "ed25519"
	typeECDSA256 = "ecdsa-p256"
	typeECDSA384 = "ecdsa-p384"
	typeECDSA521 = "ecdsa-p521"
	typeRSA2048  = "rsa-2048"
	typeRSA3072  = "rsa-3072"
	typeRSA4096  = "rsa-4096"
	typeHMAC     = "hmac"
)

// HMAC key sizes for type hmac, in bytes, as Vault bounds them.
const (
	hmacMinKeySize     = 32
	hmacMaxKeySize     = 512
	hmacDefaultKeySize = 32
	// hmacKeySize is the size of the per-version HMAC key every key type carries.
	hmacKeySize = 32
)

// capabilities of a key type, as Vault reports them in supports_*.
type capabilities struct {
	encrypt bool // encrypt, decrypt, rewrap, datakey
	sign    bool // sign, verify
	derive  bool // derived keys (per-context)
}

var keyTypes = map[string]capabilities{
	typeAES128:   {encrypt: true, derive: true},
	typeAES256:   {encrypt: true, derive: true},
	typeChaCha20: {encrypt: true, derive: true},
	typeEd25519:  {sign: true, derive: true},
	typeECDSA256: {sign: true},
	typeECDSA384: {sign: true},
	typeECDSA521: {sign: true},
	typeRSA2048:  {encrypt: true, sign: true},
	typeRSA3072:  {encrypt: true, sign: true},
	typeRSA4096:  {encrypt: true, sign: true},
	typeHMAC:     {},
}

func isSymmetric(t string) bool { return t == typeAES128 || t == typeAES256 || t == typeChaCha20 }

func isECDSA(t string) bool { return t == typeECDSA256 || t == typeECDSA384 || t == typeECDSA521 }

func isRSA(t string) bool { return t == typeRSA2048 || t == typeRSA3072 || t == typeRSA4096 }

// symmetricKeySize is the key size of a symmetric type in bytes.
func symmetricKeySize(t string) int {
	if t == typeAES128 {
		return 16
	}
	return 32
}

func curveOf(t string) elliptic.Curve {
	switch t {
	case typeECDSA384:
		return elliptic.P384()
	case typeECDSA521:
		return elliptic.P521()
	}
	return elliptic.P256()
}

// tinkCurve is Tink's name for the curve of an ECDSA type.
func tinkCurve(t string) string {
	switch t {
	case typeECDSA384:
		return "NIST_P384"
	case typeECDSA521:
		return "NIST_P521"
	}
	return "NIST_P256"
}

func rsaBits(t string) int {
	switch t {
	case typeRSA3072:
		return 3072
	case typeRSA4096:
		return 4096
	}
	return 2048
}

// generate makes the material of a new key version, created at now. keySize applies to hmac
// keys only. The random source is the OS CSPRNG, through Tink where Tink generates the key.
func generate(typ string, keySize int, now time.Time) (transitview.Version, error) {
	v := transitview.Version{Created: now.UTC(), HMACKey: random.GetRandomBytes(hmacKeySize)}
	switch {
	case isSymmetric(typ):
		v.Key = random.GetRandomBytes(uint32(symmetricKeySize(typ)))
	case typ == typeHMAC:
		if keySize == 0 {
			keySize = hmacDefaultKeySize
		}
		v.Key = random.GetRandomBytes(uint32(keySize))
	case typ == typeEd25519:
		v.Key = random.GetRandomBytes(ed25519.SeedSize)
		priv := ed25519.NewKeyFromSeed(v.Key)
		v.PublicKey = base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
		clear(priv)
	case isECDSA(typ):
		// Tink generates ECDSA keys with this same call; its key manager API would only wrap the
		// result in a keyset we would have to take apart again.
		priv, err := ecdsa.GenerateKey(curveOf(typ), rand.Reader)
		if err != nil {
			return v, fmt.Errorf("generate %s key: %w", typ, err)
		}
		if v.Key, err = priv.Bytes(); err != nil {
			return v, fmt.Errorf("encode %s key: %w", typ, err)
		}
		if v.PublicKey, err = publicPEM(&priv.PublicKey); err != nil {
			return v, err
		}
	case isRSA(typ):
		priv, err := rsa.GenerateKey(rand.Reader, rsaBits(typ))
		if err != nil {
			return v, fmt.Errorf("generate %s key: %w", typ, err)
		}
		v.Key = x509.MarshalPKCS1PrivateKey(priv)
		if v.PublicKey, err = publicPEM(&priv.PublicKey); err != nil {
			return v, err
		}
	default:
		return v, fmt.Errorf("generate: unknown key type %q", typ)
	}
	return v, nil
}

// publicPEM formats a public key as Vault does in key reads: PKIX DER in a "PUBLIC KEY" block.
func publicPEM(pub any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// deriveKey derives a per-context key of size bytes from a version's material with
// HKDF-SHA256 (the context is the info; no salt), as Vault's hkdf_sha256 KDF does. The caller
// clears the result.
func deriveKey(material, context []byte, size int) ([]byte, error) {
	if len(context) == 0 {
		return nil, errMissingContext
	}
	k, err := subtle.ComputeHKDF("SHA256", material, nil, context, uint32(size))
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return k, nil
}

// ecdsaKey parses an ECDSA version's scalar. It fails on material that is not a valid scalar
// for the curve (a corrupt restore), never panics.
func ecdsaKey(typ string, material []byte) (*ecdsa.PrivateKey, error) {
	priv, err := ecdsa.ParseRawPrivateKey(curveOf(typ), material)
	if err != nil {
		return nil, fmt.Errorf("ecdsa key material: %w", err)
	}
	return priv, nil
}

// ed25519Seed returns the signing seed of a version: the stored seed, or for a derived key the
// seed derived for context. owned reports whether the caller must clear it.
func ed25519Seed(k transitview.Key, v transitview.Version, context []byte) (seed []byte, owned bool, err error) {
	if len(v.Key) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("ed25519 key material has %d bytes", len(v.Key))
	}
	if !k.Derived {
		return v.Key, false, nil
	}
	s, err := deriveKey(v.Key, context, ed25519.SeedSize)
	return s, err == nil, err
}

// rsaKey parses an RSA version's PKCS #1 material. It is parsed per request rather than
// cached: parsing costs about a tenth of a signature, and a cache would keep the key of a
// trimmed or deleted version alive in memory.
func rsaKey(material []byte) (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS1PrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("rsa key material: %w", err)
	}
	return k, nil
}

// validateMaterial checks that a version's material fits its type, so a restored backup can
// never make a later request fail oddly or panic.
func validateMaterial(k transitview.Key, n int, v transitview.Version) error {
	bad := func(what string) error { return fmt.Errorf("version %d: %s", n, what) }
	if len(v.HMACKey) != 0 && len(v.HMACKey) < 16 {
		return bad("hmac key too short")
	}
	switch {
	case isSymmetric(k.Type):
		if len(v.Key) != symmetricKeySize(k.Type) {
			return bad("key has the wrong size")
		}
	case k.Type == typeHMAC:
		if len(v.Key) < hmacMinKeySize || len(v.Key) > hmacMaxKeySize {
			return bad("hmac key has the wrong size")
		}
	case k.Type == typeEd25519:
		if len(v.Key) != ed25519.SeedSize {
			return bad("ed25519 seed has the wrong size")
		}
	case isECDSA(k.Type):
		if _, err := ecdsaKey(k.Type, v.Key); err != nil {
			return bad("invalid ecdsa key")
		}
	case isRSA(k.Type):
		priv, err := x509.ParsePKCS1PrivateKey(v.Key)
		if err != nil || priv.N.BitLen() != rsaBits(k.Type) {
			return bad("invalid rsa key")
		}
	default:
		return bad("unknown key type")
	}
	return nil
}

// publicKeyOf recomputes the public key string of a version (used for restored keys, so the
// stored public key always matches the private one).
func publicKeyOf(typ string, material []byte) (string, error) {
	switch {
	case typ == typeEd25519:
		priv := ed25519.NewKeyFromSeed(material)
		defer clear(priv)
		return base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), nil
	case isECDSA(typ):
		priv, err := ecdsaKey(typ, material)
		if err != nil {
			return "", err
		}
		return publicPEM(&priv.PublicKey)
	case isRSA(typ):
		priv, err := x509.ParsePKCS1PrivateKey(material)
		if err != nil {
			return "", fmt.Errorf("rsa key material: %w", err)
		}
		return publicPEM(&priv.PublicKey)
	}
	return "", nil
}
