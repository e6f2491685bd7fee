package commands

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
)

// OTPLength is the length of a generate-root one-time password: the length of a root token
// ("hvs." and 24 base62 characters), since the token is XORed with it byte for byte. Vault
// reports the same otp_length for its hvs. tokens.
const OTPLength = 28

type rootAttempt struct {
	nonce    string
	otp      []byte
	pgp      *pgpKey
	progress [][]byte
}

func (a *rootAttempt) wipe() {
	if a == nil {
		return
	}
	wipeAll(a.progress)
	clear(a.otp)
	a.progress, a.otp = nil, nil
}

// GenerateRootStatus is the body of every sys/generate-root answer.
type GenerateRootStatus struct {
	Started          bool   `json:"started"`
	Nonce            string `json:"nonce"`
	Progress         int    `json:"progress"`
	Required         int    `json:"required"`
	Complete         bool   `json:"complete"`
	EncodedToken     string `json:"encoded_token"`
	EncodedRootToken string `json:"encoded_root_token"`
	PGPFingerprint   string `json:"pgp_fingerprint"`
	OTP              string `json:"otp"`
	OTPLength        int    `json:"otp_length"`
}

var errNoRootAttempt = engines.BadRequest("no root generation in progress; start one with PUT sys/generate-root/attempt (ledger operator generate-root -init)")

// generateRootPaths serves sys/generate-root/attempt and sys/generate-root/update.
func (s *sysBackend) generateRootPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	cs := s.st.ceremony
	switch {
	case p == "generate-root/attempt" && req.Op == engines.OpRead:
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return raw(s.rootStatusLocked("")), nil
	case p == "generate-root/attempt" && isWrite(req.Op):
		return s.generateRootInit(req)
	case p == "generate-root/attempt" && req.Op == engines.OpDelete:
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.root != nil {
			cs.root.wipe()
			cs.root = nil
			s.c.logger.Info("root generation cancelled")
		}
		return noContent(), nil
	case p == "generate-root/update" && isWrite(req.Op):
		return s.generateRootUpdate(ctx, req)
	case p == "generate-root/attempt" || p == "generate-root/update":
		return nil, engines.ErrUnsupported
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/"+p)
}

func (s *sysBackend) rootStatusLocked(otp string) GenerateRootStatus {
	st := GenerateRootStatus{Required: s.c.required(s.c.SealType() != "shamir"), OTP: otp, OTPLength: OTPLength}
	if a := s.st.ceremony.root; a != nil {
		st.Started, st.Nonce, st.Progress = true, a.nonce, len(a.progress)
		if a.pgp != nil {
			st.PGPFingerprint = a.pgp.fingerprint
		}
	}
	return st
}

func (s *sysBackend) generateRootInit(req *engines.Request) (*engines.Response, error) {
	otp, err := engines.String(req.Data, "otp", "")
	if err != nil {
		return nil, err
	}
	pgpText, err := engines.String(req.Data, "pgp_key", "")
	if err != nil {
		return nil, err
	}
	a := &rootAttempt{}
	generated := ""
	switch {
	case otp != "" && pgpText != "":
		return nil, engines.BadRequest("give either otp or pgp_key, not both")
	case pgpText != "":
		k, err := parsePGPKey("pgp_key", -1, pgpText)
		if err != nil {
			return nil, err
		}
		a.pgp = &k
	case otp != "":
		if len(otp) != OTPLength {
			return nil, engines.BadRequest("OTP string is wrong length: want %d characters (the root token's length); omit otp to have the server generate one, or use ledger operator generate-root -generate-otp", OTPLength)
		}
		a.otp = []byte(otp)
	default:
		generated = enginetoken.RandomBase62(OTPLength)
		a.otp = []byte(generated)
	}
	cs := s.st.ceremony
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.root != nil {
		a.wipe()
		return nil, engines.BadRequest("root generation already in progress; finish it, or cancel it with DELETE sys/generate-root/attempt (ledger operator generate-root -cancel)")
	}
	a.nonce = newUUID()
	cs.root = a
	s.c.logger.Info("root generation started", "pgp", a.pgp != nil)
	return raw(s.rootStatusLocked(generated)), nil
}

func (s *sysBackend) generateRootUpdate(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	share, nonce, err := shareAndNonce(req.Data)
	if err != nil {
		return nil, err
	}
	cs := s.st.ceremony
	cs.mu.Lock()
	defer cs.mu.Unlock()
	a := cs.root
	switch {
	case a == nil:
		clear(share)
		return nil, errNoRootAttempt
	case !sameNonce(nonce, a.nonce):
		clear(share)
		return nil, engines.BadRequest("incorrect nonce: this key was meant for another root generation attempt; read the current one with GET sys/generate-root/attempt (ledger operator generate-root -status)")
	}
	// With an auto-seal the recovery keys authorise it, as in Vault.
	recovery := s.c.SealType() != "shamir"
	required := s.c.required(recovery)
	if done, err := s.c.quorum(&a.progress, share, required, recovery); err != nil || !done {
		if err == nil {
			s.c.logger.Info("root generation progress", "progress", len(a.progress), "required", required)
			return raw(s.rootStatusLocked("")), nil
		}
		return nil, err
	}

	token, accessor := enginetoken.NewToken()
	encoded, err := encodeRootToken(token, a)
	if err != nil {
		return nil, err
	}
	ev := rootTokenEvent(s.st.keyring.Load(), token, accessor, time.Now().UTC())
	out := GenerateRootStatus{Started: true, Nonce: a.nonce, Progress: required, Required: required, Complete: true,
		EncodedToken: encoded, EncodedRootToken: encoded, OTPLength: OTPLength}
	if a.pgp != nil {
		out.PGPFingerprint = a.pgp.fingerprint
	}
	// The attempt ends here whatever happens to the append: a failed append leaves no token,
	// and the holders start again.
	a.wipe()
	cs.root = nil
	resp := raw(out)
	resp.Events = append(resp.Events, ev)
	s.c.logger.Info("root token generated", "accessor", accessor)
	return resp, nil
}

// encodeRootToken hides the new token from everyone but the one who started the attempt: the
// token XOR the OTP, base64 (Vault's scheme; `operator generate-root -decode` reverses it), or
// the token encrypted to the PGP key, base64.
func encodeRootToken(token string, a *rootAttempt) (string, error) {
	if a.pgp != nil {
		ct, err := encryptPGP(a.pgp.entity, []byte(token))
		if err != nil {
			return "", fmt.Errorf("encrypt root token to %s: %w", a.pgp.fingerprint, err)
		}
		return base64.StdEncoding.EncodeToString(ct), nil
	}
	if len(a.otp) != len(token) {
		return "", errors.New("generate-root: OTP and token lengths differ")
	}
	x := make([]byte, len(token))
	for i := range x {
		x[i] = token[i] ^ a.otp[i]
	}
	return base64.RawStdEncoding.EncodeToString(x), nil
}

// DecodeRootToken reverses the OTP encoding of generate-root: the CLI's -decode.
func DecodeRootToken(encoded, otp string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(encoded), "="))
	if err != nil {
		return "", fmt.Errorf("the encoded token is not base64: %w", err)
	}
	if len(b) != len(otp) {
		return "", fmt.Errorf("the encoded token is %d bytes and the OTP %d characters: use the OTP of the attempt that produced this token", len(b), len(otp))
	}
	for i := range b {
		b[i] ^= otp[i]
	}
	return string(b), nil
}
