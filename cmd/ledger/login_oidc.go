package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"time"
)

// oidcLoginTimeout bounds how long the CLI waits for the browser to come back.
const oidcLoginTimeout = 5 * time.Minute

// oidcLogin is `login -method=oidc`, as Vault's CLI: it asks the server for the provider's
// authorization URL with a redirect to a listener on this machine (localhost:8250 unless
// port=/listenaddress=/callbackhost= say otherwise), opens the browser there (or prints the
// URL when it cannot, or when skip_browser=true), and trades the code the browser brings back
// for a token.
func (a *app) oidcLogin(ctx context.Context, c *Client, mount string, params map[string]string) (*Secret, error) {
	listen := valueOr(params["listenaddress"], "localhost")
	port := valueOr(params["port"], "8250")
	if _, err := strconv.Atoi(port); err != nil {
		return nil, &cliError{op: "authenticating", err: fmt.Errorf("port=%q is not a number", port), code: 1}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listen, port))
	if err != nil {
		return nil, &cliError{op: "authenticating", err: fmt.Errorf("listen for the OIDC callback on %s:%s: %w; free the port or pass port=NNNN", listen, port, err), code: 1}
	}
	defer ln.Close()
	if port == "0" {
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	cbHost := valueOr(params["callbackhost"], "localhost")
	cbPort := valueOr(params["callbackport"], port)
	redirect := fmt.Sprintf("%s://%s/oidc/callback", valueOr(params["callbackmethod"], "http"), net.JoinHostPort(cbHost, cbPort))
	nonceBytes := make([]byte, 20)
	rand.Read(nonceBytes)
	clientNonce := base64.RawURLEncoding.EncodeToString(nonceBytes)

	au, err := c.Post(ctx, "auth/"+mount+"/oidc/auth_url", map[string]any{"role": params["role"], "redirect_uri": redirect, "client_nonce": clientNonce})
	if err != nil {
		return nil, fail("authenticating", err)
	}
	authURL, _ := au.Data["auth_url"].(string)
	if authURL == "" {
		return nil, &cliError{op: "authenticating", err: fmt.Errorf("unable to authorize role %q with redirect_uri %q; check the role's allowed_redirect_uris", params["role"], redirect), code: 2}
	}

	type result struct {
		secret *Secret
		err    error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oidc/callback" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		q := url.Values{"state": {r.Form.Get("state")}, "code": {r.Form.Get("code")}, "client_nonce": {clientNonce}}
		if e := r.Form.Get("error"); e != "" {
			q.Set("error", e)
			q.Set("error_description", r.Form.Get("error_description"))
		}
		s, err := c.Get(r.Context(), "auth/"+mount+"/oidc/callback", q)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<html><body><h1>Login failed</h1><p>%s</p><p>Return to the terminal.</p></body></html>", html.EscapeString(err.Error()))
		} else {
			fmt.Fprint(w, "<html><body><h1>Signed in to Ledger</h1><p>You can close this window and return to the terminal.</p></body></html>")
		}
		// The page goes out before the login ends: the server is shut down right after.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case done <- result{s, err}:
		default:
		}
	})}
	go srv.Serve(ln)
	defer func() {
		// Shutdown, not Close: the callback's page is still being written when the login
		// ends (the browser got EOF instead of "Signed in" once in CI).
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()

	fmt.Fprintf(a.stderr, "Complete the login via your OIDC provider. Launching browser to:\n\n    %s\n\n", authURL)
	if params["skip_browser"] != "true" {
		if err := openBrowser(authURL); err != nil {
			fmt.Fprintf(a.stderr, "Could not open a browser (%v): open the URL above yourself.\n\n", err)
		}
	}
	fmt.Fprintf(a.stderr, "Waiting for OIDC authentication to complete (listening on %s)...\n", net.JoinHostPort(listen, port))
	wctx, cancel := context.WithTimeout(ctx, oidcLoginTimeout)
	defer cancel()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fail("authenticating", r.err)
		}
		return r.secret, nil
	case <-wctx.Done():
		return nil, &cliError{op: "authenticating", err: errors.New("no callback from the browser in time; run the login again and finish it in the browser"), code: 2}
	}
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// openBrowser opens url in the desktop's browser.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	return cmd.Start()
}
