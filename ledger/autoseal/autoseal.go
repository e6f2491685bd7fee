// Package autoseal owns the seals that keep the root key outside Ledger's people: a cloud KMS
// (awskms), the transit engine of another Ledger or Vault (transit), or an HSM (pkcs11). Each
// is a Wrapper that encrypts and decrypts the 32-byte root key; what is stored in the log is
// only the wrapper's ciphertext. The Shamir seal is not here: it needs no external system.
//
// The package imports nothing of Ledger's; commands decides when to wrap and unwrap.
package autoseal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Seal types, as written in a seal "TYPE" stanza and reported by sys/seal-status.
const (
	TypeShamir  = "shamir"
	TypeAWSKMS  = "awskms"
	TypeTransit = "transit"
	TypePKCS11  = "pkcs11"
)

// Errors a Wrapper returns, wrapped with what went wrong. The server decides from them whether
// retrying can help: ErrUnreachable and ErrKeyUnusable may heal on their own (the network comes
// back, the key is re-enabled); the others need an operator, and retrying them could lock an
// HSM account.
var (
	// ErrUnreachable: the external system did not answer in time or the connection failed.
	ErrUnreachable = errors.New("seal: key service unreachable")
	// ErrKeyUnusable: the key exists but cannot be used now (disabled, pending deletion, not
	// found, wrong usage).
	ErrKeyUnusable = errors.New("seal: key unusable")
	// ErrDenied: the credentials were refused (wrong PIN, token without permission).
	ErrDenied = errors.New("seal: access denied")
	// ErrWrongKey: the key answered but does not open this ciphertext.
	ErrWrongKey = errors.New("seal: ciphertext not decryptable with this key")
	// ErrConfig: the seal stanza is incomplete or wrong.
	ErrConfig = errors.New("seal: invalid configuration")
)

// Retryable reports whether err may go away without an operator.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrKeyUnusable)
}

// Wrapper encrypts and decrypts the root key with a key held by an external system. Calls
// wait at most until ctx is done.
type Wrapper interface {
	// Type is the seal type: awskms, transit or pkcs11.
	Type() string
	// KeyID names the external key (not secret), for seal-status and logs.
	KeyID() string
	Encrypt(ctx context.Context, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
	// Close releases connections and sessions.
	Close() error
}

// KeyState is what the external system says about the key.
type KeyState struct {
	// State is the key's state in the service's words ("Enabled", "Disabled",
	// "PendingDeletion"), or "" when the service has no such notion.
	State string
	// DeletionDate is set when the key is scheduled for deletion.
	DeletionDate time.Time
}

// Usable reports whether the state lets the key decrypt.
func (s KeyState) Usable() bool { return s.State == "" || s.State == "Enabled" }

// KeyStater is implemented by wrappers whose service reports the key's state (awskms).
type KeyStater interface {
	KeyState(ctx context.Context) (KeyState, error)
}

// Config is one seal stanza: seal "TYPE" { ... }.
type Config struct {
	Type     string
	Disabled bool
	// Params are the stanza's other settings, as strings.
	Params map[string]string
	// Line is where the stanza starts in the config file (0 when from the environment).
	Line int
}

// Getenv looks up an environment variable; os.Getenv in the server, a map in tests.
type Getenv func(string) string

// env returns the first set variable of names, trying LEDGER_ before VAULT_ for each.
func env(getenv Getenv, names ...string) string {
	if getenv == nil {
		return ""
	}
	for _, n := range names {
		if rest, ok := strings.CutPrefix(n, "VAULT_"); ok {
			if v := getenv("LEDGER_" + rest); v != "" {
				return v
			}
		}
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// FromEnv returns the seal stanza VAULT_SEAL_TYPE (or LEDGER_SEAL_TYPE) asks for, or false
// when neither is set. Its parameters come from the type's environment variables (see Open).
func FromEnv(getenv Getenv) (Config, bool) {
	t := env(getenv, "VAULT_SEAL_TYPE")
	if t == "" || t == TypeShamir {
		return Config{}, false
	}
	return Config{Type: t, Params: map[string]string{}}, true
}

// Types lists the seal types Open knows.
func Types() []string { return []string{TypeAWSKMS, TypeTransit, TypePKCS11} }

// Open builds the wrapper a stanza describes. Settings missing from the stanza are taken from
// the environment under Vault's names (VAULT_AWSKMS_SEAL_KEY_ID, VAULT_TRANSIT_SEAL_KEY_NAME,
// VAULT_HSM_PIN, …) or the same names with LEDGER_ instead of VAULT_. Open does not contact
// the service beyond what the library needs to start (pkcs11 logs in); call Encrypt or
// Decrypt to prove the key works.
func Open(ctx context.Context, cfg Config, getenv Getenv) (Wrapper, error) {
	p := params{m: cfg.Params, getenv: getenv}
	switch cfg.Type {
	case TypeAWSKMS:
		return openAWSKMS(ctx, p)
	case TypeTransit:
		return openTransit(p)
	case TypePKCS11:
		return openPKCS11(p)
	default:
		return nil, fmt.Errorf("seal type %q is not one of %s: %w", cfg.Type, strings.Join(Types(), ", "), ErrConfig)
	}
}

type params struct {
	m      map[string]string
	getenv Getenv
}

// get returns the stanza's value of key, else the first environment variable of envs.
func (p params) get(key string, envs ...string) string {
	if v, ok := p.m[key]; ok && v != "" {
		return v
	}
	return env(p.getenv, envs...)
}

func (p params) required(typ, key string, envs ...string) (string, error) {
	v := p.get(key, envs...)
	if v == "" {
		hint := ""
		if len(envs) > 0 {
			hint = " (or set " + envs[0] + ")"
		}
		return "", fmt.Errorf("seal %q needs %s%s: %w", typ, key, hint, ErrConfig)
	}
	return v, nil
}

func (p params) boolean(typ, key string, envs ...string) (bool, error) {
	v := p.get(key, envs...)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("seal %q: %s must be true or false: %w", typ, key, ErrConfig)
	}
	return b, nil
}

// Known lists the settings each type accepts, so the config reader can warn about the rest.
func Known(typ string) []string {
	common := []string{"disabled", "name", "priority"}
	switch typ {
	case TypeAWSKMS:
		return slices.Concat(common, []string{"region", "access_key", "secret_key", "session_token", "kms_key_id", "endpoint"})
	case TypeTransit:
		return slices.Concat(common, []string{"address", "token", "key_name", "mount_path", "namespace", "disable_renewal",
			"tls_ca_cert", "tls_client_cert", "tls_client_key", "tls_server_name", "tls_skip_verify"})
	case TypePKCS11:
		return slices.Concat(common, []string{"lib", "slot", "token_label", "pin", "key_label", "mechanism", "generate_key"})
	}
	return common
}

// Failed is a Wrapper that answers every call with err: the server keeps running sealed and
// says why when a seal could not even be opened (a wrong PIN, a missing library).
func Failed(typ string, err error) Wrapper { return failed{typ: typ, err: err} }

type failed struct {
	typ string
	err error
}

func (f failed) Type() string                                    { return f.typ }
func (f failed) KeyID() string                                   { return "" }
func (f failed) Close() error                                    { return nil }
func (f failed) Encrypt(context.Context, []byte) ([]byte, error) { return nil, f.err }
func (f failed) Decrypt(context.Context, []byte) ([]byte, error) { return nil, f.err }
