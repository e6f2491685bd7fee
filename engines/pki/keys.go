package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// keySpec is a key type and size as Vault names them: rsa (2048, 3072, 4096), ec (256, 384;
// 224 and 521 too), ed25519. bits 0 means the type's default.
type keySpec struct {
	typ  string
	bits int
}

// checkKeySpec normalises and validates a key type and size. any is allowed only where a role
// accepts keys of every type (sign).
func checkKeySpec(typ string, bits int, allowAny bool) (keySpec, error) {
	switch typ {
	case "rsa":
		if bits == 0 {
			bits = 2048
		}
		if bits != 2048 && bits != 3072 && bits != 4096 && bits != 8192 {
			return keySpec{}, engines.BadRequest("unsupported bit length for RSA key: %d", bits)
		}
	case "ec":
		if bits == 0 {
			bits = 256
		}
		if bits != 224 && bits != 256 && bits != 384 && bits != 521 {
			return keySpec{}, engines.BadRequest("unsupported bit length for EC key: %d", bits)
		}
	case "ed25519":
		bits = 0
	case "any":
		if !allowAny {
			return keySpec{}, engines.BadRequest("key_type \"any\" is only valid for roles; generating a key needs rsa, ec or ed25519")
		}
		bits = 0
	default:
		return keySpec{}, engines.BadRequest("unknown key type: %s", typ)
	}
	return keySpec{typ: typ, bits: bits}, nil
}

func curve(bits int) elliptic.Curve {
	switch bits {
	case 224:
		return elliptic.P224()
	case 384:
		return elliptic.P384()
	case 521:
		return elliptic.P521()
	}
	return elliptic.P256()
}

// generateKey makes a private key of the spec from the OS CSPRNG.
func generateKey(s keySpec) (crypto.Signer, error) {
	switch s.typ {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, s.bits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		return k, nil
	case "ec":
		k, err := ecdsa.GenerateKey(curve(s.bits), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ec key: %w", err)
		}
		return k, nil
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("generate: key type %q", s.typ)
}

// describeKey returns Vault's type name and size of a public key.
func describeKey(pub crypto.PublicKey) (string, int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "rsa", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ec", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "ed25519", 0
	}
	return "unknown", 0
}

// marshalKey encodes a private key as PKCS #8 DER (the view's storage form).
func marshalKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return der, nil
}

// parseKey decodes PKCS #8 DER from the view.
func parseKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("stored key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("stored key: %T cannot sign", k)
	}
	return s, nil
}

// keyPEM formats a private key as Vault does for private_key_format "pem" (the default):
// PKCS #1 for RSA, SEC 1 for EC, PKCS #8 for ed25519; "pkcs8" asks for PKCS #8 always. The
// second value is private_key_type.
func keyPEM(k crypto.Signer, format string) (string, string, error) {
	typ, _ := describeKey(k.Public())
	var blk *pem.Block
	switch {
	case format == "pkcs8" || typ == "ed25519":
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", fmt.Errorf("encode private key: %w", err)
		}
		blk = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case typ == "rsa":
		blk = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}
	default:
		der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
		if err != nil {
			return "", "", fmt.Errorf("encode private key: %w", err)
		}
		blk = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	return strings.TrimSpace(string(pem.EncodeToMemory(blk))), typ, nil
}

// parsePrivatePEM reads a private key block in any of the encodings keyPEM writes.
func parsePrivatePEM(blk *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, engines.BadRequest("unsupported PEM block type %q", blk.Type)
	}
	if err != nil {
		return nil, engines.BadRequest("error parsing %s: %s", strings.ToLower(blk.Type), err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, engines.BadRequest("unsupported private key type %T", k)
	}
	return s, nil
}

// samePublic reports whether two public keys are equal.
func samePublic(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

// certPEM formats DER as a CERTIFICATE block, without the trailing newline (as Vault).
func certPEM(der []byte) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// parseCertPEM reads exactly one certificate from PEM text.
func parseCertPEM(s string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, engines.BadRequest("no CERTIFICATE PEM block found")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, engines.BadRequest("unable to parse certificate: %s", err)
	}
	return c, nil
}

// serialString formats a serial number as Vault does: colon-separated lowercase hex bytes.
func serialString(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// normSerial accepts a serial as colon- or hyphen-separated hex and returns the canonical form.
func normSerial(s string) (string, bool) {
	h := strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(strings.TrimSpace(s)))
	if h == "" {
		return "", false
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		return "", false
	}
	return serialString(n), true
}

// newSerial is a random positive 159-bit serial (RFC 5280 allows 20 octets).
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
