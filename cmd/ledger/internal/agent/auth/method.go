// Package auth owns the agent's auto-auth: logging in with the configured
// method, keeping the token alive (renewal, re-authentication with backoff
// and jitter), and writing it to the file sinks.
package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
)

// ErrNoCredentials is wrapped when a method has nothing to log in with (an
// empty or missing file and nothing cached from an earlier read).
var ErrNoCredentials = errors.New("no credentials")

// Method logs in and returns the login response, whose Auth holds the token.
type Method interface {
	Login(ctx context.Context, c *api.Client) (*api.Secret, error)
}

// NewMethod builds the method a config describes.
func NewMethod(m config.Method) (Method, error) {
	switch m.Type {
	case "approle":
		return &appRole{cfg: m}, nil
	case "token_file":
		return &tokenFile{path: m.TokenFile}, nil
	case "userpass":
		return &userpass{cfg: m}, nil
	case "kubernetes":
		return &jwtMethod{cfg: m, path: m.JWTPath}, nil
	case "jwt":
		return &jwtMethod{cfg: m, path: m.JWTPath, remove: m.RemoveJWTAfterRead}, nil
	}
	return nil, fmt.Errorf("auth method %q is not supported", m.Type)
}

// readTrimmed reads a credential file; an empty file is ErrNoCredentials.
func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty: %w", path, ErrNoCredentials)
	}
	return s, nil
}

func login(ctx context.Context, c *api.Client, path string, data map[string]any) (*api.Secret, error) {
	s, err := c.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%s answered without a token", path)
	}
	return s, nil
}

// appRole reads the role ID at every login and the secret ID from its file
// when present, keeping the last one read in memory: with
// remove_secret_id_file_after_reading (the default) the file is deleted
// once read, so re-authentication uses the cached value, and a new file
// dropped in by an orchestrator replaces it.
type appRole struct {
	cfg config.Method

	mu       sync.Mutex
	secretID string
}

func (a *appRole) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	roleID, err := readTrimmed(a.cfg.RoleIDFile)
	if err != nil {
		return nil, fmt.Errorf("read role ID: %w", err)
	}
	data := map[string]any{"role_id": roleID}
	if a.cfg.SecretIDFile != "" {
		secretID, err := a.readSecretID()
		if err != nil {
			return nil, err
		}
		data["secret_id"] = secretID
	}
	return login(ctx, c, a.cfg.LoginPath(), data)
}

func (a *appRole) readSecretID() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := readTrimmed(a.cfg.SecretIDFile)
	if err != nil {
		if a.secretID != "" {
			return a.secretID, nil
		}
		return "", fmt.Errorf("read secret ID (and none cached from an earlier read): %w", err)
	}
	a.secretID = s
	if a.cfg.RemoveSecretIDFile {
		if err := os.Remove(a.cfg.SecretIDFile); err != nil {
			return "", fmt.Errorf("remove secret ID file after reading: %w", err)
		}
	}
	return s, nil
}

// tokenFile uses a token written by someone else; the "login" is a
// lookup-self that tells its TTL and whether it renews.
type tokenFile struct{ path string }

func (t *tokenFile) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	tok, err := readTrimmed(t.path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	cc, err := c.Clone()
	if err != nil {
		return nil, err
	}
	cc.SetToken(tok)
	s, err := cc.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up the token from %s: %w", t.path, err)
	}
	ttl, _ := s.TokenTTL()
	renewable, _ := s.TokenIsRenewable()
	policies, _ := s.TokenPolicies()
	accessor, _ := s.TokenAccessor()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken: tok, Accessor: accessor, Policies: policies,
		LeaseDuration: int(ttl.Seconds()), Renewable: renewable,
	}}, nil
}

type userpass struct{ cfg config.Method }

func (u *userpass) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	pw := u.cfg.Password
	if u.cfg.PasswordFile != "" {
		var err error
		if pw, err = readTrimmed(u.cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
	}
	return login(ctx, c, u.cfg.LoginPath()+"/"+u.cfg.Username, map[string]any{"password": pw})
}

// jwtMethod covers kubernetes and jwt: both post {role, jwt} to the mount's
// login. Kubernetes' projected token is re-read at every login because the
// kubelet rotates it; the jwt method may delete its file after reading
// (Vault's default), keeping the last value for re-authentication.
type jwtMethod struct {
	cfg    config.Method
	path   string
	remove bool

	mu     sync.Mutex
	cached string
}

func (j *jwtMethod) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	tok, err := j.read()
	if err != nil {
		return nil, err
	}
	return login(ctx, c, j.cfg.LoginPath(), map[string]any{"role": j.cfg.Role, "jwt": tok})
}

func (j *jwtMethod) read() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	tok, err := readTrimmed(j.path)
	if err != nil {
		if j.cached != "" {
			return j.cached, nil
		}
		return "", fmt.Errorf("read JWT: %w", err)
	}
	j.cached = tok
	if j.remove {
		target := j.path
		if j.cfg.RemoveJWTFollowLinks {
			if t, err := filepath.EvalSymlinks(j.path); err == nil {
				target = t
			}
		}
		if err := os.Remove(target); err != nil {
			return "", fmt.Errorf("remove JWT file after reading: %w", err)
		}
	}
	return tok, nil
}
