package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"
	"github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/auth"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/proxy"
)

func ptr[T any](v T) *T { return &v }

// ctTemplates turns template blocks into consul-template's form.
func ctTemplates(ts []*config.Template) ctconfig.TemplateConfigs {
	var out ctconfig.TemplateConfigs
	for _, t := range ts {
		tc := &ctconfig.TemplateConfig{
			Destination:    ptr(t.Destination),
			Backup:         ptr(t.Backup),
			CreateDestDirs: ptr(t.CreateDestDirs),
			ErrMissingKey:  ptr(t.ErrorOnMissingKey),
			// A failed render or command is reported to the agent, which
			// keeps the last good file and retries; it never ends the agent.
			ErrFatal: ptr(false),
		}
		if t.Source != "" {
			tc.Source = ptr(t.Source)
		} else {
			tc.Contents = ptr(t.Contents)
		}
		if t.Perms != 0 {
			tc.Perms = ptr(t.Perms)
		}
		if t.LeftDelim != "" {
			tc.LeftDelim = ptr(t.LeftDelim)
		}
		if t.RightDelim != "" {
			tc.RightDelim = ptr(t.RightDelim)
		}
		if len(t.Command) > 0 {
			tc.Exec = &ctconfig.ExecConfig{Command: append([]string(nil), t.Command...), Timeout: ptr(t.CommandTimeout)}
		}
		if t.WaitMin > 0 || t.WaitMax > 0 {
			tc.Wait = &ctconfig.WaitConfig{Enabled: ptr(true), Min: ptr(t.WaitMin), Max: ptr(t.WaitMax)}
		}
		out = append(out, tc)
	}
	return out
}

// ctEnvTemplates turns env_template blocks into consul-template templates
// mapped to environment variables.
func ctEnvTemplates(ts []*config.EnvTemplate) ctconfig.TemplateConfigs {
	var out ctconfig.TemplateConfigs
	for _, t := range ts {
		tc := &ctconfig.TemplateConfig{
			Contents:                 ptr(t.Contents),
			ErrMissingKey:            ptr(t.ErrorOnMissingKey),
			ErrFatal:                 ptr(false),
			MapToEnvironmentVariable: ptr(t.Name),
		}
		if t.LeftDelim != "" {
			tc.LeftDelim = ptr(t.LeftDelim)
		}
		if t.RightDelim != "" {
			tc.RightDelim = ptr(t.RightDelim)
		}
		out = append(out, tc)
	}
	return out
}

// ctConfig is consul-template's configuration for cfg's templates, talking
// to the agent's own proxy through dialer (so that leases go through the
// cache and the revocation watcher), as Vault Agent does with its cache.
func ctConfig(cfg *config.Config, templates ctconfig.TemplateConfigs, dialer *proxy.PipeListener) *ctconfig.Config {
	c := ctconfig.DefaultConfig()
	c.Templates = &templates
	// Set explicitly so nothing comes from the environment (VAULT_TOKEN).
	c.Vault.Token = ptr("")
	c.Vault.RenewToken = ptr(false)
	c.Vault.Address = ptr("http://127.0.0.1:8200") // ignored by the dialer
	c.Vault.Transport = &ctconfig.TransportConfig{CustomDialer: dialer}
	c.Vault.SSL = &ctconfig.SSLConfig{Enabled: ptr(false), Verify: ptr(false)}
	c.Vault.DefaultLeaseDuration = ptr(cfg.TemplateConfig.StaticSecretRenderInt)
	c.Vault.LeaseRenewalThreshold = ptr(cfg.TemplateConfig.LeaseRenewalThreshold)
	if n := cfg.TemplateConfig.MaxConnectionsPerHost; n > 0 {
		c.Vault.Transport.MaxConnsPerHost = ptr(n)
	}
	attempts := cfg.Vault.NumRetries
	enabled := attempts > 0
	if attempts < 0 {
		attempts = 0
	}
	c.Vault.Retry = &ctconfig.RetryConfig{Attempts: ptr(attempts), Enabled: ptr(enabled)}
	if cfg.AutoAuth != nil {
		c.Vault.Retry.Backoff = ptr(cfg.AutoAuth.Method.MinBackoff)
		c.Vault.Retry.MaxBackoff = ptr(cfg.AutoAuth.Method.MaxBackoff)
	}
	c.Finalize()
	return c
}

// runnerLoop runs one consul-template Runner at a time the way Vault
// Agent's template server does: a new runner for each new token; a new
// runner, after a backoff, when one fails; and, here, a new runner when the
// cache's watcher finds one of its leases revoked (the cache hands the
// other templates their unchanged leases, so only the revoked secret is
// fetched again).
type runnerLoop struct {
	name      string
	base      *ctconfig.Config
	dry       bool
	token     *auth.Token
	restart   *notifier
	reauth    func()
	exitOnErr bool
	minB      time.Duration
	maxB      time.Duration
	logger    *slog.Logger
	// rendered is called after each render event with the runner's events.
	rendered func(events map[string]*manager.RenderEvent, want int)
}

func (l *runnerLoop) newRunner(token string) (*manager.Runner, error) {
	c := l.base.Copy()
	c.Vault.Token = ptr(token)
	c.Finalize()
	r, err := manager.NewRunner(c, l.dry)
	if err != nil {
		return nil, err
	}
	if l.dry {
		r.SetOutStream(io.Discard)
	}
	return r, nil
}

// validate builds a runner without starting it, which parses every
// template: a template that does not parse stops the agent at start.
func (l *runnerLoop) validate() error {
	r, err := l.newRunner("")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	r.StopImmediately()
	return nil
}

func (l *runnerLoop) run(ctx context.Context) error {
	tok, changed := l.token.Get()
	for tok == "" {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			tok, changed = l.token.Get()
		}
	}
	b := backoff{min: l.minB, max: l.maxB}
	for {
		r, err := l.newRunner(tok)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		_, restart := l.restart.get()
		want := len(r.TemplateConfigMapping())
		go r.Start()
		stop := func() { r.Stop() }
	inner:
		for {
			select {
			case <-ctx.Done():
				stop()
				return nil
			case <-changed:
				tok, changed = l.token.Get()
				l.logger.Info(l.name + ": new token; restarting the template runner")
				stop()
				break inner
			case <-restart:
				l.logger.Info(l.name + ": a lease was revoked; fetching its secret again")
				stop()
				break inner
			case err := <-r.ErrCh:
				r.StopImmediately()
				if l.exitOnErr {
					return fmt.Errorf("%s: %w (exit_on_retry_failure is set)", l.name, err)
				}
				d := b.next()
				l.logger.Error(l.name+": template runner failed; the files keep their last content", "error", err, "restart_in", d.Round(time.Millisecond))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
				break inner
			case err := <-r.ServerErrCh:
				var re *api.ResponseError
				if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
					l.logger.Warn(l.name + ": the server refused the token (403)")
					l.reauth()
				}
			case <-r.TemplateRenderedCh():
				b.reset()
				if l.rendered != nil {
					l.rendered(r.RenderEvents(), want)
				}
			}
		}
	}
}

// notifier is a broadcast: get returns a channel closed at the next fire.
type notifier struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) get() (int, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n, n.ch
}

func (n *notifier) fire() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n++
	close(n.ch)
	n.ch = make(chan struct{})
}

type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	return time.Duration(float64(b.cur) * (0.75 + rand.Float64()/2))
}

func (b *backoff) reset() { b.cur = 0 }
