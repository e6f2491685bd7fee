package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/consul-template/child"
	"github.com/hashicorp/consul-template/manager"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
)

// ExitError carries the exit code of the exec child, which the agent exits with.
type ExitError struct{ Code int }

func (e *ExitError) Error() string {
	return fmt.Sprintf("the supervised process exited with code %d", e.Code)
}

// supervisor is the exec block: it starts the child once its environment
// templates have rendered, restarts it (restart_stop_signal, then a new
// process) when they change, and passes signals through.
type supervisor struct {
	cfg    *config.Exec
	hasEnv bool
	stdout io.Writer
	stderr io.Writer
	logger *slog.Logger

	mu      sync.Mutex
	child   *child.Child
	lastEnv []string
	exitCh  chan int
	timer   *time.Timer
}

func newSupervisor(cfg *config.Exec, hasEnv bool, stdout, stderr io.Writer, logger *slog.Logger) (*supervisor, error) {
	s := &supervisor{cfg: cfg, hasEnv: hasEnv, stdout: stdout, stderr: stderr, logger: logger, exitCh: make(chan int, 1)}
	var err error
	if cfg.ChildStdout != "" {
		if s.stdout, err = os.OpenFile(cfg.ChildStdout, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("exec child_process_stdout: %w", err)
		}
	}
	if cfg.ChildStderr != "" {
		if s.stderr, err = os.OpenFile(cfg.ChildStderr, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("exec child_process_stderr: %w", err)
		}
	}
	return s, nil
}

// rendered receives the env runner's render events; when every variable
// has a value and the set differs from the running child's, the child is
// (re)started after a short settle, so a burst of renders is one restart.
func (s *supervisor) rendered(events map[string]*manager.RenderEvent, want int) {
	if len(events) < want {
		return
	}
	var env []string
	for _, ev := range events {
		if ev.LastWouldRender.IsZero() {
			return
		}
		for _, tc := range ev.TemplateConfigs {
			env = append(env, *tc.MapToEnvironmentVariable+"="+string(ev.Contents))
		}
	}
	sort.Strings(env)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(env, s.lastEnv) {
		return
	}
	s.lastEnv = env
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(500*time.Millisecond, func() { s.restart(env) })
}

func (s *supervisor) restart(env []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child != nil {
		if s.cfg.RestartOnSecretChanges == "never" {
			s.logger.Info("exec: secrets changed; not restarting the process (restart_on_secret_changes = \"never\")", "pid", s.child.Pid())
			return
		}
		s.logger.Info("exec: secrets changed; restarting the process", "pid", s.child.Pid(), "signal", s.cfg.RestartStopSignal.String())
		s.child.Stop()
		s.child = nil
	}
	args, subshell, err := child.CommandPrep(s.cfg.Command)
	if err != nil {
		s.logger.Error("exec: bad command", "error", err)
		s.exitCh <- 1
		return
	}
	c, err := child.New(&child.NewInput{
		Stdin:       os.Stdin,
		Stdout:      s.stdout,
		Stderr:      s.stderr,
		Command:     args[0],
		Args:        args[1:],
		Env:         append(os.Environ(), env...),
		KillSignal:  s.cfg.RestartStopSignal,
		KillTimeout: 30 * time.Second,
		Setpgid:     subshell,
		Logger:      log.New(io.Discard, "", 0),
	})
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		s.logger.Error("exec: the process could not start", "command", s.cfg.Command[0], "error", err)
		s.exitCh <- 127
		return
	}
	s.child = c
	s.logger.Info("exec: process started", "pid", c.Pid())
	go func() {
		// A closed channel is a stop the supervisor asked for; a value is
		// the process ending by itself.
		if code, ok := <-c.ExitCh(); ok {
			s.exitCh <- code
		}
	}()
}

// signal passes sig to the child; it reports whether there was one.
func (s *supervisor) signal(sig os.Signal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child == nil {
		return false
	}
	if err := s.child.Signal(sig); err != nil {
		s.logger.Warn("exec: passing a signal failed", "signal", sig.String(), "error", err)
	}
	return true
}

func (s *supervisor) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.child != nil {
		s.child.Stop()
		s.child = nil
	}
}

// run waits for the child to exit by itself and returns its code.
func (s *supervisor) run(ctx context.Context) error {
	if !s.hasEnv {
		s.restart(nil)
	}
	select {
	case <-ctx.Done():
		s.stop()
		return nil
	case code := <-s.exitCh:
		s.logger.Info("exec: process exited", "code", code)
		return &ExitError{Code: code}
	}
}
