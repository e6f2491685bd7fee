package ssh

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	sshview "github.com/ledger-secrets/ledger/projections/ssh"
)

// otpHash is how an OTP is recorded: its SHA-256. OTPs are 128 random bits, so the hash alone
// cannot be inverted by guessing.
func otpHash(otp string) string {
	s := sha256.Sum256([]byte(otp))
	return hex.EncodeToString(s[:])
}

func newOTP() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("ssh: crypto/rand unavailable")
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// creds serves creds/:role of an OTP role: an OTP for a user on a host in the role's CIDRs.
func (b *Backend) creds(req *engines.Request, roleName string) (*engines.Response, error) {
	r, ok := b.view.Role(b.mount.UUID, roleName)
	if !ok {
		return nil, engines.BadRequest("unknown role: %s", roleName)
	}
	if r.KeyType != "otp" {
		return nil, engines.BadRequest("role %s is not of key_type otp; sign keys with sign/%s", roleName, roleName)
	}
	ipIn, err := engines.String(req.Data, "ip", "")
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(strings.TrimSpace(ipIn))
	if ip == nil {
		return nil, engines.BadRequest("missing or invalid ip")
	}
	user, err := engines.String(req.Data, "username", "")
	if err != nil {
		return nil, err
	}
	if user == "" {
		user = r.DefaultUser
	}
	allowed := splitList(r.AllowedUsers)
	if user != r.DefaultUser && !contains(allowed, "*") && !contains(allowed, user) {
		return nil, engines.BadRequest("username %s is not allowed by role", user)
	}
	if !engines.InCIDRs(ip.String(), splitList(r.CIDRList)) || engines.InCIDRs(ip.String(), splitList(r.ExcludeCIDRList)) {
		return nil, engines.BadRequest("IP %s does not belong to role", ip)
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = b.mount.DefaultLeaseTTL
	}
	otp := newOTP()
	ev, err := b.event(req, sshview.OTPIssued, "otp/"+otpHash(otp), sshview.OTPPayload{Mount: b.mount.UUID, OTP: sshview.OTP{
		Hash: otpHash(otp), Username: user, IP: ip.String(), Role: roleName, Expires: req.Now.Add(ttl)}})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"key": otp, "key_type": "otp", "username": user,
		"ip": ip.String(), "port": r.Port}, Secret: &engines.Secret{LeaseDuration: ttl}, Events: []ledger.Event{ev}}, nil
}

// verifyOTP serves verify: an OTP is good once, before it expires.
func (b *Backend) verifyOTP(req *engines.Request) (*engines.Response, error) {
	otp, err := engines.String(req.Data, "otp", "")
	if err != nil {
		return nil, err
	}
	if otp == "" {
		return nil, engines.BadRequest("missing otp")
	}
	h := otpHash(otp)
	o, ok := b.view.OTP(b.mount.UUID, h)
	if !ok || !req.Now.Before(o.Expires) {
		return nil, engines.BadRequest("OTP not found")
	}
	ev, err := b.event(req, sshview.OTPUsed, "otp/"+h, sshview.OTPUsedPayload{Mount: b.mount.UUID, Hash: h})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"username": o.Username, "ip": o.IP, "role_name": o.Role},
		Events: []ledger.Event{ev}}, nil
}
