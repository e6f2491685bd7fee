package autoseal

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThalesGroup/crypto11"
)

// ckmAESGCM is CKM_AES_GCM, the one mechanism this seal uses (Vault's default for AES keys).
const ckmAESGCM = 0x1087

// PKCS11 wraps the root key with an AES key in an HSM through crypto11 (which loads the
// vendor's PKCS#11 library with cgo). The blob is the 12-byte nonce followed by the GCM output.
type PKCS11 struct {
	ctx   *crypto11.Context
	aead  cipher.AEAD
	label string
}

var _ Wrapper = (*PKCS11)(nil)

const gcmNonceSize = 12

func openPKCS11(p params) (w *PKCS11, err error) {
	const typ = TypePKCS11
	lib, err := p.required(typ, "lib", "VAULT_HSM_LIB")
	if err != nil {
		return nil, err
	}
	pin, err := p.required(typ, "pin", "VAULT_HSM_PIN")
	if err != nil {
		return nil, err
	}
	label, err := p.required(typ, "key_label", "VAULT_HSM_KEY_LABEL")
	if err != nil {
		return nil, err
	}
	if m := p.get("mechanism", "VAULT_HSM_MECHANISM"); m != "" && !isAESGCM(m) {
		return nil, fmt.Errorf("seal %q: mechanism %q is not supported; use CKM_AES_GCM (0x1087): %w", typ, m, ErrConfig)
	}
	generate, err := p.boolean(typ, "generate_key", "VAULT_HSM_GENERATE_KEY")
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: lib, Pin: pin, GCMIVLength: gcmNonceSize, MaxSessions: 4}
	slot, tokenLabel := p.get("slot", "VAULT_HSM_SLOT"), p.get("token_label", "VAULT_HSM_TOKEN_LABEL")
	switch {
	case slot != "":
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(slot), "0x"), base(slot), 32)
		if err != nil {
			return nil, fmt.Errorf("seal %q: slot %q is not a number: %w", typ, slot, ErrConfig)
		}
		s := int(n)
		cfg.SlotNumber = &s
	case tokenLabel != "":
		cfg.TokenLabel = tokenLabel
	default:
		return nil, fmt.Errorf("seal %q needs slot or token_label (or set VAULT_HSM_SLOT / VAULT_HSM_TOKEN_LABEL): %w", typ, ErrConfig)
	}
	c, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, fmt.Errorf("seal %q: open token: %w", typ, pkcs11Error(err))
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	key, err := c.FindKey(nil, []byte(label))
	if err != nil && strings.Contains(err.Error(), "was not found") {
		key, err = nil, nil // crypto11 says "not found" with an error; generate_key decides
	}
	if err != nil {
		return nil, fmt.Errorf("seal %q: find key %q: %w", typ, label, pkcs11Error(err))
	}
	if key == nil {
		if !generate {
			return nil, fmt.Errorf("seal %q: no key labelled %q on the token; create it or set generate_key = \"true\": %w", typ, label, ErrKeyUnusable)
		}
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
		if key, err = c.GenerateSecretKeyWithLabel(id, []byte(label), 256, crypto11.CipherAES); err != nil {
			return nil, fmt.Errorf("seal %q: generate key %q: %w", typ, label, pkcs11Error(err))
		}
	}
	aead, err := key.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("seal %q: key %q: %w", typ, label, pkcs11Error(err))
	}
	return &PKCS11{ctx: c, aead: aead, label: label}, nil
}

func base(s string) int {
	if strings.HasPrefix(strings.ToLower(s), "0x") {
		return 16
	}
	return 10
}

func isAESGCM(m string) bool {
	m = strings.ToUpper(strings.TrimSpace(m))
	if m == "CKM_AES_GCM" {
		return true
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(m), "0x"), base(m), 32)
	return err == nil && n == ckmAESGCM
}

// Type implements Wrapper.
func (w *PKCS11) Type() string { return TypePKCS11 }

// KeyID implements Wrapper.
func (w *PKCS11) KeyID() string { return w.label }

// Close implements Wrapper.
func (w *PKCS11) Close() error { return w.ctx.Close() }

// Encrypt implements Wrapper. crypto11 panics when the token fails during Seal (cipher.AEAD
// has no error return); that becomes an error here.
func (w *PKCS11) Encrypt(ctx context.Context, plaintext []byte) (out []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11 encrypt: %v: %w", err, ErrUnreachable)
	}
	nonce := make([]byte, gcmNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("pkcs11 encrypt with key %s: %v: %w", w.label, r, ErrKeyUnusable)
		}
	}()
	return w.aead.Seal(nonce, nonce, plaintext, nil), nil
}

// Decrypt implements Wrapper.
func (w *PKCS11) Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11 decrypt: %v: %w", err, ErrUnreachable)
	}
	if len(ciphertext) <= gcmNonceSize {
		return nil, fmt.Errorf("pkcs11 decrypt: ciphertext too short: %w", ErrWrongKey)
	}
	out, err := w.aead.Open(nil, ciphertext[:gcmNonceSize], ciphertext[gcmNonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("pkcs11 decrypt with key %s: %w", w.label, pkcs11Error(err))
	}
	return out, nil
}

func pkcs11Error(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "CKR_PIN_INCORRECT"), strings.Contains(msg, "CKR_PIN_LOCKED"),
		strings.Contains(msg, "CKR_PIN_INVALID"), strings.Contains(msg, "CKR_PIN_LEN_RANGE"):
		return fmt.Errorf("%s (the PIN was refused; not retrying, so the token is not locked): %w", msg, ErrDenied)
	case strings.Contains(msg, "could not find PKCS#11 token"), strings.Contains(msg, "failed to open module"):
		return fmt.Errorf("%s: %w", msg, ErrConfig)
	case strings.Contains(msg, "CKR_ENCRYPTED_DATA_INVALID"), strings.Contains(msg, "CKR_ENCRYPTED_DATA_LEN_RANGE"),
		strings.Contains(msg, "authentication failed"):
		return fmt.Errorf("%s: %w", msg, ErrWrongKey)
	case strings.Contains(msg, "CKR_DEVICE"), strings.Contains(msg, "CKR_SESSION"), strings.Contains(msg, "CKR_TOKEN_NOT_PRESENT"):
		return fmt.Errorf("%s: %w", msg, ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", msg, ErrKeyUnusable)
}
