package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/k8sreg"
	"github.com/ledger-secrets/ledger/commands"
)

// The server's lifecycle as seen from outside the process: systemd's notify protocol and the
// labels on a Kubernetes pod. Both follow one state, read from the core.

// stateSource is what the lifecycle reads from the core.
type stateSource interface {
	Initialized() bool
	Unsealed() bool
}

// haState is this node's place in an HA cluster; *ledger.Elector is one.
type haState interface {
	Active() (bool, uint64)
}

// nodeState is the node's state for systemd's STATUS and the pod labels. Without HA (ha nil)
// an unsealed node is the active one, as a single Vault node is. With HA the lease decides:
// an unsealed node without it is a performance standby (it serves reads from its own views).
func nodeState(c stateSource, ha haState) k8sreg.State {
	unsealed := c.Unsealed()
	st := k8sreg.State{Initialized: c.Initialized(), Sealed: !unsealed, Active: unsealed}
	if ha != nil && unsealed {
		active, _ := ha.Active()
		st.Active, st.PerfStandby = active, !active
	}
	return st
}

func statusLine(s k8sreg.State) string {
	switch {
	case !s.Initialized:
		return "not initialized: run 'ledger operator init'"
	case s.Sealed:
		return "sealed: waiting for unseal keys ('ledger operator unseal')"
	case s.Active:
		return "unsealed, active"
	case s.PerfStandby:
		return "unsealed, performance standby"
	default:
		return "unsealed, standby"
	}
}

// lifecycle runs the notifications for one server.
type lifecycle struct {
	logger   *slog.Logger
	source   stateSource
	ha       haState              // nil without HA
	reg      *k8sreg.Registration // nil without service_registration
	interval time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
}

// startLifecycle tells systemd the server is ready (its listeners serve and its seal state
// has caught up with the log, which commands.New waits for) and starts keeping systemd's
// STATUS and the pod's labels in step with the state. Vault's behaviour is the model: a
// sealed server is ready, because it is up and waiting for what only an operator can give.
//
// ha, when the node runs an elector, decides active or standby; its OnChange should call
// changed, so that the labels move at once rather than at the next poll.
func startLifecycle(ctx context.Context, logger *slog.Logger, source stateSource, ha haState, reg *k8sreg.Registration) *lifecycle {
	l := &lifecycle{logger: logger, source: source, ha: ha, reg: reg, interval: time.Second, kick: make(chan struct{}, 1)}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	if reg != nil {
		l.wg.Go(func() { reg.Run(rctx, func() k8sreg.State { return nodeState(source, ha) }) })
	}
	st := nodeState(source, ha)
	l.notify(daemon.SdNotifyReady + "\nSTATUS=" + statusLine(st))
	l.wg.Go(func() { l.followStatus(rctx, st) })
	return l
}

// newRegistration resolves the stanza against the environment and reads the pod once. A
// refusal (no RBAC, wrong pod, bad token) stops the server with what to fix; an API server
// that cannot be reached only warns, since Run retries and a restart loop would not help.
func newRegistration(ctx context.Context, logger *slog.Logger, sr *config.ServiceRegistration) (*k8sreg.Registration, error) {
	rc, err := k8sreg.FromEnvironment(sr.Namespace, sr.PodName, os.Getenv)
	if err != nil {
		return nil, err
	}
	rc.Version, rc.Logger = commands.Version, logger
	reg, err := k8sreg.New(rc)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := reg.Check(cctx); err != nil {
		var code interface{ StatusCode() int }
		if errors.Is(err, k8sreg.ErrAPI) && errors.As(err, &code) && code.StatusCode() < http.StatusInternalServerError {
			return nil, fmt.Errorf("kubernetes service registration: %w", err)
		}
		logger.Warn("kubernetes service registration: API server not reachable yet; will retry", "err", err)
	}
	logger.Info("kubernetes service registration: labelling pod", "pod", rc.Namespace+"/"+rc.PodName)
	return reg, nil
}

// changed is called on a state transition (seal, unseal, promotion, demotion) so that the
// labels and STATUS follow at once rather than at the next poll.
func (l *lifecycle) changed() {
	if l.reg != nil {
		l.reg.Notify()
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *lifecycle) followStatus(ctx context.Context, last k8sreg.State) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
		if st := nodeState(l.source, l.ha); st != last {
			l.notify("STATUS=" + statusLine(st))
			last = st
		}
	}
}

// stopping tells systemd the server is stopping (it then waits up to TimeoutStopSec rather
// than treating the exit as a failure) and marks the pod stopped so that no Service routes
// to it while it drains.
func (l *lifecycle) stopping() {
	l.notify(daemon.SdNotifyStopping + "\nSTATUS=stopping: draining requests")
	l.cancel()
	l.wg.Wait()
}

// notify sends to $NOTIFY_SOCKET; without one (not under systemd) it does nothing.
func (l *lifecycle) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		l.logger.Warn("systemd notify failed", "err", err)
	}
}

// runLifecycle notifies and labels from start until ctx ends, then says the server is
// stopping; the caller closes the server after it returns.
func runLifecycle(ctx context.Context, logger *slog.Logger, s *server, cfg *config.Config) error {
	var reg *k8sreg.Registration
	if sr := cfg.ServiceRegistration; sr != nil {
		var err error
		if reg, err = newRegistration(ctx, logger, sr); err != nil {
			return err
		}
	}
	// HA lane: pass the node's elector here (and call l.changed from its OnChange).
	l := startLifecycle(ctx, logger, s.core, nil, reg)
	<-ctx.Done()
	logger.Info("shutting down: draining requests")
	l.stopping()
	return nil
}

var _ stateSource = (*commands.Core)(nil)
