package autoseal

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// Transit wraps the root key with a key of the transit engine of another Ledger, or a Vault
// or OpenBao server, through the official Vault client.
type Transit struct {
	client  *vault.Client
	mount   string
	keyName string
}

var _ Wrapper = (*Transit)(nil)

func openTransit(p params) (*Transit, error) {
	const typ = TypeTransit
	addr, err := p.required(typ, "address", "VAULT_ADDR")
	if err != nil {
		return nil, err
	}
	token, err := p.required(typ, "token", "VAULT_TOKEN")
	if err != nil {
		return nil, err
	}
	keyName, err := p.required(typ, "key_name", "VAULT_TRANSIT_SEAL_KEY_NAME")
	if err != nil {
		return nil, err
	}
	mount := strings.Trim(p.get("mount_path", "VAULT_TRANSIT_SEAL_MOUNT_PATH"), "/")
	if mount == "" {
		return nil, fmt.Errorf("seal %q needs mount_path (or set VAULT_TRANSIT_SEAL_MOUNT_PATH): %w", typ, ErrConfig)
	}
	skip, err := p.boolean(typ, "tls_skip_verify", "VAULT_SKIP_VERIFY")
	if err != nil {
		return nil, err
	}
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	// The server bounds each call with its context and retries on its own schedule.
	cfg.MaxRetries = 0
	tls := &vault.TLSConfig{
		CACert:        p.get("tls_ca_cert", "VAULT_CACERT"),
		ClientCert:    p.get("tls_client_cert", "VAULT_CLIENT_CERT"),
		ClientKey:     p.get("tls_client_key", "VAULT_CLIENT_KEY"),
		TLSServerName: p.get("tls_server_name", "VAULT_TLS_SERVER_NAME"),
		Insecure:      skip,
	}
	if err := cfg.ConfigureTLS(tls); err != nil {
		return nil, fmt.Errorf("seal %q: tls settings: %v: %w", typ, err, ErrConfig)
	}
	client, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("seal %q: %v: %w", typ, err, ErrConfig)
	}
	client.SetToken(token)
	if ns := p.get("namespace", "VAULT_NAMESPACE"); ns != "" {
		client.SetNamespace(ns)
	}
	return &Transit{client: client, mount: mount, keyName: keyName}, nil
}

// Type implements Wrapper.
func (w *Transit) Type() string { return TypeTransit }

// KeyID implements Wrapper.
func (w *Transit) KeyID() string { return w.mount + "/keys/" + w.keyName }

// Close implements Wrapper.
func (w *Transit) Close() error { return nil }

// Encrypt implements Wrapper.
func (w *Transit) Encrypt(ctx context.Context, plaintext []byte) ([]byte, error) {
	s, err := w.client.Logical().WriteWithContext(ctx, w.mount+"/encrypt/"+w.keyName,
		map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)})
	if err != nil {
		return nil, fmt.Errorf("transit encrypt with key %s: %w", w.KeyID(), transitError(ctx, err))
	}
	var ct string
	if s != nil {
		ct, _ = s.Data["ciphertext"].(string)
	}
	if ct == "" {
		return nil, fmt.Errorf("transit encrypt with key %s: no ciphertext in the answer: %w", w.KeyID(), ErrKeyUnusable)
	}
	return []byte(ct), nil
}

// Decrypt implements Wrapper.
func (w *Transit) Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error) {
	s, err := w.client.Logical().WriteWithContext(ctx, w.mount+"/decrypt/"+w.keyName,
		map[string]any{"ciphertext": string(ciphertext)})
	if err != nil {
		return nil, fmt.Errorf("transit decrypt with key %s: %w", w.KeyID(), transitError(ctx, err))
	}
	var pt string
	if s != nil {
		pt, _ = s.Data["plaintext"].(string)
	}
	out, derr := base64.StdEncoding.DecodeString(pt)
	if pt == "" || derr != nil {
		return nil, fmt.Errorf("transit decrypt with key %s: no plaintext in the answer: %w", w.KeyID(), ErrWrongKey)
	}
	return out, nil
}

func transitError(ctx context.Context, err error) error {
	var resp *vault.ResponseError
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%v: %w", err, ErrUnreachable)
	case errors.As(err, &resp):
		msg := strings.Join(resp.Errors, "; ")
		switch {
		case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%d %s: %w", resp.StatusCode, msg, ErrDenied)
		case resp.StatusCode == http.StatusBadRequest && strings.Contains(msg, "decrypt"):
			return fmt.Errorf("%d %s: %w", resp.StatusCode, msg, ErrWrongKey)
		case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%d %s: %w", resp.StatusCode, msg, ErrKeyUnusable)
		}
		// 5xx, including a sealed transit server (503): it may come back.
		return fmt.Errorf("%d %s: %w", resp.StatusCode, msg, ErrUnreachable)
	case errors.As(err, &netErr):
		return fmt.Errorf("%v: %w", err, ErrUnreachable)
	}
	return fmt.Errorf("%v: %w", err, ErrUnreachable)
}
