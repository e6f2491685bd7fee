// Package agent is `ledger agent`: Vault Agent's job with Vault Agent's
// configuration. It wires auto-auth (package auth), the API proxy and lease
// cache (package proxy), consul-template's runner for file templates and
// for exec's environment, and the process supervisor.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	ctlogging "github.com/hashicorp/consul-template/logging"
	"github.com/hashicorp/consul-template/manager"
	"github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/auth"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/proxy"
)

// DefaultLeaseCheckInterval is how often the agent asks the server whether
// the leases it holds are still alive.
const DefaultLeaseCheckInterval = 5 * time.Second

// Options are the parts of a run that do not come from the config file.
type Options struct {
	Address            string // the server; overrides vault.address when set
	Logger             *slog.Logger
	LogWriter          io.Writer // consul-template's own log lines
	LogLevel           string
	Stdout, Stderr     io.Writer // the exec child's streams
	Signals            <-chan os.Signal
	LeaseCheckInterval time.Duration
	// Listening, when set, is told each listener's address once bound.
	Listening func(addr string)
}

// Run runs the agent until ctx ends, a termination signal arrives, or
// exit_after_auth is satisfied. An exec child's exit is an *ExitError.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := o.Logger
	if o.LeaseCheckInterval <= 0 {
		o.LeaseCheckInterval = DefaultLeaseCheckInterval
	}

	client, err := newClient(cfg, o.Address)
	if err != nil {
		return err
	}
	upstream, err := url.Parse(client.Address())
	if err != nil {
		return fmt.Errorf("server address: %w", err)
	}
	transport := client.CloneConfig().HttpClient.Transport

	if err := setupCTLogging(o.LogWriter, o.LogLevel); err != nil {
		return err
	}

	// Everything that can be checked before the first request is checked
	// now, so a broken config stops the agent with a clear message.
	var sinks []auth.FileSink
	var method auth.Method
	if cfg.AutoAuth != nil {
		for _, s := range cfg.AutoAuth.Sinks {
			fs := auth.FileSink{Path: s.Path, Mode: s.Mode}
			if err := fs.Check(); err != nil {
				return err
			}
			sinks = append(sinks, fs)
		}
		if method, err = auth.NewMethod(cfg.AutoAuth.Method); err != nil {
			return err
		}
	}
	for _, t := range cfg.Templates {
		if err := checkDestination(t); err != nil {
			return err
		}
	}
	if err := validateTemplates(cfg); err != nil {
		return err
	}

	token := auth.NewToken()
	cache := proxy.NewCache()
	restart := newNotifier()
	var handler *auth.Handler
	reauth := func() {}
	if cfg.AutoAuth != nil {
		handler = &auth.Handler{
			Client: client, Method: method, Sinks: sinks,
			MinBackoff: cfg.AutoAuth.Method.MinBackoff, MaxBackoff: cfg.AutoAuth.Method.MaxBackoff,
			ExitOnErr: cfg.AutoAuth.Method.ExitOnErr, Logger: logger, Token: token,
		}
		reauth = handler.Reauthenticate
	}
	st := &status{token: token, cache: cache, logger: logger, seen: map[string]time.Time{}}

	// The template engine's connection to the agent's own proxy.
	pipe := proxy.NewPipeListener()
	internal := &http.Server{Handler: &proxy.Proxy{Upstream: upstream, Transport: transport, Cache: cache, Logger: logger},
		ReadHeaderTimeout: 10 * time.Second}
	go internal.Serve(pipe)
	defer internal.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	spawn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}

	var files, env *runnerLoop
	mkLoop := func(name string, dry bool) *runnerLoop {
		l := &runnerLoop{name: name, dry: dry, token: token, restart: restart, reauth: reauth,
			exitOnErr: cfg.TemplateConfig.ExitOnRetryFailure, minB: config.DefaultMinBackoff, maxB: config.DefaultMaxBackoff, logger: logger}
		if cfg.AutoAuth != nil {
			l.minB, l.maxB = cfg.AutoAuth.Method.MinBackoff, cfg.AutoAuth.Method.MaxBackoff
		}
		return l
	}
	if len(cfg.Templates) > 0 {
		files = mkLoop("template", false)
		files.base = ctConfig(cfg, ctTemplates(cfg.Templates), pipe)
		if err := files.validate(); err != nil {
			return err
		}
		st.templatesTotal = len(cfg.Templates)
	}
	var sup *supervisor
	if cfg.Exec != nil {
		if sup, err = newSupervisor(cfg.Exec, len(cfg.EnvTemplates) > 0, o.Stdout, o.Stderr, logger); err != nil {
			return err
		}
		if len(cfg.EnvTemplates) > 0 {
			env = mkLoop("env_template", true)
			env.base = ctConfig(cfg, ctEnvTemplates(cfg.EnvTemplates), pipe)
			env.rendered = sup.rendered
			if err := env.validate(); err != nil {
				return err
			}
		}
	}

	if cfg.PidFile != "" {
		if err := os.WriteFile(cfg.PidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("pid_file: %w", err)
		}
		defer os.Remove(cfg.PidFile)
	}

	if cfg.ExitAfterAuth {
		return runOnce(ctx, cfg, handler, files, st, logger)
	}

	for _, l := range cfg.Listeners {
		srv, ln, err := listen(l, cfg, upstream, transport, token, cache, reauth, st, logger)
		if err != nil {
			return err
		}
		if o.Listening != nil {
			o.Listening(ln.Addr().String())
		}
		logger.Info("agent: listening", "address", ln.Addr().String(), "tls", !l.TLSDisable)
		go srv.Serve(ln)
		defer srv.Close()
	}

	if handler != nil {
		spawn(func() error { return handler.Run(ctx, false) })
	}
	spawn(func() error {
		cache.Watch(ctx, client, o.LeaseCheckInterval, logger, func(string) { restart.fire() }, func(tok string) {
			if cur, _ := token.Get(); cur == tok {
				reauth()
			}
		})
		return nil
	})
	if files != nil {
		files.rendered = st.rendered
		spawn(func() error { return files.run(ctx) })
	}
	if env != nil {
		spawn(func() error { return env.run(ctx) })
	}
	if sup != nil {
		st.sup = sup
		spawn(func() error { return sup.run(ctx) })
	}

	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errs:
			result = err
			break loop
		case sig := <-o.Signals:
			if sup != nil && sup.signal(sig) {
				// The child decides; the agent ends when it does.
				logger.Info("agent: passed a signal to the process", "signal", sig.String())
				continue
			}
			if sig == syscall.SIGINT || sig == syscall.SIGTERM {
				logger.Info("agent: shutting down", "signal", sig.String())
				break loop
			}
		}
	}
	cancel()
	wg.Wait()
	return result
}

// runOnce is exit_after_auth: one login, the sinks, every template once.
func runOnce(ctx context.Context, cfg *config.Config, h *auth.Handler, files *runnerLoop, st *status, logger *slog.Logger) error {
	if err := h.Run(ctx, true); err != nil {
		return err
	}
	if files == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var once sync.Once
	files.rendered = func(events map[string]*manager.RenderEvent, want int) {
		st.rendered(events, want)
		if st.allRendered() {
			once.Do(func() { close(done) })
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- files.run(ctx) }()
	select {
	case <-done:
		logger.Info("agent: templates rendered; exiting (exit_after_auth)")
		cancel()
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}

func newClient(cfg *config.Config, address string) (*api.Client, error) {
	c := api.DefaultConfig()
	if c.Error != nil {
		return nil, c.Error
	}
	switch {
	case address != "":
		c.Address = address
	case cfg.Vault.Address != "":
		c.Address = cfg.Vault.Address
	}
	tc := &api.TLSConfig{CACert: cfg.Vault.CACert, CAPath: cfg.Vault.CAPath, ClientCert: cfg.Vault.ClientCert,
		ClientKey: cfg.Vault.ClientKey, TLSServerName: cfg.Vault.TLSServerName, Insecure: cfg.Vault.TLSSkipVerify}
	if err := c.ConfigureTLS(tc); err != nil {
		return nil, fmt.Errorf("vault TLS settings: %w", err)
	}
	c.MaxRetries = 0 // the agent's own loops retry, with backoff
	client, err := api.NewClient(c)
	if err != nil {
		return nil, err
	}
	client.ClearToken() // never VAULT_TOKEN from the environment
	return client, nil
}

func setupCTLogging(w io.Writer, level string) error {
	if w == nil {
		w = io.Discard
	}
	// consul-template's INFO lines are chatty; the agent's own log says
	// what matters. Its TRACE level is never used: it may print data.
	ct := "WARN"
	switch level {
	case "debug", "trace":
		ct = "DEBUG"
	case "error", "err":
		ct = "ERR"
	}
	return ctlogging.Setup(&ctlogging.Config{Level: ct, Writer: w})
}

// checkDestination refuses, at start, a destination the agent could never
// write: a missing directory (with create_dest_dirs = false) or one that
// is not writable.
func checkDestination(t *config.Template) error {
	dir := filepath.Dir(t.Destination)
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("template destination %s: %s is not a directory", t.Destination, dir)
			}
			break
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("template destination %s: a part of %s is a file, not a directory", t.Destination, dir)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("template destination %s: %w", t.Destination, err)
		}
		if !t.CreateDestDirs {
			return fmt.Errorf("template destination %s: the directory %s does not exist (create it, or set create_dest_dirs = true)", t.Destination, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	f, err := os.CreateTemp(dir, ".ledger-agent-check-*")
	if err != nil {
		return fmt.Errorf("template destination %s: the directory %s is not writable: %w", t.Destination, dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func listen(l config.Listener, cfg *config.Config, upstream *url.URL, transport http.RoundTripper, token *auth.Token,
	cache *proxy.Cache, reauth func(), st *status, logger *slog.Logger) (*http.Server, net.Listener, error) {
	p := &proxy.Proxy{Upstream: upstream, Transport: transport, Logger: logger, Denied: reauth}
	if cfg.APIProxy != nil && cfg.APIProxy.UseAutoAuthToken {
		p.Token = func() string { t, _ := token.Get(); return t }
		p.Force = cfg.APIProxy.ForceAutoAuth
	}
	if cfg.Cache != nil {
		p.Cache = cache
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/agent/v1/health", st.serveHealth)
	mux.Handle("/", p)
	var h http.Handler = mux
	if l.RequireRequestHeader {
		h = requireHeader(mux)
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("listener %s: %w", l.Address, err)
	}
	if !l.TLSDisable {
		cert, err := tls.LoadX509KeyPair(l.TLSCertFile, l.TLSKeyFile)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("listener %s: %w", l.Address, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln, nil
}

// requireHeader is Vault's require_request_header: only requests carrying
// X-Vault-Request: true, which a browser cannot be tricked into sending.
func requireHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Request") != "true" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusPreconditionFailed)
			w.Write([]byte(`{"errors":["missing 'X-Vault-Request' header"]}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// status is what the health endpoint reports.
type status struct {
	token          *auth.Token
	cache          *proxy.Cache
	sup            *supervisor
	templatesTotal int
	logger         *slog.Logger

	mu         sync.Mutex
	seen       map[string]time.Time // template ID -> last write logged
	renderedN  int
	lastRender time.Time
}

func (s *status) rendered(events map[string]*manager.RenderEvent, want int) {
	n := 0
	var last time.Time
	for _, ev := range events {
		if !ev.LastWouldRender.IsZero() {
			n++
		}
		if ev.LastDidRender.After(last) {
			last = ev.LastDidRender
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ev := range events {
		if ev.LastDidRender.After(s.seen[id]) {
			s.seen[id] = ev.LastDidRender
			for _, tc := range ev.TemplateConfigs {
				if tc.Destination != nil {
					s.logger.Info("template: file written", "destination", *tc.Destination)
				}
			}
		}
	}
	s.renderedN = min(n, want)
	if last.After(s.lastRender) {
		s.lastRender = last
	}
}

func (s *status) allRendered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renderedN >= s.templatesTotal
}

type health struct {
	Authenticated     bool   `json:"authenticated"`
	TokenExpires      string `json:"token_expires,omitempty"`
	TemplatesTotal    int    `json:"templates_total"`
	TemplatesRendered int    `json:"templates_rendered"`
	LastRender        string `json:"last_render,omitempty"`
	CacheEntries      int    `json:"cache_entries"`
}

// serveHealth answers 200 when the agent holds a token and every template
// has rendered, 503 otherwise, with the details either way.
func (s *status) serveHealth(w http.ResponseWriter, r *http.Request) {
	tok, _ := s.token.Get()
	h := health{Authenticated: tok != "", TemplatesTotal: s.templatesTotal, CacheEntries: s.cache.Len()}
	if exp := s.token.Expires(); !exp.IsZero() {
		h.TokenExpires = exp.UTC().Format(time.RFC3339)
	}
	s.mu.Lock()
	h.TemplatesRendered = s.renderedN
	if !s.lastRender.IsZero() {
		h.LastRender = s.lastRender.UTC().Format(time.RFC3339)
	}
	s.mu.Unlock()
	code := http.StatusOK
	if !h.Authenticated || h.TemplatesRendered < h.TemplatesTotal {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}
