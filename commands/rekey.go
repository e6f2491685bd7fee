package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/shamir"
	"github.com/ledger-secrets/ledger/projections/seal"
)

// The key-holder ceremonies (sys/rekey, sys/generate-root) collect shares one request at a
// time. Like Vault, an attempt lives in the memory of the node that started it: it is lost when
// the node seals or restarts (the shares given so far are zeroed), and another node knows
// nothing of it. Only the outcome — the new split in force, the new root token — is an event.

// ceremonies is the per-node state of the attempts, dropped (and zeroed) with the unsealed
// state.
type ceremonies struct {
	mu            sync.Mutex
	rekey         *rekeyAttempt // sys/rekey: the unseal keys
	recoveryRekey *rekeyAttempt // sys/rekey-recovery-key: the recovery keys of an auto-seal
	root          *rootAttempt
}

// slot is the attempt of a rekey target.
func (cs *ceremonies) slot(recovery bool) **rekeyAttempt {
	if recovery {
		return &cs.recoveryRekey
	}
	return &cs.rekey
}

// clear zeroes every share and key held and forgets the attempts.
func (cs *ceremonies) clear() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.rekey.wipe()
	cs.recoveryRekey.wipe()
	cs.root.wipe()
	cs.rekey, cs.recoveryRekey, cs.root = nil, nil, nil
}

type rekeyAttempt struct {
	recovery          bool // the recovery keys, not the unseal keys
	nonce             string
	shares, threshold int
	pgp               []pgpKey
	backup            bool
	requireVerify     bool
	progress          [][]byte // shares of the current root key given so far

	// Verification phase (require_verification): the new root key exists but is not in force
	// until a threshold of the new shares reconstructs it.
	newRoot        []byte
	newKeys        [][]byte // the keys as handed out (PGP ciphertexts when pgp_keys), for the backup
	verifyNonce    string
	verifyProgress [][]byte
}

func (a *rekeyAttempt) wipe() {
	if a == nil {
		return
	}
	wipeAll(a.progress)
	wipeAll(a.verifyProgress)
	clear(a.newRoot)
	a.progress, a.verifyProgress, a.newRoot = nil, nil, nil
}

func wipeAll(shares [][]byte) {
	for _, s := range shares {
		clear(s)
	}
}

// Errors of the ceremonies (all 400s: the caller can fix them).
var (
	errNoVerification = engines.BadRequest("no rekey verification in progress")
	errNoRecoveryKeys = engines.BadRequest("this server uses the Shamir seal and has no recovery keys; rekey its unseal keys with sys/rekey (ledger operator rekey without -target=recovery)")
)

// RekeyStatus is the body of GET sys/rekey/init, and of sys/rekey/update until the threshold.
type RekeyStatus struct {
	Nonce                string   `json:"nonce"`
	Started              bool     `json:"started"`
	T                    int      `json:"t"`
	N                    int      `json:"n"`
	Progress             int      `json:"progress"`
	Required             int      `json:"required"`
	PGPFingerprints      []string `json:"pgp_fingerprints"`
	Backup               bool     `json:"backup"`
	VerificationRequired bool     `json:"verification_required"`
	VerificationNonce    string   `json:"verification_nonce,omitempty"`
}

// RekeyResult is the body of the sys/rekey/update that reached the threshold: the new keys,
// shown once.
type RekeyResult struct {
	Nonce                string   `json:"nonce"`
	Complete             bool     `json:"complete"`
	Keys                 []string `json:"keys"`
	KeysB64              []string `json:"keys_base64"`
	PGPFingerprints      []string `json:"pgp_fingerprints"`
	Backup               bool     `json:"backup"`
	VerificationRequired bool     `json:"verification_required"`
	VerificationNonce    string   `json:"verification_nonce,omitempty"`
}

// RekeyVerifyStatus is the body of GET sys/rekey/verify.
type RekeyVerifyStatus struct {
	Nonce    string `json:"nonce"`
	Started  bool   `json:"started"`
	T        int    `json:"t"`
	N        int    `json:"n"`
	Progress int    `json:"progress"`
}

// rekeyBackup is what sys/rekey/backup returns: the PGP-encrypted new keys by fingerprint.
type rekeyBackup struct {
	Nonce   string              `json:"nonce"`
	Keys    map[string][]string `json:"keys"`
	KeysB64 map[string][]string `json:"keys_base64"`
}

// adRekeyBackup binds the sealed backup to its role.
var adRekeyBackup = []byte("ledger rekey backup v1")

// ceremonyRoutes describe sys/rekey*, sys/generate-root/* for help and OpenAPI.
func ceremonyRoutes() []engines.Route {
	key := []engines.Field{{Name: "key", Type: "string", Description: "One current key share, hex or base64."},
		{Name: "nonce", Type: "string", Description: "The nonce of the attempt."}}
	initFields := []engines.Field{{Name: "secret_shares", Type: "int", Description: "Number of new key shares."},
		{Name: "secret_threshold", Type: "int", Description: "Number of new shares needed."},
		{Name: "pgp_keys", Type: "array", Description: "Base64 PGP public keys, one per new share, to encrypt them to."},
		{Name: "backup", Type: "bool", Description: "Keep the PGP-encrypted new keys on the server."},
		{Name: "require_verification", Type: "bool", Description: "Put the new keys in force only once a threshold of them is given back."}}
	var rs []engines.Route
	for _, base := range []string{"rekey", "rekey-recovery-key"} {
		rs = append(rs,
			engines.Route{Pattern: base + "/init", Operations: opsRUD, Summary: "Read, start or cancel a rekey attempt.", Fields: initFields},
			engines.Route{Pattern: base + "/update", Operations: opsU, Summary: "Give one current key to the rekey attempt.", Fields: key},
			engines.Route{Pattern: base + "/verify", Operations: opsRUD, Summary: "Read, advance or restart the verification of the new keys.", Fields: key})
	}
	return append(rs,
		engines.Route{Pattern: "rekey/backup", Operations: []engines.Operation{engines.OpRead, engines.OpDelete}, Summary: "Read or delete the PGP-encrypted backup of the last rekey's keys."},
		engines.Route{Pattern: "generate-root/attempt", Operations: opsRUD, Summary: "Read, start or cancel a root token generation.",
			Fields: []engines.Field{{Name: "otp", Type: "string", Description: "A one-time password of otp_length characters (omit: the server makes one)."},
				{Name: "pgp_key", Type: "string", Description: "A base64 PGP public key to encrypt the token to."}}},
		engines.Route{Pattern: "generate-root/update", Operations: opsU, Summary: "Give one key to the root token generation.", Fields: key})
}

func raw(v any) *engines.Response {
	return &engines.Response{Data: map[string]any{RawBody: v, RawContentType: "application/json", RawStatusCode: 200}}
}

func noContent() *engines.Response {
	return &engines.Response{Data: map[string]any{RawBody: nil, RawStatusCode: 204}}
}

// rekeyBase is the API path of a rekey target, for messages.
func rekeyBase(recovery bool) string {
	if recovery {
		return "sys/rekey-recovery-key"
	}
	return "sys/rekey"
}

// rekeyPaths serves sys/rekey/* and sys/rekey-recovery-key/*.
func (s *sysBackend) rekeyPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	recovery := strings.HasPrefix(p, "rekey-recovery-key")
	rest := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(p, "rekey-recovery-key"), "rekey"), "/")
	switch typ := s.c.SealType(); {
	case rest == "backup" || rest == "recovery-key-backup":
	case recovery && typ == "shamir":
		return nil, errNoRecoveryKeys
	case !recovery && typ != "shamir":
		// The root key of an auto-sealed server is wrapped by the seal, not split: there are
		// no unseal keys to rekey (Vault's stored shares are not supported).
		return nil, engines.BadRequest("this server uses the %s auto-seal: it has no unseal keys to rekey; rekey the recovery keys with sys/rekey-recovery-key (ledger operator rekey -target=recovery)", typ)
	}
	cs := s.st.ceremony
	slot := cs.slot(recovery)
	switch {
	case rest == "init" && req.Op == engines.OpRead:
		return raw(s.rekeyStatus(recovery)), nil
	case rest == "init" && isWrite(req.Op):
		return s.rekeyInit(req, recovery)
	case rest == "init" && req.Op == engines.OpDelete:
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if a := *slot; a != nil {
			if n, _ := req.Data["nonce"].(string); n != "" && subtle.ConstantTimeCompare([]byte(n), []byte(a.nonce)) != 1 {
				return nil, engines.BadRequest("incorrect nonce: the rekey in progress has another one; nothing was cancelled")
			}
			a.wipe()
			*slot = nil
			s.c.logger.Info("rekey cancelled", "recovery", recovery)
		}
		return noContent(), nil
	case rest == "update" && isWrite(req.Op):
		return s.rekeyUpdate(ctx, req, recovery)
	case rest == "verify" && req.Op == engines.OpRead:
		cs.mu.Lock()
		defer cs.mu.Unlock()
		a := *slot
		if a == nil || a.verifyNonce == "" {
			return nil, errNoVerification
		}
		return raw(RekeyVerifyStatus{Nonce: a.verifyNonce, Started: true, T: a.threshold, N: a.shares, Progress: len(a.verifyProgress)}), nil
	case rest == "verify" && isWrite(req.Op):
		return s.rekeyVerify(ctx, req, recovery)
	case rest == "verify" && req.Op == engines.OpDelete:
		// Restarts the verification only: the progress and its nonce; the new keys stay.
		cs.mu.Lock()
		defer cs.mu.Unlock()
		a := *slot
		if a == nil || a.verifyNonce == "" {
			return nil, errNoVerification
		}
		wipeAll(a.verifyProgress)
		a.verifyProgress, a.verifyNonce = nil, newUUID()
		return raw(RekeyVerifyStatus{Nonce: a.verifyNonce, Started: true, T: a.threshold, N: a.shares}), nil
	case rest == "backup" && req.Op == engines.OpRead:
		return s.rekeyBackupRead()
	case rest == "backup" && req.Op == engines.OpDelete:
		if len(s.c.sealView.State().RekeyBackup) == 0 {
			return noContent(), nil
		}
		pos, err := s.c.log.Append(ctx, []ledger.Event{{Type: seal.RekeyBackupDeleted, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: []byte("{}"), Request: req.ID}})
		if err != nil {
			return nil, fmt.Errorf("append rekey backup deletion: %w", err)
		}
		if err := s.c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
			return nil, err
		}
		return noContent(), nil
	case rest == "recovery-key-backup":
		return nil, engines.Errorf(engines.ErrNotFound, "no backed-up recovery keys: Ledger does not back up recovery keys (rekey them with pgp_keys and keep the ciphertexts)")
	case rest == "init" || rest == "update" || rest == "verify" || rest == "backup":
		return nil, engines.ErrUnsupported
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/"+p)
}

// required is how many current keys a rekey or generate-root needs: the unseal threshold, or
// the recovery threshold.
func (c *Core) required(recovery bool) int {
	if recovery {
		_, t, _ := c.RecoverySharesConfig()
		return t
	}
	return c.sealView.State().Threshold
}

func (s *sysBackend) rekeyStatus(recovery bool) RekeyStatus {
	cs := s.st.ceremony
	cs.mu.Lock()
	defer cs.mu.Unlock()
	st := RekeyStatus{Required: s.c.required(recovery)}
	if a := *cs.slot(recovery); a != nil {
		st.Nonce, st.Started, st.T, st.N, st.Progress = a.nonce, true, a.threshold, a.shares, len(a.progress)
		st.PGPFingerprints, st.Backup, st.VerificationRequired = fingerprints(a.pgp), a.backup, a.requireVerify
		st.VerificationNonce = a.verifyNonce
	}
	return st
}

// checkSplit validates a new split the way init does.
func checkSplit(n, t int) error {
	switch {
	case n < 1 || n > shamir.MaxParts:
		return engines.BadRequest("secret_shares must be between 1 and %d, got %d", shamir.MaxParts, n)
	case t < 1:
		return engines.BadRequest("secret_threshold must be at least 1, got %d", t)
	case t > n:
		return engines.BadRequest("secret_threshold (%d) cannot be greater than secret_shares (%d)", t, n)
	case t == 1 && n > 1:
		return engines.BadRequest("secret_threshold of 1 with %d shares would let any one holder unseal alone; use a threshold of at least 2, or 1 share", n)
	}
	return nil
}

func (s *sysBackend) rekeyInit(req *engines.Request, recovery bool) (*engines.Response, error) {
	d := req.Data
	if !engines.Has(d, "secret_shares") || !engines.Has(d, "secret_threshold") {
		return nil, engines.BadRequest("secret_shares and secret_threshold are required: how many new keys, and how many of them unseal")
	}
	n, err := engines.Int(d, "secret_shares", 0)
	if err != nil {
		return nil, err
	}
	t, err := engines.Int(d, "secret_threshold", 0)
	if err != nil {
		return nil, err
	}
	if err := checkSplit(n, t); err != nil {
		return nil, err
	}
	if stored, err := engines.Int(d, "stored_shares", 0); err != nil {
		return nil, err
	} else if stored > 0 {
		return nil, engines.BadRequest("stored_shares is not supported: Ledger stores no key shares")
	}
	keys, err := engines.Strings(d, "pgp_keys")
	if err != nil {
		return nil, err
	}
	backupKey := "backup"
	if !engines.Has(d, backupKey) && engines.Has(d, "Backup") {
		// The official Go client sends its Backup field untagged; Vault's decoder matches
		// JSON names case-insensitively, so it counts there.
		backupKey = "Backup"
	}
	backup, err := engines.Bool(d, backupKey, false)
	if err != nil {
		return nil, err
	}
	verify, err := engines.Bool(d, "require_verification", false)
	if err != nil {
		return nil, err
	}
	if backup && len(keys) == 0 {
		return nil, engines.BadRequest("cannot request a backup of the new keys without providing PGP keys for encryption (pgp_keys)")
	}
	if backup && recovery {
		return nil, engines.BadRequest("backup is not supported for recovery keys: hand them out encrypted with pgp_keys and keep the ciphertexts")
	}
	pgp, err := parsePGPKeys(keys, n)
	if err != nil {
		return nil, err
	}
	cs := s.st.ceremony
	cs.mu.Lock()
	slot := cs.slot(recovery)
	if *slot != nil {
		cs.mu.Unlock()
		return nil, engines.BadRequest("rekey already in progress; finish it, or cancel it with DELETE %s/init (ledger operator rekey -cancel)", rekeyBase(recovery))
	}
	*slot = &rekeyAttempt{recovery: recovery, nonce: newUUID(), shares: n, threshold: t, pgp: pgp, backup: backup, requireVerify: verify}
	cs.mu.Unlock()
	s.c.logger.Info("rekey started", "recovery", recovery, "shares", n, "threshold", t, "pgp", len(pgp) > 0, "backup", backup, "verify", verify)
	return raw(s.rekeyStatus(recovery)), nil
}

// shareAndNonce reads {key, nonce}; the key is never echoed in an error.
func shareAndNonce(d map[string]any) ([]byte, string, error) {
	key, err := engines.String(d, "key", "")
	if err != nil {
		return nil, "", engines.BadRequest("'key' must be a string")
	}
	nonce, err := engines.String(d, "nonce", "")
	if err != nil {
		return nil, "", err
	}
	if key == "" {
		return nil, "", engines.BadRequest("'key' must be specified in request body as JSON")
	}
	if nonce == "" {
		return nil, "", engines.BadRequest("'nonce' must be specified: the nonce of the attempt this key is for (see its status)")
	}
	share, err := DecodeShare(key)
	if err != nil {
		return nil, "", engines.BadRequest("'key' must be a valid hex or base64 string")
	}
	if len(share) != ledger.RootKeySize+1 {
		clear(share)
		return nil, "", engines.BadRequest("'key' is %d bytes, want %d: not an unseal key of this server", len(share), ledger.RootKeySize+1)
	}
	return share, nonce, nil
}

func sameNonce(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// quorum adds one share to an attempt's progress. Once required shares are in, it checks that
// they reconstruct the root key in force (resetting the progress either way) and reports done.
func (c *Core) quorum(progress *[][]byte, share []byte, required int, recovery bool) (done bool, err error) {
	if *progress, err = addShare(*progress, share); err != nil {
		return false, err
	}
	if len(*progress) < required {
		return false, nil
	}
	given := *progress
	*progress = nil
	var root []byte
	if recovery {
		// With an auto-seal the recovery keys authorise the operation, as in Vault.
		if root, err = c.VerifyRecoveryShares(given); err != nil {
			err = engines.BadRequest("the recovery keys given do not reconstruct the recovery key; progress was reset, submit current recovery keys again with the same nonce")
		}
	} else {
		root, err = c.currentRoot(given)
	}
	wipeAll(given)
	if err != nil {
		return false, err
	}
	clear(root)
	return true, nil
}

// addShare appends share to progress unless it is already there.
func addShare(progress [][]byte, share []byte) ([][]byte, error) {
	for _, have := range progress {
		if subtle.ConstantTimeCompare(have, share) == 1 {
			clear(share)
			return progress, engines.BadRequest("given key has already been provided during this operation; each key holder gives their own key once")
		}
	}
	return append(progress, share), nil
}

// currentRoot combines shares and checks that they reconstruct the root key in force (the one
// the seal state's keyring is wrapped under). The caller zeroes the result.
func (c *Core) currentRoot(shares [][]byte) ([]byte, error) {
	root, err := shamir.Combine(shares)
	if err == nil {
		_, err = ledger.UnwrapKeyring(root, c.sealView.State().Keyring)
		if err != nil {
			clear(root)
		}
	}
	if err != nil {
		return nil, engines.BadRequest("the keys given do not reconstruct the current root key (is one of them from an older set of unseal keys?); progress was reset, submit current unseal keys again with the same nonce")
	}
	return root, nil
}

func (s *sysBackend) rekeyUpdate(ctx context.Context, req *engines.Request, recovery bool) (*engines.Response, error) {
	share, nonce, err := shareAndNonce(req.Data)
	if err != nil {
		return nil, err
	}
	cs := s.st.ceremony
	cs.mu.Lock()
	defer cs.mu.Unlock()
	slot := cs.slot(recovery)
	a, base := *slot, rekeyBase(recovery)
	switch {
	case a == nil:
		clear(share)
		return nil, engines.BadRequest("no rekey in progress; start one with PUT %s/init (ledger operator rekey -init)", base)
	case !sameNonce(nonce, a.nonce):
		clear(share)
		return nil, engines.BadRequest("incorrect nonce: this key was meant for another rekey attempt; read the current one with GET %s/init (ledger operator rekey -status)", base)
	case a.verifyNonce != "":
		clear(share)
		return nil, engines.BadRequest("the new keys were generated and await verification: submit the new keys to %s/verify (ledger operator rekey -verify), or cancel with DELETE %s/init", base, base)
	}
	required := s.c.required(recovery)
	if done, err := s.c.quorum(&a.progress, share, required, recovery); err != nil || !done {
		if err == nil {
			s.c.logger.Info("rekey progress", "progress", len(a.progress), "required", required)
			return s.rekeyStatusLocked(a, required), nil
		}
		return nil, err
	}

	newRoot := make([]byte, ledger.RootKeySize)
	if _, err := rand.Read(newRoot); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	shares, err := shamir.Split(newRoot, a.shares, a.threshold)
	if err != nil {
		clear(newRoot)
		return nil, fmt.Errorf("split root key: %w", err)
	}
	defer wipeAll(shares)
	out, err := handOut(shares, a.pgp)
	if err != nil {
		clear(newRoot)
		return nil, err
	}
	res := RekeyResult{Nonce: a.nonce, Complete: true, PGPFingerprints: fingerprints(a.pgp), Backup: a.backup,
		VerificationRequired: a.requireVerify}
	res.Keys, res.KeysB64 = encodeKeys(out)
	if a.requireVerify {
		a.newRoot, a.newKeys, a.verifyNonce = newRoot, out, newUUID()
		res.VerificationNonce = a.verifyNonce
		s.c.logger.Info("rekey: new keys generated, awaiting verification", "shares", a.shares, "threshold", a.threshold)
		return raw(res), nil
	}
	defer clear(newRoot)
	err = s.c.commitRekey(ctx, s.st, a, newRoot, out, req.ID)
	a.wipe()
	*slot = nil
	if err != nil {
		return nil, err
	}
	return raw(res), nil
}

func (s *sysBackend) rekeyStatusLocked(a *rekeyAttempt, required int) *engines.Response {
	return raw(RekeyStatus{Nonce: a.nonce, Started: true, T: a.threshold, N: a.shares, Progress: len(a.progress),
		Required: required, PGPFingerprints: fingerprints(a.pgp), Backup: a.backup, VerificationRequired: a.requireVerify})
}

// handOut returns the keys as their holders get them: the raw shares, or each one's hex form
// encrypted to its holder's PGP key (Vault encrypts the hex, so `gpg -d` prints a usable key).
func handOut(shares [][]byte, pgp []pgpKey) ([][]byte, error) {
	out := make([][]byte, len(shares))
	for i, sh := range shares {
		if len(pgp) == 0 {
			out[i] = append([]byte(nil), sh...)
			continue
		}
		h := []byte(hex.EncodeToString(sh))
		ct, err := encryptPGP(pgp[i].entity, h)
		clear(h)
		if err != nil {
			return nil, fmt.Errorf("encrypt key %d to %s: %w", i+1, pgp[i].fingerprint, err)
		}
		out[i] = ct
	}
	return out, nil
}

func encodeKeys(keys [][]byte) (hexKeys, b64Keys []string) {
	hexKeys, b64Keys = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		hexKeys[i], b64Keys[i] = hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k)
	}
	return hexKeys, b64Keys
}

func (s *sysBackend) rekeyVerify(ctx context.Context, req *engines.Request, recovery bool) (*engines.Response, error) {
	share, nonce, err := shareAndNonce(req.Data)
	if err != nil {
		return nil, err
	}
	cs := s.st.ceremony
	cs.mu.Lock()
	defer cs.mu.Unlock()
	slot := cs.slot(recovery)
	a := *slot
	switch {
	case a == nil || a.verifyNonce == "":
		clear(share)
		return nil, errNoVerification
	case !sameNonce(nonce, a.verifyNonce):
		clear(share)
		return nil, engines.BadRequest("incorrect nonce: give the verification nonce (GET sys/rekey/verify), not the rekey's")
	}
	if a.verifyProgress, err = addShare(a.verifyProgress, share); err != nil {
		return nil, err
	}
	if len(a.verifyProgress) < a.threshold {
		return raw(RekeyVerifyStatus{Nonce: a.verifyNonce, Started: true, T: a.threshold, N: a.shares, Progress: len(a.verifyProgress)}), nil
	}
	given := a.verifyProgress
	a.verifyProgress = nil
	got, err := shamir.Combine(given)
	wipeAll(given)
	if err != nil || subtle.ConstantTimeCompare(got, a.newRoot) != 1 {
		clear(got)
		return nil, engines.BadRequest("the keys given do not reconstruct the new root key: verification progress was reset and the old keys stay in force; submit new keys again")
	}
	clear(got)
	err = s.c.commitRekey(ctx, s.st, a, a.newRoot, a.newKeys, req.ID)
	res := map[string]any{"nonce": a.verifyNonce, "complete": true}
	a.wipe()
	*slot = nil
	if err != nil {
		return nil, err
	}
	return raw(res), nil
}

// errRekeyRaced: a keyring rotation was appended between our wrap and our event.
var errRekeyRaced = errors.New("a keyring rotation raced this rekey; the old unseal keys stay in force: start the rekey again")

// commitRekey puts the new root key in force: the current keyring wrapped under it, in one
// seal event. Rotations and snapshots wrap under st.rootKey while holding st.keyMu, so none of
// them can seal a keyring under the old root key once the new one is in the log.
func (c *Core) commitRekey(ctx context.Context, st *unsealed, a *rekeyAttempt, newRoot []byte, keys [][]byte, reqID string) error {
	if a.recovery {
		return c.replaceRecoveryKey(ctx, st, newRoot, a.shares, a.threshold)
	}
	st.keyMu.Lock()
	defer st.keyMu.Unlock()
	kr := st.keyring.Load()
	wrapped, err := kr.Wrap(newRoot)
	if err != nil {
		return err
	}
	p := seal.RekeyedPayload{Shares: a.shares, Threshold: a.threshold, Keyring: wrapped, Term: kr.Term(), Nonce: a.nonce, Time: time.Now().UTC()}
	if a.backup {
		b := rekeyBackup{Nonce: a.nonce, Keys: map[string][]string{}, KeysB64: map[string][]string{}}
		for i, k := range keys {
			fp := a.pgp[i].fingerprint
			b.Keys[fp] = append(b.Keys[fp], hex.EncodeToString(k))
			b.KeysB64[fp] = append(b.KeysB64[fp], base64.StdEncoding.EncodeToString(k))
		}
		j, _ := json.Marshal(b)
		if p.Backup, err = kr.Seal(j, adRekeyBackup); err != nil {
			return fmt.Errorf("seal rekey backup: %w", err)
		}
	}
	payload, _ := json.Marshal(p)
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: seal.Rekeyed, Subject: ledger.SubjectFor("seal", "config"), Raw: true, Payload: payload, Request: reqID}})
	if err != nil {
		return fmt.Errorf("append rekey: %w; the old unseal keys stay in force", err)
	}
	if err := c.sealRunner.WaitFor(ctx, pos[0].Seq); err != nil {
		return fmt.Errorf("apply rekey: %w", err)
	}
	if !bytes.Equal(c.sealView.State().Keyring, wrapped) {
		return errRekeyRaced
	}
	clear(st.rootKey)
	st.rootKey = append([]byte(nil), newRoot...)
	st.rootGen = c.sealView.State().Rekeys
	c.logger.Info("rekeyed: new unseal keys in force", "shares", a.shares, "threshold", a.threshold, "backup", a.backup)
	return nil
}

// rootKeyCurrent checks, with st.keyMu held, that this node's root key is still the one in
// force: a rekey made through another node replaces it, and wrapping anything under the old one
// would hand the old unseal keys their power back.
func (c *Core) rootKeyCurrent(st *unsealed) error {
	if st.rootGen != c.sealView.State().Rekeys {
		return errors.New("the unseal keys were rekeyed through another node: this node still holds the old root key; seal it and unseal it with the new keys")
	}
	return nil
}

func (s *sysBackend) rekeyBackupRead() (*engines.Response, error) {
	blob := s.c.sealView.State().RekeyBackup
	if len(blob) == 0 {
		return nil, engines.Errorf(engines.ErrNotFound, "no backed-up keys: none were stored (rekey with backup=true and pgp_keys), or they were deleted")
	}
	j, err := s.st.keyring.Load().Open(blob, adRekeyBackup)
	if err != nil {
		return nil, fmt.Errorf("open rekey backup: %w", err)
	}
	var b rekeyBackup
	if err := json.Unmarshal(j, &b); err != nil {
		return nil, fmt.Errorf("decode rekey backup: %w", err)
	}
	return &engines.Response{Data: map[string]any{"nonce": b.Nonce, "keys": b.Keys, "keys_base64": b.KeysB64}}, nil
}
