// Package ssh is the view of the SSH secrets engine: per mount, the signing CA key pair, the
// roles, and the one-time passwords issued and not yet used.
//
// The CA private key exists in two places only: inside the event payloads, which the log seals
// under the keyring, and here, in memory (and in the sealed snapshots of this view). Private keys
// that issue/:role generates for clients never reach an event or this view. One-time passwords
// are kept only as salted hashes.
package ssh

import (
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Subjects are ledger.SubjectFor("ssh", mountUUID, aggregate).
const (
	CAConfigured = "ssh.ca.configured.v1" // config/ca (generated or imported)
	CADeleted    = "ssh.ca.deleted.v1"    // DELETE config/ca
	RoleWritten  = "ssh.role.written.v1"  // roles/:name
	RoleDeleted  = "ssh.role.deleted.v1"  // DELETE roles/:name
	OTPIssued    = "ssh.otp.issued.v1"    // creds/:role of an OTP role
	OTPUsed      = "ssh.otp.used.v1"      // verify consumed an OTP
)

// CA is the mount's signing key pair. PrivateKey is an OpenSSH-format PEM private key;
// PublicKey is its authorized_keys line.
type CA struct {
	PrivateKey []byte `json:"private_key"`
	PublicKey  string `json:"public_key"`
}

// Role is roles/:name, in Vault's field names.
type Role struct {
	Name                   string            `json:"name"`
	KeyType                string            `json:"key_type"` // ca or otp
	AllowUserCertificates  bool              `json:"allow_user_certificates"`
	AllowHostCertificates  bool              `json:"allow_host_certificates"`
	AllowedUsers           string            `json:"allowed_users"`
	DefaultUser            string            `json:"default_user"`
	AllowedDomains         string            `json:"allowed_domains"`
	AllowBareDomains       bool              `json:"allow_bare_domains"`
	AllowSubdomains        bool              `json:"allow_subdomains"`
	AllowedExtensions      string            `json:"allowed_extensions"`
	DefaultExtensions      map[string]string `json:"default_extensions"`
	AllowedCriticalOptions string            `json:"allowed_critical_options"`
	DefaultCriticalOptions map[string]string `json:"default_critical_options"`
	TTL                    time.Duration     `json:"ttl"`
	MaxTTL                 time.Duration     `json:"max_ttl"`
	AllowedUserKeyLengths  map[string][]int  `json:"allowed_user_key_lengths"`
	AlgorithmSigner        string            `json:"algorithm_signer"`
	AllowUserKeyIDs        bool              `json:"allow_user_key_ids"`
	KeyIDFormat            string            `json:"key_id_format"`
	NotBeforeDuration      time.Duration     `json:"not_before_duration"`
	CIDRList               string            `json:"cidr_list"`
	ExcludeCIDRList        string            `json:"exclude_cidr_list"`
	Port                   int               `json:"port"`
}

// OTP is an issued one-time password, keyed by its salted hash.
type OTP struct {
	Hash     string    `json:"hash"`
	Username string    `json:"username"`
	IP       string    `json:"ip"`
	Role     string    `json:"role"`
	Expires  time.Time `json:"expires"`
}

// Payloads. Every payload names its mount by UUID.

// CAPayload configures the CA.
type CAPayload struct {
	Mount string `json:"mount"`
	CA    CA     `json:"ca"`
}

// RolePayload writes a role.
type RolePayload struct {
	Mount string `json:"mount"`
	Role  Role   `json:"role"`
}

// DeletedPayload deletes the CA (ID empty) or a role.
type DeletedPayload struct {
	Mount string `json:"mount"`
	ID    string `json:"id"`
}

// OTPPayload issues an OTP.
type OTPPayload struct {
	Mount string `json:"mount"`
	OTP   OTP    `json:"otp"`
}

// OTPUsedPayload consumes one.
type OTPUsedPayload struct {
	Mount string `json:"mount"`
	Hash  string `json:"hash"`
}

// State is one mount's state.
type State struct {
	CA    *CA              `json:"ca,omitempty"`
	Roles map[string]*Role `json:"roles"`
	OTPs  map[string]*OTP  `json:"otps"`
}

// View is the SSH view.
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*State
	disabled map[string]bool
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*State{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "ssh" }

func (v *View) state(uuid string) *State {
	if uuid == "" || v.disabled[uuid] {
		return nil
	}
	s := v.mounts[uuid]
	if s == nil {
		s = &State{Roles: map[string]*Role{}, OTPs: map[string]*OTP{}}
		v.mounts[uuid] = s
	}
	return s
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case CAConfigured:
		var p CAPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && s.CA == nil {
			ca := p.CA
			s.CA = &ca
		}
	case CADeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			s.CA = nil
		}
	case RoleWritten:
		var p RolePayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.Role.Name != "" {
			r := p.Role
			s.Roles[r.Name] = &r
		}
	case RoleDeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			delete(s.Roles, p.ID)
		}
	case OTPIssued:
		var p OTPPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.OTP.Hash != "" {
			o := p.OTP
			o.Expires = o.Expires.UTC()
			s.OTPs[o.Hash] = &o
		}
	case OTPUsed:
		var p OTPUsedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			delete(s.OTPs, p.Hash)
		}
	case mount.Disabled:
		var p mount.DisabledPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		projections.DisableMount(v.mounts, v.disabled, p.UUID)
	}
	return nil
}

// CA returns a mount's CA.
func (v *View) CA(uuid string) (CA, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil && s.CA != nil {
		return *s.CA, true
	}
	return CA{}, false
}

// Role returns a role.
func (v *View) Role(uuid, name string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if r := s.Roles[name]; r != nil {
			c := *r
			c.DefaultExtensions = maps.Clone(r.DefaultExtensions)
			c.DefaultCriticalOptions = maps.Clone(r.DefaultCriticalOptions)
			c.AllowedUserKeyLengths = maps.Clone(r.AllowedUserKeyLengths)
			return c, true
		}
	}
	return Role{}, false
}

// Roles returns the names of a mount's roles, sorted.
func (v *View) Roles(uuid string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.mounts[uuid]
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.Roles))
	for n := range s.Roles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// OTP returns an issued OTP by hash.
func (v *View) OTP(uuid, hash string) (OTP, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if o := s.OTPs[hash]; o != nil {
			return *o, true
		}
	}
	return OTP{}, false
}

// Snapshot implements projections.View (it holds the CA private key: snapshots are sealed).
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return projections.EncodeMounts(1, v.mounts, v.disabled)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	snap, disabled, err := projections.DecodeMounts[*State]("ssh", 1, data)
	if err != nil {
		return err
	}
	mounts := map[string]*State{}
	for uuid, st := range snap {
		if st == nil {
			continue
		}
		n := &State{CA: st.CA, Roles: map[string]*Role{}, OTPs: map[string]*OTP{}}
		for k, r := range st.Roles {
			if r != nil {
				n.Roles[k] = r
			}
		}
		for k, o := range st.OTPs {
			if o != nil {
				o.Expires = o.Expires.UTC()
				n.OTPs[k] = o
			}
		}
		mounts[uuid] = n
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
