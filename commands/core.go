// Package commands is the request pipeline: authenticate → authorize on the internal path →
// route by the mount table → let the backend decide events → append → wait until the views
// have applied them → answer. It also owns the seal lifecycle (init, unseal, seal, rotate),
// because what a sealed server can do is decided here. The HTTP adapter is commands/httpapi.
package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/shamir"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// Version is what sys/seal-status and sys/health report. Vault clients read it as semver; the
// build metadata says which server they talk to.
const Version = "1.17.0+ledger.0.1.0"

// Errors of the seal lifecycle, mapped to HTTP by httpapi.
var (
	ErrSealed             = errors.New("Vault is sealed") // clients match on this text
	ErrNotInitialized     = errors.New("Vault is not initialized")
	ErrAlreadyInitialized = errors.New("Vault is already initialized")
	ErrBadShare           = errors.New("invalid key")
)

// Options configure a Core.
type Options struct {
	ClusterName string
	Logger      *slog.Logger
	// Replicas for auxiliary streams (data keys) on an external cluster.
	Replicas int
	// Snapshots configure automatic snapshots (see snapshot.go).
	Snapshots SnapshotOptions
	// Audit configures the audit trail (see audit.go).
	Audit AuditOptions
	// LogLevel, when set, is the level of Logger that sys/loggers changes at run time.
	LogLevel *slog.LevelVar
	// Telemetry configures sys/metrics (see telemetry.go).
	Telemetry TelemetryOptions
	// Events configures change events on NATS subjects (see events_nats.go).
	Events EventsOptions
	// Seal configures an auto-seal and seal migration (see seal_auto.go); zero is Shamir.
	Seal SealOptions
	// HA, when set, makes this node one of a cluster (ha.go).
	HA *HAOptions
	// Prefetch is this node's newest checkpoint copy being read ahead (PrefetchCheckpoint),
	// taken by the first unseal if it is the checkpoint that unseal loads.
	Prefetch *replay.Prefetch
}

// Core ties the log, the seal state and, while unsealed, the views and backends together.
type Core struct {
	log        *ledger.Log
	logger     *slog.Logger
	opts       Options
	sealView   *seal.View
	sealRunner *projections.Runner
	stopSeal   context.CancelFunc
	sealDone   chan struct{}

	// lifecycle guards init/unseal/seal/rotate against each other.
	lifecycle sync.Mutex
	progress  unsealProgress

	// mu guards st; requests hold it for reading for their whole length, so sealing waits for
	// in-flight requests and no request sees half-dropped state.
	mu sync.RWMutex
	st *unsealed

	misc miscState // per-node state of the small sys endpoints (sys_misc.go)
	auto autoState // auto-seal state (seal_auto.go)

	telemetry     *Telemetry // telemetry.go; created on first use
	telemetryOnce sync.Once

	ha *haState // nil without HA (ha.go)
}

type unsealProgress struct {
	kind   unsealKind
	shares [][]byte
	nonce  string
}

// New builds a Core over an open log and starts following the seal state. The Core starts
// sealed, always: nothing that opens the keyring survives a restart.
func New(ctx context.Context, log *ledger.Log, opts Options) (*Core, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "ledger-cluster"
	}
	c := &Core{log: log, logger: opts.Logger, opts: opts, sealView: seal.New(), sealDone: make(chan struct{})}
	c.sealRunner = projections.NewRunner(log, nil, c.sealView)
	// A cluster that is forming (or loaded) may not answer at once: retry what is transient,
	// for as long as the log itself waits for its cluster.
	for began := time.Now(); ; {
		err := c.sealRunner.CatchUp(ctx)
		if err == nil {
			break
		}
		if !ledger.Transient(err) || time.Since(began) > ledger.DefaultFormTimeout || ctx.Err() != nil {
			return nil, fmt.Errorf("read seal state: %w", err)
		}
		opts.Logger.Warn("reading the seal state: the log's cluster does not answer yet; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.stopSeal = cancel
	go func() {
		defer close(c.sealDone)
		if err := c.sealRunner.Run(rctx); err != nil {
			c.logger.Error("seal state follower stopped", "err", err)
		}
	}()
	if err := c.startHA(ctx); err != nil {
		c.stopSeal()
		return nil, fmt.Errorf("high availability: %w", err)
	}
	return c, nil
}

// Close seals and stops following the log. The log itself is closed by its owner.
func (c *Core) Close() {
	c.Seal()
	if c.ha != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.ha.el.Stop(ctx) // resign: a standby takes over now, not after the TTL
		cancel()
	}
	c.stopSeal()
	waitStopped(c.logger, "seal state follower", c.sealDone)
}

// waitStopped waits for a follower to finish after its context was cancelled, but not forever:
// closing the log's connection next ends it in any case, and a shutdown must not hang on it.
func waitStopped(logger *slog.Logger, what string, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		logger.Warn(what + " did not stop within 10s; closing the log connection will end it")
	}
}

// SealStatus is the body of sys/seal-status.
type SealStatus struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type"`
	// RecoveryEscrow (Ledger's): the recovery keys can also open the root key, so the data
	// survives the loss of the auto-seal's key. Shown only with an auto-seal.
	RecoveryEscrow *bool `json:"recovery_escrow,omitempty"`
}

// BuildDate is stamped at link time when known.
var BuildDate = "2026-11-28T00:00:00Z"

// SealStatus reports the seal state.
func (c *Core) SealStatus() SealStatus {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	return c.sealStatusLocked()
}

func (c *Core) sealStatusLocked() SealStatus {
	s := c.sealView.State()
	progress, nonce := len(c.progress.shares), c.progress.nonce
	st := SealStatus{Type: c.SealType(), Initialized: s.Initialized, Sealed: !c.Unsealed(), T: s.Threshold, N: s.Shares,
		Progress: progress, Nonce: nonce, Version: Version, BuildDate: BuildDate, StorageType: "jetstream"}
	if s.Initialized && !st.Sealed {
		st.ClusterName, st.ClusterID = c.opts.ClusterName, s.ClusterID
	}
	st.RecoverySeal = st.Type != "shamir"
	if st.Sealed {
		st.Migration = c.mode(s).migrate
	}
	if s.Recovery != nil {
		escrow := len(s.Recovery.Escrow) > 0
		st.RecoveryEscrow = &escrow
	}
	return st
}

// Initialized reports whether the log holds an init.
func (c *Core) Initialized() bool { return c.sealView.Initialized() }

// Unsealed reports whether the keyring is loaded.
func (c *Core) Unsealed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.st != nil
}

// ClusterInfo returns the cluster name and id (id empty before init).
func (c *Core) ClusterInfo() (string, string) {
	return c.opts.ClusterName, c.sealView.ClusterID()
}

// InitRequest is the body of PUT sys/init.
type InitRequest struct {
	SecretShares    int
	SecretThreshold int
	// RootToken, when set, is used as the root token instead of a random one (dev mode only).
	RootToken string
	// RecoveryShares and RecoveryThreshold split the recovery key of an auto-seal.
	RecoveryShares, RecoveryThreshold int
	// RecoveryEscrow also wraps the root key under the recovery key (auto-seal only), so the
	// recovery quorum can unseal if the external key is lost.
	RecoveryEscrow bool
}

// InitResult is shown once and never stored: the shares and the root token.
type InitResult struct {
	Keys [][]byte
	// RecoveryKeys are the recovery shares of an auto-seal (Keys is then empty).
	RecoveryKeys   [][]byte
	RecoveryEscrow bool
	RootToken      string
	ClusterID      string
	Shares         int
	Threshold      int
	RootPolicy     []string
}

// Init creates the root key, splits it into shares, creates the keyring and the root token, and
// appends the seal state and the first events in one batch. The server stays sealed.
func (c *Core) Init(ctx context.Context, req InitRequest) (*InitResult, error) {
	if c.opts.Seal.Wrapper != nil {
		return c.initAuto(ctx, req)
	}
	if req.RecoveryEscrow {
		return nil, fmt.Errorf("recovery escrow needs an auto-seal (a seal stanza); with the Shamir seal the unseal keys are the only keys: %w", ErrInvalidInit)
	}
	n, t := req.SecretShares, req.SecretThreshold
	if err := checkInitSplit("secret", n, t); err != nil {
		return nil, err
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.Initialized() {
		return nil, ErrAlreadyInitialized
	}
	now := time.Now().UTC()
	rootKey := make([]byte, ledger.RootKeySize)
	if _, err := rand.Read(rootKey); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	defer clear(rootKey)
	kr, err := ledger.NewKeyring(now)
	if err != nil {
		return nil, err
	}
	wrapped, err := kr.Wrap(rootKey)
	if err != nil {
		return nil, err
	}
	shares, err := shamir.Split(rootKey, n, t)
	if err != nil {
		return nil, fmt.Errorf("split root key: %w", err)
	}
	rootToken, clusterID, err := c.commitInit(ctx, seal.InitializedPayload{Shares: n, Threshold: t, Keyring: wrapped, Time: now}, kr, req.RootToken)
	if err != nil {
		return nil, err
	}
	c.logger.Info("initialized", "shares", n, "threshold", t)
	return &InitResult{Keys: shares, RootToken: rootToken, ClusterID: clusterID, Shares: n, Threshold: t}, nil
}

// checkInitSplit validates a Shamir split at init; what is "secret" or "recovery", as the API names them.
func checkInitSplit(what string, n, t int) error {
	switch {
	case n < 1 || n > 255:
		return fmt.Errorf("%s_shares must be between 1 and 255, got %d: %w", what, n, ErrInvalidInit)
	case t < 1 || t > n:
		return fmt.Errorf("%s_threshold must be between 1 and %s_shares (%d), got %d: %w", what, what, n, t, ErrInvalidInit)
	case t == 1 && n > 1:
		return fmt.Errorf("%s_threshold of 1 with %d shares would let any one holder act alone; use a threshold of at least 2, or 1 share: %w", what, n, ErrInvalidInit)
	}
	return nil
}

// commitInit appends the init event (p, with a new cluster id) and the root token's events in
// one batch and waits until the seal view has applied it. Called with c.lifecycle held.
func (c *Core) commitInit(ctx context.Context, p seal.InitializedPayload, kr *ledger.Keyring, rootTokenReq string) (rootToken, clusterID string, err error) {
	p.ClusterID = newUUID()
	initPayload, _ := json.Marshal(p)
	events := []ledger.Event{{Type: seal.Initialized, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: initPayload}}
	rootToken, tokenEvents, err := initialEvents(kr, rootTokenReq, p.Time)
	if err != nil {
		return "", "", err
	}
	events = append(events, tokenEvents...)
	pos, err := c.log.Append(ctx, events, ledger.WithKeyring(kr))
	if err != nil {
		return "", "", fmt.Errorf("append init: %w", err)
	}
	if err := c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
		return "", "", fmt.Errorf("apply init: %w", err)
	}
	if st := c.sealView.State(); st.ClusterID != p.ClusterID {
		// Another node initialised first; our batch is ignored by every view.
		return "", "", ErrAlreadyInitialized
	}
	return rootToken, p.ClusterID, nil
}

// ErrInvalidInit: init parameters out of range.
var ErrInvalidInit = errors.New("invalid init parameters")

// DecodeShare accepts a share in hex or base64, as Vault does.
func DecodeShare(key string) ([]byte, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, fmt.Errorf("missing key: %w", ErrBadShare)
	}
	if b, err := hex.DecodeString(key); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(key); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("'key' must be a valid hex or base64 string: %w", ErrBadShare)
}

// Unseal adds one share. When the threshold is reached it reconstructs the root key and opens
// the keyring; wrong shares reset the progress and leave the server sealed.
func (c *Core) Unseal(ctx context.Context, share []byte) (SealStatus, error) {
	s := c.sealView.State()
	if !s.Initialized {
		return SealStatus{}, ErrNotInitialized
	}
	if c.Unsealed() {
		return c.SealStatus(), nil
	}
	if m := c.mode(s); m.migrate || m.mismatch != "" || m.logType != "shamir" {
		return c.UnsealWith(ctx, UnsealRequest{Share: share}) // says what to do instead
	}
	c.lifecycle.Lock()
	if c.progress.kind != kindUnseal {
		c.resetProgressLocked()
	}
	if len(share) != ledger.RootKeySize+1 {
		c.lifecycle.Unlock()
		return SealStatus{}, fmt.Errorf("key is %d bytes, want %d: %w", len(share), ledger.RootKeySize+1, ErrBadShare)
	}
	for _, have := range c.progress.shares {
		if string(have) == string(share) {
			c.lifecycle.Unlock()
			return c.SealStatus(), nil // the same holder twice does not count twice
		}
	}
	if c.progress.nonce == "" {
		c.progress.nonce = newUUID()
	}
	c.progress.shares = append(c.progress.shares, append([]byte(nil), share...))
	if len(c.progress.shares) < s.Threshold {
		c.lifecycle.Unlock()
		return c.SealStatus(), nil
	}
	shares := c.progress.shares
	c.progress = unsealProgress{} // the shares are ours now; zeroed below
	rootKey, err := shamir.Combine(shares)
	for _, sh := range shares {
		clear(sh)
	}
	wrongKeys := fmt.Errorf("the keys given do not reconstruct the root key; unseal progress was reset, start again with correct keys: %w", ErrBadShare)
	if err != nil {
		c.lifecycle.Unlock()
		return SealStatus{}, wrongKeys
	}
	kr, err := ledger.UnwrapKeyring(rootKey, s.Keyring)
	if err != nil {
		clear(rootKey)
		c.lifecycle.Unlock()
		if errors.Is(err, ledger.ErrWrongRootKey) {
			return SealStatus{}, wrongKeys
		}
		return SealStatus{}, err
	}
	err = c.open(ctx, rootKey, kr)
	c.lifecycle.Unlock()
	if err != nil {
		return SealStatus{}, err
	}
	return c.SealStatus(), nil
}

// ResetUnseal discards the shares given so far.
func (c *Core) ResetUnseal() SealStatus {
	c.lifecycle.Lock()
	c.resetProgressLocked()
	c.lifecycle.Unlock()
	return c.SealStatus()
}

func (c *Core) resetProgressLocked() {
	for _, sh := range c.progress.shares {
		clear(sh)
	}
	c.progress = unsealProgress{}
}

// Seal drops the views and zeroes the keys; every non-sys request answers 503 afterwards.
// In-flight requests finish first.
func (c *Core) Seal() {
	c.stopKeyCheck()
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.Lock()
	st := c.st
	c.st = nil
	c.mu.Unlock()
	if st == nil {
		return
	}
	c.dutiesOnSeal(st)
	c.log.SetKeyring(nil)
	st.close(c.logger)
	c.logger.Info("sealed")
	go c.haReconcile() // resign: a sealed node leaves the HA set
}

// KeyStatus is the body of sys/key-status.
type KeyStatus struct {
	Term        uint32    `json:"term"`
	InstallTime time.Time `json:"install_time"`
	Encryptions uint64    `json:"encryptions"`
}

// KeyStatus reports the current keyring term.
func (c *Core) KeyStatus() (KeyStatus, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return KeyStatus{}, ErrSealed
	}
	kr := c.st.keyring.Load()
	terms := kr.Terms()
	last := terms[len(terms)-1]
	return KeyStatus{Term: last.Term, InstallTime: last.Installed, Encryptions: kr.Encryptions()}, nil
}

// Rotate adds a new keyring term: new events are sealed under it, older ones still open.
func (c *Core) Rotate(ctx context.Context) (KeyStatus, error) {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.RLock()
	st := c.st
	c.mu.RUnlock()
	if st == nil {
		return KeyStatus{}, ErrSealed
	}
	st.keyMu.Lock() // a rekey must not commit between our wrap and our event
	defer st.keyMu.Unlock()
	if err := c.rootKeyCurrent(st); err != nil {
		return KeyStatus{}, err
	}
	next, err := st.keyring.Load().Rotate(time.Now())
	if err != nil {
		return KeyStatus{}, err
	}
	wrapped, err := next.Wrap(st.rootKey)
	if err != nil {
		return KeyStatus{}, err
	}
	payload, _ := json.Marshal(seal.RotatedPayload{Term: next.Term(), Keyring: wrapped, Rekeys: st.rootGen})
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: seal.KeyringRotated, Subject: ledger.SubjectFor("seal", "keyring"), Raw: true, Payload: payload}})
	if err != nil {
		return KeyStatus{}, fmt.Errorf("append rotation: %w", err)
	}
	if err := c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
		return KeyStatus{}, err
	}
	if c.sealView.State().Term != next.Term() {
		return KeyStatus{}, errors.New("rotate: a rekey on another node raced the rotation, which was ignored; seal this node and unseal it with the new keys, then rotate again")
	}
	st.keyring.Store(next)
	st.runner.SetKeyring(next)
	c.log.SetKeyring(next)
	// Backends built with the old keyring would keep sealing their own data under it.
	st.backendsMu.Lock()
	clear(st.backends)
	st.backendsMu.Unlock()
	c.logger.Info("keyring rotated", "term", next.Term())
	return c.KeyStatus()
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand unavailable")
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
