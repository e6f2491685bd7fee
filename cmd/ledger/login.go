package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) loginCmd() *cobra.Command {
	var (
		method, mount, field string
		noStore, tokenOnly   bool
	)
	cmd := &cobra.Command{
		Use:   "login [flags] [TOKEN | - | K=V...]",
		Short: "Authenticate and store the token for later commands",
		Long: `Authenticate to the server. On success the token is stored in ~/.ledger-token
(mode 0600) and used by later commands, unless -no-store is given.
LEDGER_TOKEN and VAULT_TOKEN, when set, take precedence over the stored token.

Methods:
  token (default)  ledger login [TOKEN]       (no TOKEN: prompt; "-": read stdin)
  userpass         ledger login -method=userpass username=alice [password=...]
  approle          ledger login -method=approle role_id=... secret_id=...
  oidc             ledger login -method=oidc [role=NAME] [port=8250] [skip_browser=true]
                   (opens the browser, or prints the URL; waits for the callback on
                   localhost:8250)
  kubernetes, jwt  ledger login -method=kubernetes role=NAME jwt=TOKEN
  other            ledger login -method=NAME k=v...  (POST auth/NAME/login with k=v)

-path selects the mount of the auth method (default: the method's name).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			secret, err := a.authenticate(cmd, c, method, mount, args)
			if err != nil {
				return err
			}
			if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
				return &cliError{op: "authenticating", err: fmt.Errorf("the server returned no token"), code: 2}
			}
			// -token-only is for scripts that keep the token themselves;
			// like Vault's, it implies -no-store.
			if !noStore && !tokenOnly {
				path, err := tokenFilePath(a.env)
				if err == nil {
					err = writeTokenFile(path, secret.Auth.ClientToken)
				}
				if err != nil {
					return &cliError{op: "storing token", err: err, code: 1}
				}
			}
			switch {
			case tokenOnly:
				_, err := fmt.Fprintln(a.stdout, secret.Auth.ClientToken)
				return err
			case field != "":
				return p.Field(rawField(secret, field), field)
			case p.format != formatTable:
				return p.Secret(secret)
			}
			if v := a.firstEnv("LEDGER_TOKEN", "VAULT_TOKEN"); v != "" {
				fmt.Fprint(a.stderr, "WARNING! LEDGER_TOKEN or VAULT_TOKEN is set and takes precedence over the\nstored token: unset it to use the token from this login.\n\n")
			}
			if noStore {
				fmt.Fprint(a.stdout, "Success! You are now authenticated. The token was not stored: pass it to\nlater commands with LEDGER_TOKEN or VAULT_TOKEN.\n\n")
			} else {
				fmt.Fprint(a.stdout, "Success! You are now authenticated. The token below is stored in\n~/.ledger-token; later commands use it, no need to log in again.\n\n")
			}
			return p.Secret(secret)
		},
	}
	f := cmd.Flags()
	f.StringVar(&method, "method", "token", "auth method: token, userpass, approle, or another method's name")
	f.StringVar(&mount, "path", "", "mount path of the auth method (default: the method's name)")
	f.StringVar(&field, "field", "", "print only this field of the answer")
	f.BoolVar(&noStore, "no-store", false, "do not store the token in ~/.ledger-token")
	f.BoolVar(&tokenOnly, "token-only", false, "print only the token (implies -no-store)")
	return cmd
}

// authenticate performs the login and returns an answer with Auth set.
func (a *app) authenticate(cmd *cobra.Command, c *Client, method, mount string, args []string) (*Secret, error) {
	ctx := cmd.Context()
	method = strings.ToLower(strings.TrimSpace(method))
	if mount == "" {
		mount = method
	}
	mount = sanitizePath(mount)
	if method == "token" || method == "" {
		if len(args) > 1 {
			return nil, usageErr(cmd, fmt.Errorf("too many arguments (expected at most 1, got %d)", len(args)))
		}
		token, err := a.loginToken(args)
		if err != nil {
			return nil, &cliError{op: "reading token", err: err, code: 1}
		}
		return lookupAuth(ctx, c.WithToken(token), token)
	}
	params, err := parseStringMap(args)
	if err != nil {
		return nil, usageErr(cmd, err)
	}
	// A login never sends the token of a previous session.
	anon := c.WithToken("")
	var (
		secret *Secret
		path   string
	)
	switch method {
	case "userpass", "ldap", "okta", "radius":
		username := params["username"]
		if username == "" {
			return nil, usageErr(cmd, fmt.Errorf("username=NAME is required for -method=%s", method))
		}
		password, ok := params["password"]
		if !ok {
			password, err = a.readHidden("Password (will be hidden): ")
			if err != nil {
				return nil, &cliError{op: "reading password", err: err, code: 1}
			}
		}
		body := map[string]any{"password": password}
		for k, v := range params {
			if k != "username" && k != "password" {
				body[k] = v
			}
		}
		path = "auth/" + mount + "/login/" + url.PathEscape(username)
		secret, err = anon.Post(ctx, path, body)
	case "oidc":
		secret, err = a.oidcLogin(ctx, anon, mount, params)
		if err != nil {
			return nil, err
		}
		return secret, nil
	case "approle":
		if params["role_id"] == "" {
			return nil, usageErr(cmd, fmt.Errorf("role_id=ID is required for -method=approle"))
		}
		path = "auth/" + mount + "/login"
		secret, err = anon.Post(ctx, path, params)
	default:
		path = "auth/" + mount + "/login"
		secret, err = anon.Post(ctx, path, params)
	}
	if err != nil {
		return nil, fail("authenticating", err)
	}
	return secret, nil
}

// loginToken gets the token for -method=token: the argument, stdin for
// "-", or a prompt without echo.
func (a *app) loginToken(args []string) (string, error) {
	var token string
	switch {
	case len(args) == 0:
		t, err := a.readHidden("Token (will be hidden): ")
		if err != nil {
			return "", err
		}
		token = t
	case args[0] == "-":
		if a.stdin == nil {
			return "", fmt.Errorf("no input: stdin is closed")
		}
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return "", fmt.Errorf("read stdin: %w", err)
		}
		token = string(b)
	case strings.HasPrefix(args[0], "token="):
		token = strings.TrimPrefix(args[0], "token=")
	default:
		token = args[0]
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", fmt.Errorf("the token is empty")
	}
	return token, nil
}

// lookupAuth verifies token with lookup-self and presents it as a login
// answer, as Vault's CLI does for the token method.
func lookupAuth(ctx context.Context, c *Client, token string) (*Secret, error) {
	s, err := c.Get(ctx, "auth/token/lookup-self", nil)
	if err != nil {
		return nil, fail("authenticating", err)
	}
	if s == nil || s.Data == nil {
		return nil, &cliError{op: "authenticating", err: fmt.Errorf("token lookup returned no data"), code: 2}
	}
	d := s.Data
	tokenPolicies := stringsOf(d["policies"])
	identityPolicies := stringsOf(d["identity_policies"])
	var meta map[string]string
	if m := mapOf(d["meta"]); len(m) > 0 {
		meta = make(map[string]string, len(m))
		for k, v := range m {
			meta[k] = stringOf(v)
		}
	}
	return &Secret{
		RequestID: s.RequestID,
		Auth: &SecretAuth{
			ClientToken:      token,
			Accessor:         stringOf(d["accessor"]),
			Policies:         unionStrings(tokenPolicies, identityPolicies),
			TokenPolicies:    tokenPolicies,
			IdentityPolicies: identityPolicies,
			Metadata:         meta,
			Orphan:           boolOf(d["orphan"]),
			EntityID:         stringOf(d["entity_id"]),
			LeaseDuration:    int(intOf(d["ttl"])),
			Renewable:        boolOf(d["renewable"]),
			TokenType:        stringOf(d["type"]),
		},
	}, nil
}

func unionStrings(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
