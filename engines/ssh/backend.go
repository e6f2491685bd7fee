// Package ssh is Vault's SSH secrets engine: a signing CA (generated or imported) whose public
// key sshd trusts (TrustedUserCAKeys, @cert-authority), roles that bound what a certificate may
// say, signing of user and host keys, key pairs issued with their certificate, and one-time
// passwords (OTP mode), at Vault's paths and in Vault's request and response shapes.
//
// The CA private key travels only inside events (sealed by the log) to the view
// (projections/ssh). Keys that issue/:role generates are returned once and never recorded; OTPs
// are recorded only as hashes.
package ssh

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	sshview "github.com/ledger-secrets/ledger/projections/ssh"
)

// Backend is one SSH mount.
type Backend struct {
	view  *sshview.View
	mount engines.Mount
}

var (
	_ engines.Backend      = (*Backend)(nil)
	_ engines.PathsSpecial = (*Backend)(nil)
	_ engines.Locker       = (*Backend)(nil)
)

// New builds the backend for mount m over the SSH view.
func New(view *sshview.View, m engines.Mount) *Backend { return &Backend{view: view, mount: m} }

// Unauthenticated implements engines.PathsSpecial: the CA's public key (sshd and clients fetch
// it to trust certificates) and OTP verification (called by the vault-ssh-helper on hosts).
func (b *Backend) Unauthenticated() []string { return []string{"public_key", "verify"} }

// Sudo implements engines.PathsSpecial.
func (b *Backend) Sudo() []string { return nil }

// LockKey implements engines.Locker: the CA and each role are aggregates; signing decides no
// events and takes no lock.
func (b *Backend) LockKey(req *engines.Request) string {
	switch {
	case req.Path == "config/ca":
		return "ca"
	case strings.HasPrefix(req.Path, "roles/"):
		return req.Path
	case req.Path == "verify":
		s, _ := engines.String(req.Data, "otp", "")
		return "otp/" + otpHash(s)
	}
	return ""
}

var nameRE = regexp.MustCompile(`^\w(?:[\w\-.@]*\w)?$`)

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	p := req.Path
	write := req.Op == engines.OpCreate || req.Op == engines.OpUpdate
	seg := strings.Split(p, "/")
	switch {
	case p == "config/ca":
		return b.configCA(req)
	case p == "public_key":
		if req.Op == engines.OpRead {
			ca, ok := b.view.CA(b.mount.UUID)
			if !ok {
				return nil, engines.BadRequest("no public key configured; write config/ca first")
			}
			return &engines.Response{Data: map[string]any{"http_content_type": "text/plain",
				"http_raw_body": []byte(ca.PublicKey), "http_status_code": http.StatusOK}}, nil
		}
	case p == "roles/" || p == "roles":
		if req.Op == engines.OpList {
			keys := b.view.Roles(b.mount.UUID)
			if keys == nil {
				keys = []string{}
			}
			info := map[string]any{}
			for _, k := range keys {
				if r, ok := b.view.Role(b.mount.UUID, k); ok {
					info[k] = map[string]any{"key_type": r.KeyType}
				}
			}
			return &engines.Response{Data: map[string]any{"keys": keys, "key_info": info}}, nil
		}
	case len(seg) == 2 && seg[0] == "roles":
		return b.roleOp(req, seg[1])
	case len(seg) == 2 && seg[0] == "sign":
		if write {
			return b.sign(req, seg[1], nil)
		}
	case len(seg) == 2 && seg[0] == "issue":
		if write {
			return b.issue(req, seg[1])
		}
	case len(seg) == 2 && seg[0] == "creds":
		if write {
			return b.creds(req, seg[1])
		}
	case p == "verify":
		if write {
			return b.verifyOTP(req)
		}
	default:
		return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func (b *Backend) event(req *engines.Request, typ, aggregate string, payload any) (ledger.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev := ledger.Event{Type: typ, Subject: ledger.SubjectFor("ssh", b.mount.UUID, aggregate), Time: req.Now, Request: req.ID, Payload: p}
	if req.Caller != nil {
		ev.Actor = req.Caller.Accessor
	}
	return ev, nil
}

// generateKey makes a key pair: rsa (2048, 3072, 4096), ec (256, 384, 521) or ed25519, with
// Vault's and OpenSSH's spellings of the type accepted.
func generateKey(typ string, bits int, rsaDefault int) (crypto.Signer, error) {
	switch typ {
	case "rsa", "ssh-rsa":
		if bits == 0 {
			bits = rsaDefault
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, engines.BadRequest("unsupported key_bits %d for rsa keys: use 2048, 3072 or 4096", bits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case "ec", "ecdsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
		switch {
		case typ == "ecdsa-sha2-nistp384":
			bits = 384
		case typ == "ecdsa-sha2-nistp521":
			bits = 521
		case bits == 0 || typ == "ecdsa-sha2-nistp256":
			bits = 256
		}
		var c elliptic.Curve
		switch bits {
		case 256:
			c = elliptic.P256()
		case 384:
			c = elliptic.P384()
		case 521:
			c = elliptic.P521()
		default:
			return nil, engines.BadRequest("unsupported key_bits %d for ec keys: use 256, 384 or 521", bits)
		}
		return ecdsa.GenerateKey(c, rand.Reader)
	case "ed25519", "ssh-ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, engines.BadRequest("unknown key_type %q: use ssh-rsa, ec or ssh-ed25519", typ)
}

// marshalPrivate encodes a private key in OpenSSH's format.
func marshalPrivate(k crypto.Signer) ([]byte, error) {
	blk, err := gossh.MarshalPrivateKey(k, "")
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(blk), nil
}

func authorizedKey(pub gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
}

// configCA serves config/ca: read the public key, generate or import the CA, delete it.
func (b *Backend) configCA(req *engines.Request) (*engines.Response, error) {
	ca, exists := b.view.CA(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		if !exists {
			return nil, engines.BadRequest("keys haven't been configured yet")
		}
		return &engines.Response{Data: map[string]any{"public_key": ca.PublicKey}}, nil
	case engines.OpDelete:
		if !exists {
			return nil, nil
		}
		ev, err := b.event(req, sshview.CADeleted, "ca", sshview.DeletedPayload{Mount: b.mount.UUID})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	case engines.OpCreate, engines.OpUpdate:
	default:
		return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
	}
	if exists {
		return nil, engines.BadRequest("keys are already configured; delete them before reconfiguring")
	}
	privText, err := engines.String(req.Data, "private_key", "")
	if err != nil {
		return nil, err
	}
	pubText, err := engines.String(req.Data, "public_key", "")
	if err != nil {
		return nil, err
	}
	generate, err := engines.Bool(req.Data, "generate_signing_key", privText == "" && pubText == "")
	if err != nil {
		return nil, err
	}
	var signer crypto.Signer
	switch {
	case generate && (privText != "" || pubText != ""):
		return nil, engines.BadRequest("public_key and private_key must not be set when generate_signing_key is true")
	case generate:
		typ, err := engines.String(req.Data, "key_type", "ssh-rsa")
		if err != nil {
			return nil, err
		}
		bits, err := engines.Int(req.Data, "key_bits", 0)
		if err != nil {
			return nil, err
		}
		if signer, err = generateKey(typ, bits, 4096); err != nil {
			return nil, err
		}
	default:
		if privText == "" || pubText == "" {
			return nil, engines.BadRequest("both public_key and private_key must be provided when generate_signing_key is false")
		}
		k, err := gossh.ParseRawPrivateKey([]byte(privText))
		if err != nil {
			return nil, engines.BadRequest("unable to parse private_key: %s", sanitizeErr(err))
		}
		var ok bool
		if signer, ok = asSigner(k); !ok {
			return nil, engines.BadRequest("unsupported private_key type %T", k)
		}
		pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(pubText))
		if err != nil {
			return nil, engines.BadRequest("unable to parse public_key: expected an authorized_keys line such as \"ssh-ed25519 AAAA…\"")
		}
		sp, err := gossh.NewPublicKey(signer.Public())
		if err != nil || authorizedKey(sp) != authorizedKey(pub) {
			return nil, engines.BadRequest("public_key does not match private_key")
		}
	}
	sp, err := gossh.NewPublicKey(signer.Public())
	if err != nil {
		return nil, engines.BadRequest("unsupported key: %s", err)
	}
	der, err := marshalPrivate(signer)
	if err != nil {
		return nil, err
	}
	ca = sshview.CA{PrivateKey: der, PublicKey: authorizedKey(sp)}
	ev, err := b.event(req, sshview.CAConfigured, "ca", sshview.CAPayload{Mount: b.mount.UUID, CA: ca})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"public_key": ca.PublicKey}, Events: []ledger.Event{ev}}, nil
}

// asSigner turns what ParseRawPrivateKey returns into a crypto.Signer (it returns ed25519 keys
// as pointers).
func asSigner(k any) (crypto.Signer, bool) {
	switch t := k.(type) {
	case *ed25519.PrivateKey:
		return *t, true
	case crypto.Signer:
		return t, true
	}
	return nil, false
}

// sanitizeErr keeps parse errors short; they never quote the key.
func sanitizeErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
