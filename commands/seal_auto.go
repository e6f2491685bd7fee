package commands

// Auto-seal, recovery keys, seal migration and escrow. The root key (which opens the keyring)
// is wrapped by an external key (autoseal.Wrapper); recovery keys are Shamir shares of a
// separate recovery key that authorises migration, generate-root and recovery-key rekey, and,
// when escrow was chosen at init, can also open the root key.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
	"github.com/ledger-secrets/ledger/ledger/shamir"
	"github.com/ledger-secrets/ledger/projections/seal"
)

// SealOptions configure the seal.
type SealOptions struct {
	// Wrapper is the enabled auto-seal; nil means the Shamir seal.
	Wrapper autoseal.Wrapper
	// Disabled is the old seal of a migration (its stanza says disabled = "true"); nil when
	// migrating from Shamir or not migrating.
	Disabled autoseal.Wrapper
	// CallTimeout bounds each call to the external key service (default 10s).
	CallTimeout time.Duration
	// RetryMin and RetryMax bound the backoff of auto-unseal retries (default 1s, 30s).
	RetryMin, RetryMax time.Duration
	// CheckInterval is how often an unsealed node proves it can still decrypt with the
	// external key (default 1h).
	CheckInterval time.Duration
}

// Errors of the auto-seal, mapped to 400 by httpapi.
var (
	// ErrNoRecoveryKey: the seal is Shamir, there are no recovery keys.
	ErrNoRecoveryKey = errors.New("this server uses the Shamir seal and has no recovery keys; use the unseal keys")
	// ErrSealMode: the request does not fit the seal state (recovery keys given to unseal an
	// auto-sealed node, -migrate without a pending migration, …). The message says what to do.
	ErrSealMode = errors.New("the seal state does not allow this request")
)

// modeError is an ErrSealMode whose message is only the advice.
type modeError struct{ msg string }

func (e *modeError) Error() string { return e.msg }
func (e *modeError) Unwrap() error { return ErrSealMode }

func sealModef(format string, args ...any) error {
	return &modeError{msg: fmt.Sprintf(format, args...)}
}

const recoveryCheckText = "ledger recovery key check v1"

var (
	adRecoveryCheck  = []byte("ledger recovery check v1")
	adRecoveryEscrow = []byte("ledger recovery escrow v1")
)

func sealWithKey(key, plaintext, ad []byte) ([]byte, error) {
	a, err := aeadsubtle.NewAESGCM(key)
	if err != nil {
		return nil, fmt.Errorf("recovery key: %w", err)
	}
	return a.Encrypt(plaintext, ad)
}

func openWithKey(key, ciphertext, ad []byte) ([]byte, error) {
	a, err := aeadsubtle.NewAESGCM(key)
	if err != nil {
		return nil, fmt.Errorf("recovery key: %w", err)
	}
	return a.Decrypt(ciphertext, ad)
}

// newRecovery builds the recovery record for key: the check blob and, with escrow, the root
// key sealed under the recovery key.
func newRecovery(key, rootKey []byte, shares, threshold int, escrow bool) (*seal.Recovery, error) {
	check, err := sealWithKey(key, []byte(recoveryCheckText), adRecoveryCheck)
	if err != nil {
		return nil, err
	}
	r := &seal.Recovery{Shares: shares, Threshold: threshold, Check: check}
	if escrow {
		if r.Escrow, err = sealWithKey(key, rootKey, adRecoveryEscrow); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// sealMode is what the log's seal and the configured seals make of this node.
type sealMode struct {
	logType string // the seal the log records
	target  string // the seal the config enables
	migrate bool   // a migration from logType to target is pending
	// mismatch, when set, says why the node cannot unseal with this config.
	mismatch string
}

func wrapperType(w autoseal.Wrapper) string {
	if w == nil {
		return autoseal.TypeShamir
	}
	return w.Type()
}

func (c *Core) mode(s seal.State) sealMode {
	m := sealMode{logType: s.SealType(), target: wrapperType(c.opts.Seal.Wrapper)}
	if !s.Initialized || m.logType == m.target {
		return m
	}
	disabled := c.opts.Seal.Disabled
	switch {
	case disabled != nil && disabled.Type() == m.logType:
		m.migrate = true
	case disabled == nil && m.logType == autoseal.TypeShamir:
		m.migrate = true // Vault's flow: Shamir → auto needs only the new stanza
	default:
		m.mismatch = fmt.Sprintf("the log is sealed by the %s seal but the config enables the %s seal; to migrate, keep "+
			"the old seal \"%s\" stanza with disabled = \"true\" beside the new one, restart, and run "+
			"`ledger operator unseal -migrate`", m.logType, m.target, m.logType)
	}
	return m
}

// SealType is the seal the log records: "shamir", "awskms", "transit" or "pkcs11". Before init
// it is the configured seal.
func (c *Core) SealType() string {
	s := c.sealView.State()
	if !s.Initialized {
		return wrapperType(c.opts.Seal.Wrapper)
	}
	return s.SealType()
}

// RecoverySharesConfig reports the recovery share counts; ok is false with the Shamir seal.
func (c *Core) RecoverySharesConfig() (shares, threshold int, ok bool) {
	s := c.sealView.State()
	if s.Recovery == nil {
		return 0, 0, false
	}
	return s.Recovery.Shares, s.Recovery.Threshold, true
}

// VerifyRecoveryShares reports whether shares reconstruct the recovery key, and returns it (the
// caller clears it). Errors wrap ErrNoRecoveryKey or ErrBadShare.
func (c *Core) VerifyRecoveryShares(shares [][]byte) ([]byte, error) {
	s := c.sealView.State()
	if s.Recovery == nil {
		return nil, ErrNoRecoveryKey
	}
	return verifyRecovery(s.Recovery, shares)
}

func verifyRecovery(r *seal.Recovery, shares [][]byte) ([]byte, error) {
	wrong := fmt.Errorf("the recovery keys given do not reconstruct the recovery key; start again with correct keys: %w", ErrBadShare)
	if len(shares) < r.Threshold {
		return nil, fmt.Errorf("%d recovery keys given, %d needed: %w", len(shares), r.Threshold, ErrBadShare)
	}
	key, err := shamir.Combine(shares)
	if err != nil {
		return nil, wrong
	}
	pt, err := openWithKey(key, r.Check, adRecoveryCheck)
	if err != nil || subtle.ConstantTimeCompare(pt, []byte(recoveryCheckText)) != 1 {
		clear(key)
		return nil, wrong
	}
	return key, nil
}

// ReplaceRecoveryKey installs a new recovery key (sys/rekey-recovery-key): new share counts,
// a new check blob and, when escrow is on, the root key re-escrowed under the new key.
func (c *Core) ReplaceRecoveryKey(ctx context.Context, newKey []byte, shares, threshold int) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.RLock()
	st := c.st
	c.mu.RUnlock()
	if st == nil {
		return ErrSealed
	}
	return c.replaceRecoveryKey(ctx, st, newKey, shares, threshold)
}

// replaceRecoveryKey is ReplaceRecoveryKey for a caller inside a request (holding c.mu for
// reading, so it must not take c.lifecycle); st.keyMu guards the root key it re-escrows.
func (c *Core) replaceRecoveryKey(ctx context.Context, st *unsealed, newKey []byte, shares, threshold int) error {
	s := c.sealView.State()
	if s.Recovery == nil {
		return ErrNoRecoveryKey
	}
	st.keyMu.Lock()
	defer st.keyMu.Unlock()
	r, err := newRecovery(newKey, st.rootKey, shares, threshold, len(s.Recovery.Escrow) > 0)
	if err != nil {
		return err
	}
	payload, _ := json.Marshal(seal.RecoveryRekeyedPayload{Recovery: *r})
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: seal.RecoveryRekeyed, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: payload}})
	if err != nil {
		return fmt.Errorf("append recovery rekey: %w; the old recovery keys stay in force", err)
	}
	return c.sealRunner.WaitFor(ctx, pos[0].Seq)
}

// initAuto is Init with an auto-seal: the root key is wrapped by the external key, the
// recovery key is split into recovery shares, and the node unseals at once.
func (c *Core) initAuto(ctx context.Context, req InitRequest) (*InitResult, error) {
	w := c.opts.Seal.Wrapper
	n, t := req.RecoveryShares, req.RecoveryThreshold
	if err := checkInitSplit("recovery", n, t); err != nil {
		return nil, err
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.Initialized() {
		return nil, ErrAlreadyInitialized
	}
	now := time.Now().UTC()
	rootKey, recKey := make([]byte, ledger.RootKeySize), make([]byte, ledger.RootKeySize)
	if _, err := rand.Read(rootKey); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	defer clear(rootKey)
	if _, err := rand.Read(recKey); err != nil {
		return nil, fmt.Errorf("recovery key: %w", err)
	}
	defer clear(recKey)
	wrappedRoot, err := c.wrapRoot(ctx, w, rootKey)
	if err != nil {
		return nil, err
	}
	kr, err := ledger.NewKeyring(now)
	if err != nil {
		return nil, err
	}
	wrapped, err := kr.Wrap(rootKey)
	if err != nil {
		return nil, err
	}
	rec, err := newRecovery(recKey, rootKey, n, t, req.RecoveryEscrow)
	if err != nil {
		return nil, err
	}
	shares, err := shamir.Split(recKey, n, t)
	if err != nil {
		return nil, fmt.Errorf("split recovery key: %w", err)
	}
	rootToken, clusterID, err := c.commitInit(ctx, seal.InitializedPayload{Shares: n, Threshold: t, Keyring: wrapped, Time: now,
		AutoSeal: seal.AutoSeal{Type: w.Type(), KeyID: w.KeyID(), WrappedRoot: wrappedRoot, Recovery: rec}}, kr, req.RootToken)
	if err != nil {
		return nil, err
	}
	c.logger.Info("initialized with an auto-seal", "seal", w.Type(), "key", w.KeyID(),
		"recovery_shares", n, "recovery_threshold", t, "recovery_escrow", req.RecoveryEscrow)
	if err := c.open(ctx, append([]byte(nil), rootKey...), kr); err != nil {
		return nil, fmt.Errorf("unseal after init: %w", err)
	}
	c.afterAutoUnseal()
	return &InitResult{RecoveryKeys: shares, RootToken: rootToken, ClusterID: clusterID, Shares: n, Threshold: t,
		RecoveryEscrow: req.RecoveryEscrow}, nil
}

// wrapRoot encrypts the root key with w and proves the round trip at once: a key that
// encrypts but cannot decrypt (a policy that allows only kms:Encrypt) would otherwise be found
// at the first restart, too late.
func (c *Core) wrapRoot(ctx context.Context, w autoseal.Wrapper, rootKey []byte) ([]byte, error) {
	cctx, cancel := c.callCtx(ctx)
	wrapped, err := w.Encrypt(cctx, rootKey)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("wrap the root key with the %s seal: %w", w.Type(), sealErr(err))
	}
	cctx, cancel = c.callCtx(ctx)
	back, err := w.Decrypt(cctx, wrapped)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("decrypt with the %s seal right after encrypting (check the key's decrypt permission): %w", w.Type(), sealErr(err))
	}
	ok := subtle.ConstantTimeCompare(back, rootKey) == 1
	clear(back)
	if !ok {
		return nil, sealModef("the %s seal returned other bytes than it encrypted", w.Type())
	}
	return wrapped, nil
}

func (c *Core) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.opts.Seal.CallTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

// sealErr keeps the wrapper's message and marks it as a seal-mode problem for the HTTP edge
// when it is the operator's to fix.
func sealErr(err error) error {
	if errors.Is(err, autoseal.ErrUnreachable) {
		return err // 503: the service may come back
	}
	return &modeError{msg: err.Error()}
}

// autoState is the per-node state of the auto-seal: the last unseal error and the last proof
// that the external key still decrypts.
type autoState struct {
	mu        sync.Mutex
	lastErr   string
	keyCheck  keyCheck
	checkStop context.CancelFunc
}

type keyCheck struct {
	checked time.Time
	ok      bool
	state   string
	err     string
	deleted time.Time
}

// AutoUnseal unseals the node with the configured auto-seal: it waits for init, then tries,
// retrying with backoff while the key service is unreachable or the key unusable, until it
// succeeds, ctx ends, or an error only an operator can fix. Each try is bounded by
// CallTimeout. It returns nil once unsealed (or when there is nothing to do).
func (c *Core) AutoUnseal(ctx context.Context) error {
	w := c.opts.Seal.Wrapper
	if w == nil {
		return nil
	}
	backoff := c.opts.Seal.RetryMin
	if backoff <= 0 {
		backoff = time.Second
	}
	maxBackoff := c.opts.Seal.RetryMax
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	for {
		s := c.sealView.State()
		if !s.Initialized {
			if err := wait(250 * time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if c.Unsealed() {
			return nil
		}
		m := c.mode(s)
		switch {
		case m.mismatch != "":
			c.setAutoErr(m.mismatch)
			c.logger.Error("auto-unseal impossible; staying sealed", "seal", m.target, "err", m.mismatch)
			return sealModef("%s", m.mismatch)
		case m.migrate:
			keys := "recovery keys"
			if m.logType == autoseal.TypeShamir {
				keys = "unseal keys"
			}
			msg := fmt.Sprintf("seal migration from %s to %s pending: run `ledger operator unseal -migrate` with the %s", m.logType, m.target, keys)
			c.setAutoErr(msg)
			c.logger.Warn(msg)
			return nil
		}
		err := c.autoUnsealOnce(ctx, s)
		if err == nil {
			return nil
		}
		c.setAutoErr(err.Error())
		if !autoseal.Retryable(err) && !errors.Is(err, errRaced) {
			c.logger.Error("auto-unseal failed; staying sealed and not retrying: fix the seal configuration or the key, then restart",
				"seal", w.Type(), "key", w.KeyID(), "err", err)
			return err
		}
		c.logger.Warn("auto-unseal failed; staying sealed and retrying", "seal", w.Type(), "key", w.KeyID(), "retry_in", backoff.String(), "err", err)
		if err := wait(backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

var errRaced = errors.New("seal state changed while unsealing")

func (c *Core) setAutoErr(msg string) {
	c.auto.mu.Lock()
	c.auto.lastErr = msg
	c.auto.mu.Unlock()
}

// AutoUnsealError is the last reason auto-unseal did not succeed ("" when it did or never ran).
func (c *Core) AutoUnsealError() string {
	c.auto.mu.Lock()
	defer c.auto.mu.Unlock()
	return c.auto.lastErr
}

func (c *Core) autoUnsealOnce(ctx context.Context, s seal.State) error {
	w := c.opts.Seal.Wrapper
	start := time.Now()
	cctx, cancel := c.callCtx(ctx)
	rootKey, err := w.Decrypt(cctx, s.WrappedRoot)
	cancel()
	if err != nil {
		return err
	}
	kr, err := ledger.UnwrapKeyring(rootKey, s.Keyring)
	if err != nil {
		clear(rootKey)
		return fmt.Errorf("the %s seal's key decrypted the root key, but it does not open the keyring: %w", w.Type(), err)
	}
	c.lifecycle.Lock()
	if c.Unsealed() {
		c.lifecycle.Unlock()
		clear(rootKey)
		return nil
	}
	if now := c.sealView.State(); now.SealType() != s.SealType() || string(now.Keyring) != string(s.Keyring) {
		c.lifecycle.Unlock()
		clear(rootKey)
		return errRaced
	}
	err = c.open(ctx, rootKey, kr)
	c.lifecycle.Unlock()
	if err != nil {
		return err
	}
	c.setAutoErr("")
	c.logger.Info("unsealed with the auto-seal", "seal", w.Type(), "key", w.KeyID(), "took", time.Since(start).String())
	c.afterAutoUnseal()
	return nil
}

// afterAutoUnseal starts the periodic proof that the external key still decrypts.
func (c *Core) afterAutoUnseal() {
	if c.opts.Seal.Wrapper == nil {
		return
	}
	every := c.opts.Seal.CheckInterval
	if every <= 0 {
		every = time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.auto.mu.Lock()
	if c.auto.checkStop != nil {
		c.auto.checkStop()
	}
	c.auto.checkStop = cancel
	c.auto.mu.Unlock()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			c.CheckSealKey(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (c *Core) stopKeyCheck() {
	c.auto.mu.Lock()
	if c.auto.checkStop != nil {
		c.auto.checkStop()
		c.auto.checkStop = nil
	}
	c.auto.mu.Unlock()
}

// CheckSealKey proves the auto-seal's key still decrypts the stored root key and asks the
// service for the key's state; a failure or a key disabled or scheduled for deletion is logged
// loudly and shown in sys/health and sys/metrics. It reports whether the key is healthy.
func (c *Core) CheckSealKey(ctx context.Context) bool {
	w := c.opts.Seal.Wrapper
	s := c.sealView.State()
	if w == nil || s.SealType() != w.Type() {
		return true
	}
	kc := keyCheck{checked: time.Now().UTC(), ok: true}
	cctx, cancel := c.callCtx(ctx)
	pt, err := w.Decrypt(cctx, s.WrappedRoot)
	cancel()
	if err != nil {
		kc.ok, kc.err = false, err.Error()
	} else {
		c.mu.RLock()
		if c.st != nil && subtle.ConstantTimeCompare(pt, c.st.rootKey) != 1 {
			kc.ok, kc.err = false, "the key decrypts the stored root key to other bytes than the root key in use"
		}
		c.mu.RUnlock()
		clear(pt)
	}
	if ks, ok := w.(autoseal.KeyStater); ok {
		cctx, cancel := c.callCtx(ctx)
		st, err := ks.KeyState(cctx)
		cancel()
		switch {
		case err != nil && kc.ok:
			kc.ok, kc.err = false, err.Error()
		case err == nil:
			kc.state, kc.deleted = st.State, st.DeletionDate
			if !st.Usable() {
				kc.ok = false
				if kc.err == "" {
					kc.err = "key state is " + st.State
				}
			}
		}
	}
	c.auto.mu.Lock()
	c.auto.keyCheck = kc
	c.auto.mu.Unlock()
	if !kc.ok {
		escrow := "recovery escrow is OFF: if this key is deleted, every secret is lost; migrate to another seal now"
		if s.Recovery != nil && len(s.Recovery.Escrow) > 0 {
			escrow = "recovery escrow is on: the recovery keys can still unseal (`ledger operator unseal -recovery`); migrate to another seal"
		}
		args := []any{"seal", w.Type(), "key", w.KeyID(), "err", kc.err, "advice", escrow}
		if !kc.deleted.IsZero() {
			args = append(args, "deletion_date", kc.deleted.Format(time.RFC3339))
		}
		c.logger.Error("SEAL KEY UNHEALTHY: the auto-seal key cannot be proven to decrypt the root key", args...)
	}
	return kc.ok
}

// SealKeyHealth is the last key check, for sys/health and sys/metrics. checked is zero when
// no check ran (Shamir seal, or sealed).
func (c *Core) SealKeyHealth() (checked time.Time, ok bool, state, errMsg string) {
	c.auto.mu.Lock()
	defer c.auto.mu.Unlock()
	k := c.auto.keyCheck
	return k.checked, k.ok, k.state, k.err
}

// unsealKind says what the shares being collected are for.
type unsealKind int

const (
	kindUnseal   unsealKind = iota // Shamir unseal keys
	kindMigrate                    // operator unseal -migrate
	kindRecovery                   // operator unseal -recovery (escrow)
)

// UnsealRequest is one share given to sys/unseal with Vault's migrate flag and Ledger's
// recovery flag.
type UnsealRequest struct {
	Share    []byte
	Migrate  bool
	Recovery bool
}

// UnsealWith adds one share for an unseal, a seal migration or an escrow recovery.
func (c *Core) UnsealWith(ctx context.Context, req UnsealRequest) (SealStatus, error) {
	s := c.sealView.State()
	if !s.Initialized {
		return SealStatus{}, ErrNotInitialized
	}
	m := c.mode(s)
	kind := kindUnseal
	if c.Unsealed() && !req.Migrate {
		return c.SealStatus(), nil
	}
	if m.mismatch != "" {
		return SealStatus{}, sealModef("%s", m.mismatch)
	}
	switch {
	case req.Migrate && req.Recovery:
		return SealStatus{}, sealModef("migrate and recovery cannot be combined; a migration from a lost key uses escrow by itself")
	case req.Migrate:
		if !m.migrate {
			return SealStatus{}, sealModef("no seal migration is pending: the log is sealed by the %s seal and the config enables the %s seal; "+
				"to migrate, put the old seal stanza with disabled = \"true\" beside the new one (or, from Shamir, just add the new stanza) and restart",
				m.logType, m.target)
		}
		kind = kindMigrate
	case req.Recovery:
		if s.Recovery == nil {
			return SealStatus{}, ErrNoRecoveryKey
		}
		if len(s.Recovery.Escrow) == 0 {
			return SealStatus{}, sealModef("recovery escrow was not enabled at init: the recovery keys cannot open the root key, only the %s key can", m.logType)
		}
		kind = kindRecovery
	case m.migrate:
		return SealStatus{}, sealModef("a seal migration from %s to %s is pending: give the keys with `ledger operator unseal -migrate` (migrate=true)", m.logType, m.target)
	case m.logType != autoseal.TypeShamir:
		return SealStatus{}, sealModef("this server uses the %s auto-seal and unseals itself; recovery keys do not unseal it "+
			"(they authorise generate-root, recovery-key rekey and seal migration; with escrow on, `ledger operator unseal -recovery` opens it when the key is lost)",
			m.logType)
	}
	if kind == kindUnseal {
		return c.Unseal(ctx, req.Share)
	}
	if c.Unsealed() {
		if kind == kindMigrate {
			return SealStatus{}, sealModef("seal the node before migrating (`ledger operator seal`)")
		}
		return c.SealStatus(), nil
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if len(req.Share) != ledger.RootKeySize+1 {
		return SealStatus{}, fmt.Errorf("key is %d bytes, want %d: %w", len(req.Share), ledger.RootKeySize+1, ErrBadShare)
	}
	if c.progress.kind != kind {
		c.resetProgressLocked()
		c.progress.kind = kind
	}
	for _, have := range c.progress.shares {
		if subtle.ConstantTimeCompare(have, req.Share) == 1 {
			return c.sealStatusLocked(), nil
		}
	}
	if c.progress.nonce == "" {
		c.progress.nonce = newUUID()
	}
	c.progress.shares = append(c.progress.shares, append([]byte(nil), req.Share...))
	if len(c.progress.shares) < s.Threshold {
		return c.sealStatusLocked(), nil
	}
	shares := c.progress.shares
	c.progress = unsealProgress{}
	defer func() {
		for _, sh := range shares {
			clear(sh)
		}
	}()
	var err error
	if kind == kindMigrate {
		err = c.migrateLocked(ctx, s, m, shares)
	} else {
		err = c.recoverLocked(ctx, s, shares)
	}
	if err != nil {
		return SealStatus{}, err
	}
	return c.sealStatusLocked(), nil
}

// recoverLocked opens the node with the escrowed root key.
func (c *Core) recoverLocked(ctx context.Context, s seal.State, shares [][]byte) error {
	recKey, err := verifyRecovery(s.Recovery, shares)
	if err != nil {
		return err
	}
	rootKey, err := openWithKey(recKey, s.Recovery.Escrow, adRecoveryEscrow)
	clear(recKey)
	if err != nil {
		return fmt.Errorf("the escrowed root key does not open: %w", ErrBadShare)
	}
	kr, err := ledger.UnwrapKeyring(rootKey, s.Keyring)
	if err != nil {
		clear(rootKey)
		return fmt.Errorf("the escrowed root key does not open the keyring: %w", err)
	}
	if err := c.open(ctx, rootKey, kr); err != nil {
		return err
	}
	now := time.Now().UTC()
	payload, _ := json.Marshal(map[string]any{"seal": s.SealType(), "key_id": s.KeyID, "time": now})
	events := []ledger.Event{{Type: seal.EscrowUsed, Subject: ledger.SubjectFor("seal", "config"), Payload: payload}}
	// The audit trail gets a record of its own: sys/unseal is otherwise not audited, but
	// opening the data without the seal's key must be visible to whoever reviews it.
	if ev, err := (audit.Record{Time: now, Request: &audit.Request{ID: newUUID(), Operation: "update", Path: "sys/unseal",
		Namespace: &audit.Namespace{ID: "root"}, Data: map[string]any{"recovery": true}},
		Response: &audit.Response{Data: map[string]any{"recovery_escrow_used": true, "sealed": false}}}).CompactEvent(); err == nil {
		events = append(events, ev)
	}
	if _, err := c.log.Append(ctx, events); err != nil {
		c.logger.Error("recording the escrow unseal in the log and audit trail", "err", err)
	}
	c.logger.Warn("UNSEALED WITH THE RECOVERY ESCROW: the auto-seal key was not used; migrate to a working seal now",
		"seal", s.SealType(), "key", s.KeyID)
	return nil
}

// rootFromOldSeal decrypts the root key with the seal being migrated from, falling back to the
// escrow when that seal's key is gone.
func (c *Core) rootFromOldSeal(ctx context.Context, s seal.State, recKey []byte) ([]byte, error) {
	old := c.opts.Seal.Disabled
	if old == nil {
		return nil, sealModef("the old %s seal's stanza is missing", s.SealType())
	}
	cctx, cancel := c.callCtx(ctx)
	rootKey, err := old.Decrypt(cctx, s.WrappedRoot)
	cancel()
	if err == nil {
		return rootKey, nil
	}
	if s.Recovery == nil || len(s.Recovery.Escrow) == 0 {
		return nil, fmt.Errorf("decrypt the root key with the old %s seal: %w", old.Type(), err)
	}
	c.logger.Warn("the old seal cannot decrypt the root key; using the recovery escrow for the migration", "seal", old.Type(), "err", err)
	rootKey, eerr := openWithKey(recKey, s.Recovery.Escrow, adRecoveryEscrow)
	if eerr != nil {
		return nil, fmt.Errorf("decrypt the root key with the old %s seal: %w", old.Type(), err)
	}
	return rootKey, nil
}

// migrateLocked moves the seal from m.logType to m.target in one event: either the event is
// in the log (the new seal is in force) or it is not (the old one still is). Nothing is
// changed in the external systems, so an interrupted migration needs only to be run again.
func (c *Core) migrateLocked(ctx context.Context, s seal.State, m sealMode, shares [][]byte) error {
	var rootKey, recKey []byte
	var err error
	if m.logType == autoseal.TypeShamir {
		// The unseal keys reconstruct the root key; they become the recovery keys, as in Vault.
		if rootKey, err = shamir.Combine(shares); err != nil {
			return fmt.Errorf("the unseal keys given do not reconstruct the root key; start again: %w", ErrBadShare)
		}
		recKey = append([]byte(nil), rootKey...)
	} else {
		if recKey, err = verifyRecovery(s.Recovery, shares); err != nil {
			return err
		}
		if rootKey, err = c.rootFromOldSeal(ctx, s, recKey); err != nil {
			clear(recKey)
			return err
		}
	}
	defer clear(recKey)
	kr, err := ledger.UnwrapKeyring(rootKey, s.Keyring)
	if err != nil {
		clear(rootKey)
		if errors.Is(err, ledger.ErrWrongRootKey) {
			return fmt.Errorf("the keys given do not open the keyring; start again: %w", ErrBadShare)
		}
		return err
	}
	p := seal.MigratedPayload{From: m.logType, Time: time.Now().UTC()}
	openKey := rootKey
	if m.target == autoseal.TypeShamir {
		// The recovery keys become the unseal keys: the keyring is rewrapped under the
		// recovery key, which is the new root key.
		if p.Keyring, err = kr.Wrap(recKey); err != nil {
			clear(rootKey)
			return err
		}
		p.Shares, p.Threshold = s.Threshold, s.Threshold
		if s.Recovery != nil {
			p.Shares, p.Threshold = s.Recovery.Shares, s.Recovery.Threshold
		}
		clear(rootKey)
		openKey = append([]byte(nil), recKey...)
	} else {
		w := c.opts.Seal.Wrapper
		wrappedRoot, err := c.wrapRoot(ctx, w, rootKey)
		if err != nil {
			clear(rootKey)
			return err
		}
		rec := s.Recovery
		if m.logType == autoseal.TypeShamir {
			// From Shamir the recovery key is the old root key, so the escrow is implicit:
			// the log keeps the keyring wrapped under it. Say so instead of hiding it.
			if rec, err = newRecovery(recKey, rootKey, s.Shares, s.Threshold, true); err != nil {
				clear(rootKey)
				return err
			}
		}
		p.AutoSeal = seal.AutoSeal{Type: w.Type(), KeyID: w.KeyID(), WrappedRoot: wrappedRoot, Recovery: rec}
		p.Shares, p.Threshold = rec.Shares, rec.Threshold
	}
	payload, _ := json.Marshal(p)
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: seal.Migrated, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: payload}})
	if err != nil {
		clear(openKey)
		return fmt.Errorf("append seal migration (nothing changed; run the migration again): %w", err)
	}
	if err := c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
		clear(openKey)
		return err
	}
	if now := c.sealView.State(); now.SealType() != m.target {
		clear(openKey)
		return sealModef("another node migrated the seal first")
	}
	c.logger.Info("seal migrated", "from", m.logType, "to", m.target)
	if err := c.open(ctx, openKey, kr); err != nil {
		return err
	}
	if m.target != autoseal.TypeShamir {
		c.afterAutoUnseal()
	}
	return nil
}

// Close releases the seals' connections and sessions.
func (o SealOptions) Close() {
	for _, w := range []autoseal.Wrapper{o.Wrapper, o.Disabled} {
		if w != nil {
			_ = w.Close()
		}
	}
}
