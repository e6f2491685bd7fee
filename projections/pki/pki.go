// Package pki is the view of the PKI secrets engine: per mount, the CA keys and issuers, the
// roles, the mount's configuration (default issuer, URLs, CRL settings), the certificates it
// stored, their revocations, and each issuer's CRL number.
//
// CA private keys exist in two places only: inside the event payloads, which the log seals under
// the keyring, and here, in memory (and in the sealed snapshots of this view). The engine
// generates keys when it decides an event; Apply only copies what events carry and stays
// deterministic. Private keys of issued (leaf) certificates never reach an event or this view.
// A deleted key is dropped from the view, so no later snapshot holds it.
//
// CRLs themselves are not kept: the view keeps what determines one (the revoked serials, the
// CRL number and when it was last rotated) and the engine signs it on demand.
package pki

import (
	"encoding/json"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types. Subjects are ledger.SubjectFor("pki", mountUUID, aggregate).
const (
	KeyCreated     = "pki.key.created.v1"      // generated or imported CA key
	KeyUpdated     = "pki.key.updated.v1"      // key/:ref name
	KeyDeleted     = "pki.key.deleted.v1"      // DELETE key/:ref
	IssuerCreated  = "pki.issuer.created.v1"   // root/generate, set-signed, config/ca, root/rotate
	IssuerUpdated  = "pki.issuer.updated.v1"   // issuer/:ref writes
	IssuerDeleted  = "pki.issuer.deleted.v1"   // DELETE issuer/:ref
	ConfigWritten  = "pki.config.written.v1"   // config/issuers, config/urls, config/crl, …
	RoleWritten    = "pki.role.written.v1"     // roles/:name
	RoleDeleted    = "pki.role.deleted.v1"     // DELETE roles/:name
	CertStored     = "pki.cert.stored.v1"      // issue, sign, sign-verbatim, CA certificates
	CertRevoked    = "pki.cert.revoked.v1"     // revoke
	CRLRotated     = "pki.crl.rotated.v1"      // crl/rotate
	CertsTidied    = "pki.certs.tidied.v1"     // tidy: expired certificates dropped
	AcmeAccountSet = "pki.acme.account.v1"     // ACME account created or updated
	AcmeOrderSet   = "pki.acme.order.v1"       // ACME order created or changed
	AcmeNonceSpent = "pki.acme.nonce.spent.v1" // reserved
)

// Key is a CA private key. Material is PKCS #8 DER.
type Key struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Type     string `json:"type"` // rsa, ec, ed25519
	Bits     int    `json:"bits"`
	Material []byte `json:"material"`
}

// Issuer is a CA certificate the mount can issue with (when it has its key) or merely chains to.
type Issuer struct {
	ID                   string    `json:"id"`
	Name                 string    `json:"name"`
	KeyID                string    `json:"key_id"` // "" when the mount does not hold the key
	Certificate          string    `json:"certificate"`
	CAChain              []string  `json:"ca_chain"` // own certificate first, then its parents
	ManualChain          []string  `json:"manual_chain,omitempty"`
	LeafNotAfterBehavior string    `json:"leaf_not_after_behavior"`
	Usage                string    `json:"usage"`
	Serial               string    `json:"serial"`
	NotAfter             time.Time `json:"not_after"`
	Created              time.Time `json:"created"`
}

// URLs is config/urls.
type URLs struct {
	IssuingCertificates   []string `json:"issuing_certificates"`
	CRLDistributionPoints []string `json:"crl_distribution_points"`
	OCSPServers           []string `json:"ocsp_servers"`
}

// CRLConfig is config/crl.
type CRLConfig struct {
	Expiry      time.Duration `json:"expiry"`
	Disable     bool          `json:"disable"`
	OCSPDisable bool          `json:"ocsp_disable"`
	OCSPExpiry  time.Duration `json:"ocsp_expiry"`
	AutoRebuild bool          `json:"auto_rebuild"`
	EnableDelta bool          `json:"enable_delta"`
}

// AutoTidy is config/auto-tidy.
type AutoTidy struct {
	Enabled          bool          `json:"enabled"`
	Interval         time.Duration `json:"interval"`
	TidyCertStore    bool          `json:"tidy_cert_store"`
	TidyRevokedCerts bool          `json:"tidy_revoked_certs"`
	SafetyBuffer     time.Duration `json:"safety_buffer"`
}

// Config is every mount-wide setting. Events carry it whole (absolute values, never deltas).
type Config struct {
	DefaultIssuer              string    `json:"default_issuer"`
	DefaultFollowsLatestIssuer bool      `json:"default_follows_latest_issuer"`
	DefaultKey                 string    `json:"default_key"`
	URLs                       URLs      `json:"urls"`
	CRL                        CRLConfig `json:"crl"`
	AutoTidy                   AutoTidy  `json:"auto_tidy"`
	ClusterPath                string    `json:"cluster_path"`
	ClusterAIAPath             string    `json:"cluster_aia_path"`
	AcmeEnabled                bool      `json:"acme_enabled"`
	AcmeDefaultRole            string    `json:"acme_default_directory_policy"`
	AcmeAllowedRoles           []string  `json:"acme_allowed_roles"`
	AcmeEABPolicy              string    `json:"acme_eab_policy"`
	// AcmeHTTP01Port is where http-01 challenges are fetched: 80 per RFC 8555 unless set (a
	// Ledger addition, as test ACME servers such as Pebble offer, for validating against
	// challenge servers that cannot bind port 80).
	AcmeHTTP01Port int `json:"acme_http01_port,omitempty"`
}

// Role is roles/:name, in Vault's field names.
type Role struct {
	Name                      string        `json:"name"`
	TTL                       time.Duration `json:"ttl"`
	MaxTTL                    time.Duration `json:"max_ttl"`
	AllowLocalhost            bool          `json:"allow_localhost"`
	AllowedDomains            []string      `json:"allowed_domains"`
	AllowBareDomains          bool          `json:"allow_bare_domains"`
	AllowSubdomains           bool          `json:"allow_subdomains"`
	AllowGlobDomains          bool          `json:"allow_glob_domains"`
	AllowWildcardCertificates bool          `json:"allow_wildcard_certificates"`
	AllowAnyName              bool          `json:"allow_any_name"`
	EnforceHostnames          bool          `json:"enforce_hostnames"`
	AllowIPSANs               bool          `json:"allow_ip_sans"`
	AllowedURISANs            []string      `json:"allowed_uri_sans"`
	ServerFlag                bool          `json:"server_flag"`
	ClientFlag                bool          `json:"client_flag"`
	CodeSigningFlag           bool          `json:"code_signing_flag"`
	EmailProtectionFlag       bool          `json:"email_protection_flag"`
	KeyType                   string        `json:"key_type"`
	KeyBits                   int           `json:"key_bits"`
	SignatureBits             int           `json:"signature_bits"`
	KeyUsage                  []string      `json:"key_usage"`
	ExtKeyUsage               []string      `json:"ext_key_usage"`
	ExtKeyUsageOIDs           []string      `json:"ext_key_usage_oids"`
	UseCSRCommonName          bool          `json:"use_csr_common_name"`
	UseCSRSANs                bool          `json:"use_csr_sans"`
	OU                        []string      `json:"ou"`
	Organization              []string      `json:"organization"`
	Country                   []string      `json:"country"`
	Locality                  []string      `json:"locality"`
	Province                  []string      `json:"province"`
	StreetAddress             []string      `json:"street_address"`
	PostalCode                []string      `json:"postal_code"`
	GenerateLease             bool          `json:"generate_lease"`
	NoStore                   bool          `json:"no_store"`
	RequireCN                 bool          `json:"require_cn"`
	NotBeforeDuration         time.Duration `json:"not_before_duration"`
	IssuerRef                 string        `json:"issuer_ref"`
	CNValidations             []string      `json:"cn_validations"`
}

// Cert is a certificate the mount stored. RevokedAt is zero while it is valid.
type Cert struct {
	Serial      string    `json:"serial"`
	Certificate string    `json:"certificate"`
	IssuerID    string    `json:"issuer_id"`
	NotAfter    time.Time `json:"not_after"`
	RevokedAt   time.Time `json:"revoked_at"`
	RevokedSeq  int64     `json:"revoked_seq,omitempty"` // the CRL number that first lists it
}

// CRLState is what an issuer's CRLs are built from besides the revoked certificates. Complete
// and delta CRLs share one numbering, never reused for different contents: Number is the
// complete CRL's (it holds every revocation with RevokedSeq <= Number), Seq the current delta
// CRL's, always above Number (the delta holds the revocations above Number). A revocation with
// deltas enabled advances Seq; without, it starts a new complete CRL above Seq, so the complete
// CRL is always current; a rotation does the same.
type CRLState struct {
	Number          int64     `json:"number"`
	ThisUpdate      time.Time `json:"this_update"`
	Seq             int64     `json:"seq,omitempty"`
	DeltaThisUpdate time.Time `json:"delta_this_update,omitempty"`
}

// next returns the state with Seq at least Number+1 (states from before Seq existed).
func (c CRLState) next() CRLState {
	if c.Seq <= c.Number {
		c.Seq = c.Number + 1
	}
	return c
}

// TidyStatus is what tidy-status reports of the last tidy run.
type TidyStatus struct {
	State               string    `json:"state"`
	Started             time.Time `json:"started"`
	Finished            time.Time `json:"finished"`
	CertStoreDeleted    int       `json:"cert_store_deleted_count"`
	RevokedCertsDeleted int       `json:"revoked_cert_deleted_count"`
}

// AcmeAccount is an ACME account: its JWK thumbprint keys it; JWK is the public key as JSON.
type AcmeAccount struct {
	ID        string    `json:"id"`
	JWK       []byte    `json:"jwk"`
	Status    string    `json:"status"`
	Contact   []string  `json:"contact"`
	CreatedAt time.Time `json:"created_at"`
}

// AcmeOrder is an ACME order with its one authorization per identifier.
type AcmeOrder struct {
	ID          string          `json:"id"`
	AccountID   string          `json:"account_id"`
	Status      string          `json:"status"`
	Expires     time.Time       `json:"expires"`
	Identifiers []string        `json:"identifiers"` // DNS names
	Authz       []AcmeAuthz     `json:"authz"`
	CertSerial  string          `json:"cert_serial"`
	Role        string          `json:"role"`
	Extra       json.RawMessage `json:"extra,omitempty"`
}

// AcmeAuthz is one authorization with its http-01 challenge.
type AcmeAuthz struct {
	ID         string    `json:"id"`
	Identifier string    `json:"identifier"`
	Status     string    `json:"status"`
	Token      string    `json:"token"`
	Validated  time.Time `json:"validated"`
}

// Payloads. Every payload names its mount by UUID.

// KeyPayload creates or renames a key (KeyCreated, KeyUpdated: the whole key).
type KeyPayload struct {
	Mount string `json:"mount"`
	Key   Key    `json:"key"`
}

// IssuerPayload creates or replaces an issuer.
type IssuerPayload struct {
	Mount  string `json:"mount"`
	Issuer Issuer `json:"issuer"`
}

// DeletedPayload deletes a key, an issuer or a role by ID or name.
type DeletedPayload struct {
	Mount string `json:"mount"`
	ID    string `json:"id"`
}

// ConfigPayload replaces the mount's configuration.
type ConfigPayload struct {
	Mount  string `json:"mount"`
	Config Config `json:"config"`
}

// RolePayload writes a role.
type RolePayload struct {
	Mount string `json:"mount"`
	Role  Role   `json:"role"`
}

// CertPayload stores a certificate.
type CertPayload struct {
	Mount string `json:"mount"`
	Cert  Cert   `json:"cert"`
}

// RevokedPayload revokes a stored certificate at Time.
type RevokedPayload struct {
	Mount  string    `json:"mount"`
	Serial string    `json:"serial"`
	Time   time.Time `json:"time"`
}

// CRLRotatedPayload starts a new CRL for an issuer (its number is incremented).
type CRLRotatedPayload struct {
	Mount  string    `json:"mount"`
	Issuer string    `json:"issuer"`
	Time   time.Time `json:"time"`
}

// TidiedPayload drops certificates from the store and records the tidy run.
type TidiedPayload struct {
	Mount   string     `json:"mount"`
	Serials []string   `json:"serials"`
	Status  TidyStatus `json:"status"`
}

// AcmeAccountPayload creates or replaces an ACME account.
type AcmeAccountPayload struct {
	Mount   string      `json:"mount"`
	Account AcmeAccount `json:"account"`
}

// AcmeOrderPayload creates or replaces an ACME order.
type AcmeOrderPayload struct {
	Mount string    `json:"mount"`
	Order AcmeOrder `json:"order"`
}

// State is one mount's state. Values handed out by the view are copies or are never modified
// in place (maps are replaced per change of their element), so callers may keep them.
type State struct {
	Keys      map[string]*Key         `json:"keys"`
	Issuers   map[string]*Issuer      `json:"issuers"`
	Roles     map[string]*Role        `json:"roles"`
	Certs     map[string]*Cert        `json:"certs"`
	CRLs      map[string]CRLState     `json:"crls"`
	Config    Config                  `json:"config"`
	Tidy      TidyStatus              `json:"tidy"`
	Accounts  map[string]*AcmeAccount `json:"acme_accounts"`
	Orders    map[string]*AcmeOrder   `json:"acme_orders"`
	LatestIss string                  `json:"latest_issuer"`
}

func newState() *State {
	return &State{Keys: map[string]*Key{}, Issuers: map[string]*Issuer{}, Roles: map[string]*Role{},
		Certs: map[string]*Cert{}, CRLs: map[string]CRLState{}, Accounts: map[string]*AcmeAccount{},
		Orders: map[string]*AcmeOrder{}}
}

// View is the PKI view.
type View struct {
	mu       sync.RWMutex
	mounts   map[string]*State
	disabled map[string]bool
}

// New returns an empty view.
func New() *View { return &View{mounts: map[string]*State{}, disabled: map[string]bool{}} }

// Name implements projections.View.
func (v *View) Name() string { return "pki" }

// state returns a mount's state, creating it, or nil for a disabled mount. Lock held.
func (v *View) state(uuid string) *State {
	if uuid == "" || v.disabled[uuid] {
		return nil
	}
	s := v.mounts[uuid]
	if s == nil {
		s = newState()
		v.mounts[uuid] = s
	}
	return s
}

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case KeyCreated, KeyUpdated:
		var p KeyPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.Key.ID != "" {
			if _, exists := s.Keys[p.Key.ID]; exists && rec.Type == KeyCreated {
				return nil
			}
			k := p.Key
			s.Keys[k.ID] = &k
			if s.Config.DefaultKey == "" {
				s.Config.DefaultKey = k.ID
			}
		}
	case KeyDeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			delete(s.Keys, p.ID)
			if s.Config.DefaultKey == p.ID {
				s.Config.DefaultKey = ""
			}
		}
	case IssuerCreated, IssuerUpdated:
		var p IssuerPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		s := v.state(p.Mount)
		if s == nil || p.Issuer.ID == "" {
			return nil
		}
		_, exists := s.Issuers[p.Issuer.ID]
		if exists == (rec.Type == IssuerCreated) {
			return nil // created twice, or an update of a deleted issuer
		}
		is := normIssuer(p.Issuer)
		s.Issuers[is.ID] = &is
		if rec.Type == IssuerCreated {
			s.LatestIss = is.ID
			if s.Config.DefaultIssuer == "" || s.Issuers[s.Config.DefaultIssuer] == nil || s.Config.DefaultFollowsLatestIssuer {
				s.Config.DefaultIssuer = is.ID
			}
			if _, ok := s.CRLs[is.ID]; !ok {
				s.CRLs[is.ID] = CRLState{Number: 1, ThisUpdate: rec.Time.UTC(), Seq: 2}
			}
		}
	case IssuerDeleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			delete(s.Issuers, p.ID)
			delete(s.CRLs, p.ID)
			if s.Config.DefaultIssuer == p.ID {
				s.Config.DefaultIssuer = ""
			}
		}
	case ConfigWritten:
		var p ConfigPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil {
			if s.Config.CRL.EnableDelta && !p.Config.CRL.EnableDelta {
				// Revocations held only in delta CRLs move into the complete CRLs.
				for id, st := range s.CRLs {
					st = st.next()
					st.Number, st.ThisUpdate = st.Seq+1, rec.Time.UTC()
					st.Seq = st.Number + 1
					st.DeltaThisUpdate = time.Time{}
					s.CRLs[id] = st
				}
			}
			s.Config = p.Config
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
	case CertStored:
		var p CertPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.Cert.Serial != "" {
			if _, exists := s.Certs[p.Cert.Serial]; !exists {
				c := p.Cert
				c.NotAfter, c.RevokedAt = c.NotAfter.UTC(), c.RevokedAt.UTC()
				s.Certs[c.Serial] = &c
			}
		}
	case CertRevoked:
		var p RevokedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		s := v.mounts[p.Mount]
		if s == nil {
			return nil
		}
		old := s.Certs[p.Serial]
		if old == nil || !old.RevokedAt.IsZero() {
			return nil // revoked twice: the first wins
		}
		c := *old
		c.RevokedAt = p.Time.UTC()
		if st, ok := s.CRLs[c.IssuerID]; ok {
			st = st.next()
			if s.Config.CRL.EnableDelta {
				st.Seq++
				c.RevokedSeq = st.Seq
				st.DeltaThisUpdate = rec.Time.UTC()
			} else {
				st.Number, st.ThisUpdate = st.Seq+1, rec.Time.UTC()
				st.Seq = st.Number + 1
				c.RevokedSeq = st.Number
			}
			s.CRLs[c.IssuerID] = st
		}
		s.Certs[p.Serial] = &c
	case CRLRotated:
		var p CRLRotatedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			if st, ok := s.CRLs[p.Issuer]; ok {
				st = st.next()
				st.Number, st.ThisUpdate = st.Seq+1, p.Time.UTC()
				st.Seq = st.Number + 1
				st.DeltaThisUpdate = time.Time{}
				s.CRLs[p.Issuer] = st
			}
		}
	case CertsTidied:
		var p TidiedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.mounts[p.Mount]; s != nil {
			for _, serial := range p.Serials {
				delete(s.Certs, serial)
			}
			st := p.Status
			st.Started, st.Finished = st.Started.UTC(), st.Finished.UTC()
			s.Tidy = st
		}
	case AcmeAccountSet:
		var p AcmeAccountPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.Account.ID != "" {
			a := p.Account
			a.CreatedAt = a.CreatedAt.UTC()
			s.Accounts[a.ID] = &a
		}
	case AcmeOrderSet:
		var p AcmeOrderPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if s := v.state(p.Mount); s != nil && p.Order.ID != "" {
			o := normOrder(p.Order)
			s.Orders[o.ID] = &o
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

func normIssuer(is Issuer) Issuer {
	is.NotAfter, is.Created = is.NotAfter.UTC(), is.Created.UTC()
	return is
}

func normOrder(o AcmeOrder) AcmeOrder {
	o.Expires = o.Expires.UTC()
	o.Authz = append([]AcmeAuthz(nil), o.Authz...)
	for i := range o.Authz {
		o.Authz[i].Validated = o.Authz[i].Validated.UTC()
	}
	return o
}

// Mount returns a shallow copy of a mount's state: its maps are copies, their values shared and
// never modified by the view. ok is false for a mount with no state yet.
func (v *View) Mount(uuid string) (State, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.mounts[uuid]
	if s == nil {
		return State{Config: Config{}}, false
	}
	c := *s
	c.Keys, c.Issuers, c.Roles = maps.Clone(s.Keys), maps.Clone(s.Issuers), maps.Clone(s.Roles)
	c.CRLs, c.Accounts, c.Orders = maps.Clone(s.CRLs), maps.Clone(s.Accounts), maps.Clone(s.Orders)
	c.Certs = nil // large: use Cert, Certs, Revoked
	return c, true
}

// Config returns a mount's configuration.
func (v *View) Config(uuid string) Config {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		return s.Config
	}
	return Config{}
}

// Issuer returns an issuer by ID.
func (v *View) Issuer(uuid, id string) (Issuer, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if is := s.Issuers[id]; is != nil {
			return *is, true
		}
	}
	return Issuer{}, false
}

// Key returns a key by ID.
func (v *View) Key(uuid, id string) (Key, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if k := s.Keys[id]; k != nil {
			return *k, true
		}
	}
	return Key{}, false
}

// Role returns a role.
func (v *View) Role(uuid, name string) (Role, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if r := s.Roles[name]; r != nil {
			return *r, true
		}
	}
	return Role{}, false
}

// Cert returns a stored certificate by serial (colon-separated lowercase hex).
func (v *View) Cert(uuid, serial string) (Cert, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		if c := s.Certs[serial]; c != nil {
			return *c, true
		}
	}
	return Cert{}, false
}

// Serials returns the serials of the stored certificates, sorted; with revoked, only those
// revoked.
func (v *View) Serials(uuid string, revoked bool) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.mounts[uuid]
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.Certs))
	for serial, c := range s.Certs {
		if !revoked || !c.RevokedAt.IsZero() {
			out = append(out, serial)
		}
	}
	sort.Strings(out)
	return out
}

// Revoked returns the revoked certificates of an issuer, sorted by serial.
func (v *View) Revoked(uuid, issuerID string) []Cert {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.mounts[uuid]
	if s == nil {
		return nil
	}
	out := make([]Cert, 0, 64)
	for _, c := range s.Certs {
		if !c.RevokedAt.IsZero() && c.IssuerID == issuerID {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Serial < out[j].Serial })
	return out
}

// CRL returns an issuer's CRL state.
func (v *View) CRL(uuid, issuerID string) CRLState {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s := v.mounts[uuid]; s != nil {
		return s.CRLs[issuerID]
	}
	return CRLState{}
}

// Expired returns the serials of stored certificates whose NotAfter is before cutoff.
func (v *View) Expired(uuid string, cutoff time.Time) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.mounts[uuid]
	if s == nil {
		return nil
	}
	var out []string
	for serial, c := range s.Certs {
		if c.NotAfter.Before(cutoff) {
			out = append(out, serial)
		}
	}
	sort.Strings(out)
	return out
}

// Mounts returns the UUIDs of mounts with state, sorted.
func (v *View) Mounts() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.mounts))
	for u := range v.mounts {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// Snapshot implements projections.View. It holds CA key material (the runner's snapshots are
// sealed). Maps encode with sorted keys, so equal states encode equally.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return projections.EncodeMounts(1, v.mounts, v.disabled)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	snap, disabled, err := projections.DecodeMounts[*State]("pki", 1, data)
	if err != nil {
		return err
	}
	mounts := make(map[string]*State, len(snap))
	for uuid, st := range snap {
		if st == nil {
			continue
		}
		n := newState()
		for id, k := range st.Keys {
			if k != nil {
				n.Keys[id] = k
			}
		}
		for id, is := range st.Issuers {
			if is != nil {
				c := normIssuer(*is)
				n.Issuers[id] = &c
			}
		}
		for id, r := range st.Roles {
			if r != nil {
				n.Roles[id] = r
			}
		}
		for id, c := range st.Certs {
			if c != nil {
				c.NotAfter, c.RevokedAt = c.NotAfter.UTC(), c.RevokedAt.UTC()
				n.Certs[id] = c
			}
		}
		for id, c := range st.CRLs {
			c.ThisUpdate, c.DeltaThisUpdate = c.ThisUpdate.UTC(), c.DeltaThisUpdate.UTC()
			n.CRLs[id] = c
		}
		for id, a := range st.Accounts {
			if a != nil {
				a.CreatedAt = a.CreatedAt.UTC()
				n.Accounts[id] = a
			}
		}
		for id, o := range st.Orders {
			if o != nil {
				c := normOrder(*o)
				n.Orders[id] = &c
			}
		}
		n.Config, n.LatestIss = st.Config, st.LatestIss
		n.Tidy = st.Tidy
		n.Tidy.Started, n.Tidy.Finished = n.Tidy.Started.UTC(), n.Tidy.Finished.UTC()
		mounts[uuid] = n
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mounts, v.disabled = mounts, disabled
	return nil
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }
