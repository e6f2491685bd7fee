package main

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/term"
)

const defaultAddress = "https://127.0.0.1:8200"

// app is one invocation of the CLI: its environment, streams and global
// flags. Commands read the environment only through it.
type app struct {
	env    map[string]string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// Global flags.
	address       string
	caCert        string
	tlsSkipVerify bool
	format        string
	wrapTTL       string

	// What the last client was built with, for error hints.
	usedAddress string
	sentToken   bool
}

// firstEnv returns the first non-empty variable among names.
func (a *app) firstEnv(names ...string) string {
	for _, n := range names {
		if v := a.env[n]; v != "" {
			return v
		}
	}
	return ""
}

// serverAddress: -address, then LEDGER_ADDR, then VAULT_ADDR, then the default.
func (a *app) serverAddress() string {
	if a.address != "" {
		return a.address
	}
	if v := a.firstEnv("LEDGER_ADDR", "VAULT_ADDR"); v != "" {
		return v
	}
	return defaultAddress
}

// token: LEDGER_TOKEN, then VAULT_TOKEN, then the token helper file.
func (a *app) token() (string, error) {
	if v := a.firstEnv("LEDGER_TOKEN", "VAULT_TOKEN"); v != "" {
		return strings.TrimSpace(v), nil
	}
	path, err := tokenFilePath(a.env)
	if err != nil {
		// No home directory is not an error: plenty of calls need no token.
		return "", nil
	}
	return readTokenFile(path)
}

func (a *app) clientConfig() (clientConfig, error) {
	cfg := clientConfig{
		Address:    a.serverAddress(),
		CACert:     a.caCert,
		SkipVerify: a.tlsSkipVerify,
	}
	if cfg.CACert == "" {
		cfg.CACert = a.firstEnv("LEDGER_CACERT", "VAULT_CACERT")
	}
	if !cfg.SkipVerify {
		if v := a.firstEnv("LEDGER_SKIP_VERIFY", "VAULT_SKIP_VERIFY"); v != "" {
			skip, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, fmt.Errorf("parse VAULT_SKIP_VERIFY=%q: want true or false", v)
			}
			cfg.SkipVerify = skip
		}
	}
	token, err := a.token()
	if err != nil {
		return cfg, err
	}
	cfg.Token = token
	cfg.WrapTTL = a.wrapTTL
	if cfg.WrapTTL == "" {
		cfg.WrapTTL = a.firstEnv("LEDGER_WRAP_TTL", "VAULT_WRAP_TTL")
	}
	return cfg, nil
}

// client builds the HTTP client for this invocation.
func (a *app) client() (*Client, error) {
	cfg, err := a.clientConfig()
	if err != nil {
		return nil, &cliError{op: "configuring the client", err: err, code: 1}
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, &cliError{op: "configuring the client", err: err, code: 1}
	}
	a.usedAddress = c.Address()
	a.sentToken = c.HasToken()
	return c, nil
}

// printer validates -format (or LEDGER_FORMAT / VAULT_FORMAT) and returns
// the printer for this invocation.
func (a *app) printer() (*printer, error) {
	f := a.format
	if f == "" {
		f = a.firstEnv("LEDGER_FORMAT", "VAULT_FORMAT")
	}
	format, err := parseFormat(f)
	if err != nil {
		return nil, &usageError{err: err, useLine: "ledger <command> -format=table|json|yaml", cmdPath: "ledger"}
	}
	return &printer{out: a.stdout, errOut: a.stderr, format: format}, nil
}

// readHidden reads one secret value: without echo from a terminal (after
// printing prompt to stderr), else as one line of stdin so scripts can pipe
// it in.
func (a *app) readHidden(prompt string) (string, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read from terminal: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if a.stdin == nil {
		return "", errors.New("no input: stdin is closed")
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input on stdin")
		}
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// hint says what to do next about err, or "".
func (a *app) hint(err error) string {
	var ce *cliError
	if errors.As(err, &ce) && ce.hint != "" {
		return ce.hint
	}
	addr := a.usedAddress
	if addr == "" {
		addr = a.serverAddress()
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.StatusCode == http.StatusServiceUnavailable && apiErr.Contains("sealed"):
			return "The server is sealed: unseal it with `ledger operator unseal`."
		case apiErr.StatusCode == http.StatusNotImplemented || (apiErr.StatusCode >= 500 && apiErr.Contains("not initialized")):
			return "The server is not initialized: initialize it with `ledger operator init`."
		case apiErr.StatusCode == http.StatusForbidden && !a.sentToken:
			return "No token was sent: log in with `ledger login`, or set LEDGER_TOKEN or VAULT_TOKEN."
		case apiErr.StatusCode == http.StatusForbidden:
			return "The token may lack a policy for this path: see `ledger token lookup` and `ledger token capabilities PATH`."
		}
		return ""
	}
	var unknownCA x509.UnknownAuthorityError
	var dnsErr *net.DNSError
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("Nothing is listening at %s: is the server running? Set -address or VAULT_ADDR to point elsewhere.", addr)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "The server speaks plain HTTP (a dev server?): use an http:// address, e.g. -address=" + strings.Replace(addr, "https://", "http://", 1)
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		return "Set -ca-cert or VAULT_CACERT to the CA that signed the server's certificate (or -tls-skip-verify, for testing only)."
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("Cannot resolve the host of %s: check -address or VAULT_ADDR.", addr)
	}
	return ""
}
