package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

// readCert serves cert/:serial[/raw[/pem]] and the special serials ca, ca_chain and crl.
func (b *Backend) readCert(serial, sub string) (*engines.Response, error) {
	switch serial {
	case "ca":
		is, err := b.resolveIssuer("default")
		if err != nil {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: map[string]any{"certificate": is.Certificate, "revocation_time": 0,
			"revocation_time_rfc3339": "", "issuer_id": is.ID}}, nil
	case "ca_chain":
		is, err := b.resolveIssuer("default")
		if err != nil {
			return nil, engines.ErrNotFound
		}
		return &engines.Response{Data: map[string]any{"certificate": strings.Join(chainPEMs(is), "\n"),
			"ca_chain": chainPEMs(is), "revocation_time": 0, "revocation_time_rfc3339": ""}}, nil
	case "crl":
		is, err := b.resolveIssuer("default")
		if err != nil {
			return nil, engines.ErrNotFound
		}
		der, err := b.crl(is)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"certificate": crlPEM(der), "revocation_time": 0,
			"revocation_time_rfc3339": ""}}, nil
	}
	s, ok := normSerial(serial)
	if !ok {
		return nil, engines.BadRequest("invalid serial number %q: expected hex bytes separated by ':' or '-'", serial)
	}
	c, ok := b.view.Cert(b.mount.UUID, s)
	if !ok {
		return nil, engines.ErrNotFound
	}
	switch sub {
	case "raw":
		blk, _ := pem.Decode([]byte(c.Certificate))
		return raw("application/pkix-cert", blk.Bytes, http.StatusOK), nil
	case "raw/pem":
		return raw("application/pem-certificate-chain", []byte(c.Certificate+"\n"), http.StatusOK), nil
	case "":
	default:
		return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
	}
	rt, rfc := int64(0), ""
	if !c.RevokedAt.IsZero() {
		rt, rfc = c.RevokedAt.Unix(), c.RevokedAt.Format(time.RFC3339)
	}
	return &engines.Response{Data: map[string]any{"certificate": c.Certificate, "revocation_time": rt,
		"revocation_time_rfc3339": rfc, "issuer_id": c.IssuerID}}, nil
}

func crlPEM(der []byte) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})))
}

// crl returns an issuer's current complete CRL, signed on first use of its CRL number.
func (b *Backend) crl(is pkiview.Issuer) ([]byte, error) { return b.cachedCRL(is, false) }

// cachedCRL returns the current complete or delta CRL, signed once per CRL number.
func (b *Backend) cachedCRL(is pkiview.Issuer, delta bool) ([]byte, error) {
	st := b.view.CRL(b.mount.UUID, is.ID)
	key, number := is.ID, st.Number
	if delta {
		key, number = "delta/"+is.ID, st.Seq
	}
	b.crlMu.Lock()
	if c, ok := b.crls[key]; ok && c.number == number {
		b.crlMu.Unlock()
		return c.der, nil
	}
	b.crlMu.Unlock()
	build := b.BuildCRL
	if delta {
		build = b.BuildDeltaCRL
	}
	der, err := build(is, st)
	if err != nil {
		return nil, err
	}
	b.crlMu.Lock()
	b.crls[key] = cachedCRL{number: number, der: der}
	b.crlMu.Unlock()
	return der, nil
}

// BuildCRL signs the complete CRL of an issuer in state st (exported for the benchmark).
func (b *Backend) BuildCRL(is pkiview.Issuer, st pkiview.CRLState) ([]byte, error) {
	return b.buildCRL(is, st, false)
}

// oidDeltaCRLIndicator is RFC 5280's delta CRL indicator extension (critical; the base CRL's
// number).
var oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}

// BuildDeltaCRL signs the delta CRL of an issuer: the revocations since its complete CRL.
func (b *Backend) BuildDeltaCRL(is pkiview.Issuer, st pkiview.CRLState) ([]byte, error) {
	return b.buildCRL(is, st, true)
}

func (b *Backend) buildCRL(is pkiview.Issuer, st pkiview.CRLState, delta bool) ([]byte, error) {
	signer, err := b.signer(is)
	if err != nil {
		return nil, err
	}
	parent, err := parseCertPEM(is.Certificate)
	if err != nil {
		return nil, err
	}
	cfg := b.view.Config(b.mount.UUID).CRL
	expiry := cfg.Expiry
	if expiry == 0 {
		expiry = 72 * time.Hour
	}
	var entries []x509.RevocationListEntry
	if !cfg.Disable {
		for _, c := range b.view.Revoked(b.mount.UUID, is.ID) {
			if inDelta := c.RevokedSeq > st.Number; inDelta != delta {
				continue
			}
			n, ok := new(big.Int).SetString(strings.ReplaceAll(c.Serial, ":", ""), 16)
			if !ok {
				continue
			}
			entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: c.RevokedAt})
		}
	}
	this := st.ThisUpdate
	if this.IsZero() {
		this = is.Created
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(st.Number), ThisUpdate: this, NextUpdate: this.Add(expiry),
		RevokedCertificateEntries: entries}
	if !delta && b.view.Config(b.mount.UUID).CRL.EnableDelta {
		// OpenSSL (and RFC 5280 §5.2.6) looks for delta CRLs only from a complete CRL that
		// says where they are.
		if ext, ok := b.freshestCRL(); ok {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
		}
	}
	if delta {
		base, err := asn1.Marshal(big.NewInt(st.Number))
		if err != nil {
			return nil, err
		}
		tmpl.Number = big.NewInt(st.Seq)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidDeltaCRLIndicator, Critical: true, Value: base}}
		if !st.DeltaThisUpdate.IsZero() {
			tmpl.ThisUpdate = st.DeltaThisUpdate
		}
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(15 * time.Minute)
		if tmpl.NextUpdate.After(this.Add(expiry)) {
			tmpl.NextUpdate = this.Add(expiry)
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, parent, signer)
	if err != nil {
		return nil, engines.BadRequest("unable to build the CRL of issuer %s: %s", is.ID, err)
	}
	return der, nil
}

// readCRL serves crl, crl/pem, crl/delta[/pem] and issuer/:ref/crl[/der|/pem|/delta…].
func (b *Backend) readCRL(_ *engines.Request, ref, format string) (*engines.Response, error) {
	delta := false
	if f, ok := strings.CutPrefix(format, "delta"); ok {
		delta, format = true, strings.TrimPrefix(f, "/")
		if format == "" {
			format = "der"
		}
		if !b.view.Config(b.mount.UUID).CRL.EnableDelta {
			return nil, engines.BadRequest("delta CRLs are not enabled on this mount; set config/crl enable_delta=true")
		}
	}
	is, err := b.resolveIssuer(ref)
	if err != nil {
		if format == "json" {
			return nil, engines.ErrNotFound
		}
		return raw("text/plain", nil, http.StatusNoContent), nil
	}
	der, err := b.cachedCRL(is, delta)
	if err != nil {
		return nil, err
	}
	switch format {
	case "der":
		return raw("application/pkix-crl", der, http.StatusOK), nil
	case "pem":
		return raw("application/x-pem-file", []byte(crlPEM(der)+"\n"), http.StatusOK), nil
	case "json":
		return &engines.Response{Data: map[string]any{"crl": crlPEM(der)}}, nil
	}
	return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
}

// rotateCRL serves crl/rotate: every issuer with a key starts a new CRL.
func (b *Backend) rotateCRL(req *engines.Request) (*engines.Response, error) {
	st, _ := b.view.Mount(b.mount.UUID)
	var events []ledger.Event
	for id, is := range st.Issuers {
		if is.KeyID == "" {
			continue
		}
		ev, err := b.event(req, pkiview.CRLRotated, "crl/"+id, pkiview.CRLRotatedPayload{Mount: b.mount.UUID, Issuer: id, Time: req.Now})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return &engines.Response{Data: map[string]any{"success": true}, Events: events}, nil
}

// revoke serves revoke: by serial_number (a stored certificate) or by certificate (one this
// mount issued, stored or not).
func (b *Backend) revoke(req *engines.Request) (*engines.Response, error) {
	serialIn, err := engines.String(req.Data, "serial_number", "")
	if err != nil {
		return nil, err
	}
	certIn, err := engines.String(req.Data, "certificate", "")
	if err != nil {
		return nil, err
	}
	if (serialIn == "") == (certIn == "") {
		return nil, engines.BadRequest("exactly one of serial_number or certificate must be given")
	}
	var events []ledger.Event
	var c pkiview.Cert
	if serialIn != "" {
		s, ok := normSerial(serialIn)
		if !ok {
			return nil, engines.BadRequest("invalid serial number %q: expected hex bytes separated by ':' or '-'", serialIn)
		}
		if c, ok = b.view.Cert(b.mount.UUID, s); !ok {
			return nil, engines.BadRequest("certificate with serial %s not found", s)
		}
	} else {
		pc, err := parseCertPEM(certIn)
		if err != nil {
			return nil, err
		}
		s := serialString(pc.SerialNumber)
		var ok bool
		if c, ok = b.view.Cert(b.mount.UUID, s); !ok {
			is, found := b.issuerOf(pc)
			if !found {
				return nil, engines.BadRequest("certificate with serial %s was not issued by this mount", s)
			}
			ev, err := b.certEvent(req, pc.Raw, "", is.ID, pc.NotAfter)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
			c = pkiview.Cert{Serial: s, IssuerID: is.ID, NotAfter: pc.NotAfter}
		} else if c.Certificate != certPEM(pc.Raw) {
			return nil, engines.BadRequest("certificate with serial %s does not match the stored certificate", s)
		}
	}
	st, _ := b.view.Mount(b.mount.UUID)
	for _, is := range st.Issuers {
		if is.Serial == c.Serial {
			return nil, engines.BadRequest("adding issuer (id: %s) to its own CRL is not allowed", is.ID)
		}
	}
	if !c.RevokedAt.IsZero() {
		return &engines.Response{Data: revokedData(c.RevokedAt)}, nil
	}
	if req.Now.After(c.NotAfter) {
		return &engines.Response{Warnings: []string{"certificate with serial " + c.Serial + " already expired; refusing to add to CRL"}}, nil
	}
	ev, err := b.event(req, pkiview.CertRevoked, "cert/"+c.Serial, pkiview.RevokedPayload{Mount: b.mount.UUID, Serial: c.Serial, Time: req.Now})
	if err != nil {
		return nil, err
	}
	events = append(events, ev)
	return &engines.Response{Data: revokedData(req.Now), Events: events}, nil
}

func revokedData(t time.Time) map[string]any {
	return map[string]any{"revocation_time": t.Unix(), "revocation_time_rfc3339": t.UTC().Format(time.RFC3339Nano), "state": "revoked"}
}

// issuerOf finds the issuer that signed a certificate.
func (b *Backend) issuerOf(c *x509.Certificate) (pkiview.Issuer, bool) {
	st, _ := b.view.Mount(b.mount.UUID)
	for _, is := range st.Issuers {
		pc, err := parseCertPEM(is.Certificate)
		if err == nil && bytes.Equal(c.RawIssuer, pc.RawSubject) && c.CheckSignatureFrom(pc) == nil {
			return *is, true
		}
	}
	return pkiview.Issuer{}, false
}

func ocspRaw(body []byte, status int) *engines.Response {
	return raw("application/ocsp-response", body, status)
}

// ocsp serves ocsp (POST, DER body) and ocsp/:request (GET, base64), RFC 6960.
func (b *Backend) ocsp(req *engines.Request, tail string) (*engines.Response, error) {
	var der []byte
	if req.Op == engines.OpRead {
		if tail == "" {
			return ocspRaw(ocsp.MalformedRequestErrorResponse, http.StatusBadRequest), nil
		}
		d, err := base64.StdEncoding.DecodeString(tail)
		if err != nil {
			if d, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(tail, "=")); err != nil {
				return ocspRaw(ocsp.MalformedRequestErrorResponse, http.StatusBadRequest), nil
			}
		}
		der = d
	} else {
		body, _ := req.Data["http_raw_body"].([]byte)
		der = body
	}
	oreq, err := ocsp.ParseRequest(der)
	if err != nil {
		return ocspRaw(ocsp.MalformedRequestErrorResponse, http.StatusBadRequest), nil
	}
	cfg := b.view.Config(b.mount.UUID)
	if cfg.CRL.OCSPDisable {
		return ocspRaw(ocsp.UnauthorizedErrorResponse, http.StatusUnauthorized), nil
	}
	is, parent, ok := b.ocspIssuer(oreq)
	if !ok {
		return ocspRaw(ocsp.UnauthorizedErrorResponse, http.StatusUnauthorized), nil
	}
	signer, err := b.signer(is)
	if err != nil {
		return ocspRaw(ocsp.UnauthorizedErrorResponse, http.StatusUnauthorized), nil
	}
	expiry := cfg.CRL.OCSPExpiry
	if expiry == 0 {
		expiry = 12 * time.Hour
	}
	tmpl := ocsp.Response{SerialNumber: oreq.SerialNumber, ThisUpdate: req.Now.Truncate(time.Second),
		NextUpdate: req.Now.Add(expiry).Truncate(time.Second), IssuerHash: oreq.HashAlgorithm, Status: ocsp.Unknown}
	if c, ok := b.view.Cert(b.mount.UUID, serialString(oreq.SerialNumber)); ok && c.IssuerID == is.ID {
		tmpl.Status = ocsp.Good
		if !c.RevokedAt.IsZero() {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, c.RevokedAt, ocsp.Unspecified
		}
	}
	resp, err := ocsp.CreateResponse(parent, parent, tmpl, signer)
	if err != nil {
		return ocspRaw(ocsp.InternalErrorErrorResponse, http.StatusInternalServerError), nil
	}
	return ocspRaw(resp, http.StatusOK), nil
}

// ocspIssuer finds the issuer a request names by its name and key hashes.
func (b *Backend) ocspIssuer(r *ocsp.Request) (pkiview.Issuer, *x509.Certificate, bool) {
	if !r.HashAlgorithm.Available() {
		return pkiview.Issuer{}, nil, false
	}
	st, _ := b.view.Mount(b.mount.UUID)
	for _, is := range st.Issuers {
		if is.KeyID == "" {
			continue
		}
		pc, err := parseCertPEM(is.Certificate)
		if err != nil {
			continue
		}
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(pc.RawSubjectPublicKeyInfo, &spki); err != nil {
			continue
		}
		h := r.HashAlgorithm.New()
		h.Write(pc.RawSubject)
		nameHash := h.Sum(nil)
		h.Reset()
		h.Write(spki.PublicKey.RightAlign())
		keyHash := h.Sum(nil)
		if bytes.Equal(nameHash, r.IssuerNameHash) && bytes.Equal(keyHash, r.IssuerKeyHash) {
			return *is, pc, true
		}
	}
	return pkiview.Issuer{}, nil, false
}

// tidyBatch bounds the serials one tidy event carries, so an event stays well under the log's
// message limit.
const tidyBatch = 2000

// tidy serves tidy: expired certificates (past the safety buffer) leave the store, and with
// them the CRL. It runs to completion before answering, then reports as Vault does (202).
func (b *Backend) tidy(req *engines.Request) (*engines.Response, error) {
	store, err := engines.Bool(req.Data, "tidy_cert_store", false)
	if err != nil {
		return nil, err
	}
	revoked, err := engines.Bool(req.Data, "tidy_revoked_certs", false)
	if err != nil {
		return nil, err
	}
	buffer, err := engines.Duration(req.Data, "safety_buffer", 72*time.Hour)
	if err != nil {
		return nil, err
	}
	if !store && !revoked {
		return nil, engines.BadRequest("tidy: at least one of tidy_cert_store or tidy_revoked_certs must be true")
	}
	events, err := b.TidyEvents(req, store, revoked, buffer)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Status: http.StatusAccepted, Events: events,
		Warnings: []string{"Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."}}, nil
}

// TidyEvents decides a tidy run: the events dropping expired certificates (all of them with
// store, revoked ones with revoked), ending with the run's status.
func (b *Backend) TidyEvents(req *engines.Request, store, revoked bool, buffer time.Duration) ([]ledger.Event, error) {
	var drop []string
	status := pkiview.TidyStatus{State: "Finished", Started: req.Now, Finished: req.Now}
	for _, s := range b.view.Expired(b.mount.UUID, req.Now.Add(-buffer)) {
		c, ok := b.view.Cert(b.mount.UUID, s)
		if !ok {
			continue
		}
		isRevoked := !c.RevokedAt.IsZero()
		if (isRevoked && revoked) || (!isRevoked && store) {
			drop = append(drop, s)
			if isRevoked {
				status.RevokedCertsDeleted++
			} else {
				status.CertStoreDeleted++
			}
		}
	}
	var events []ledger.Event
	for len(drop) > tidyBatch {
		ev, err := b.event(req, pkiview.CertsTidied, "tidy", pkiview.TidiedPayload{Mount: b.mount.UUID, Serials: drop[:tidyBatch], Status: pkiview.TidyStatus{State: "Running", Started: req.Now}})
		if err != nil {
			return nil, err
		}
		events, drop = append(events, ev), drop[tidyBatch:]
	}
	ev, err := b.event(req, pkiview.CertsTidied, "tidy", pkiview.TidiedPayload{Mount: b.mount.UUID, Serials: drop, Status: status})
	if err != nil {
		return nil, err
	}
	return append(events, ev), nil
}

func (b *Backend) tidyStatus() *engines.Response {
	st, _ := b.view.Mount(b.mount.UUID)
	t := st.Tidy
	state := t.State
	if state == "" {
		state = "Inactive"
	}
	ts := func(x time.Time) any {
		if x.IsZero() {
			return nil
		}
		return x.Format(time.RFC3339Nano)
	}
	return &engines.Response{Data: map[string]any{"state": state, "error": nil, "time_started": ts(t.Started),
		"time_finished": ts(t.Finished), "message": "", "cert_store_deleted_count": t.CertStoreDeleted,
		"revoked_cert_deleted_count": t.RevokedCertsDeleted,
		"current_cert_store_count":   len(b.view.Serials(b.mount.UUID, false)),
		"current_revoked_cert_count": len(b.view.Serials(b.mount.UUID, true))}}
}

// AutoTidyDue decides an automatic tidy run when config/auto-tidy is enabled and its interval
// has passed since the last run (or since the mount's first tidy-able state); nil otherwise.
// Only the active node calls it; replay never does.
func (b *Backend) AutoTidyDue(now time.Time) []ledger.Event {
	st, ok := b.view.Mount(b.mount.UUID)
	if !ok || !st.Config.AutoTidy.Enabled {
		return nil
	}
	a := st.Config.AutoTidy
	interval := a.Interval
	if interval == 0 {
		interval = 12 * time.Hour
	}
	if !st.Tidy.Finished.IsZero() && now.Sub(st.Tidy.Finished) < interval {
		return nil
	}
	buffer := a.SafetyBuffer
	if buffer == 0 {
		buffer = 72 * time.Hour
	}
	evs, err := b.TidyEvents(&engines.Request{ID: "auto-tidy", Now: now}, a.TidyCertStore, a.TidyRevokedCerts, buffer)
	if err != nil {
		return nil
	}
	return evs
}

// CRLRotateDue decides a new complete CRL for every issuer whose complete CRL has lived half its
// expiry, so published CRLs never run past their nextUpdate and, with delta CRLs, revocations
// reach the complete CRL. Only the active node calls it.
func (b *Backend) CRLRotateDue(now time.Time) []ledger.Event {
	st, ok := b.view.Mount(b.mount.UUID)
	if !ok {
		return nil
	}
	expiry := st.Config.CRL.Expiry
	if expiry == 0 {
		expiry = 72 * time.Hour
	}
	var evs []ledger.Event
	ids := make([]string, 0, len(st.Issuers))
	for id, is := range st.Issuers {
		if is.KeyID != "" && now.Sub(st.CRLs[id].ThisUpdate) >= expiry/2 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	req := &engines.Request{ID: "crl-rotate", Now: now}
	for _, id := range ids {
		ev, err := b.event(req, pkiview.CRLRotated, "crl/"+id, pkiview.CRLRotatedPayload{Mount: b.mount.UUID, Issuer: id, Time: now})
		if err == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

var oidFreshestCRL = asn1.ObjectIdentifier{2, 5, 29, 46}

type distributionPointName struct {
	FullName []asn1.RawValue `asn1:"optional,tag:0"`
}

type distributionPoint struct {
	DistributionPoint distributionPointName `asn1:"optional,tag:0"`
}

// freshestCRL is the Freshest CRL extension naming where the delta CRL is served: the mount's
// config/cluster path + /crl/delta, else each of config/urls' CRL distribution points +
// "/delta". ok is false when neither is configured.
func (b *Backend) freshestCRL() (pkix.Extension, bool) {
	cfg := b.view.Config(b.mount.UUID)
	var urls []string
	if cfg.ClusterPath != "" {
		urls = append(urls, strings.TrimSuffix(cfg.ClusterPath, "/")+"/crl/delta")
	} else {
		for _, u := range cfg.URLs.CRLDistributionPoints {
			urls = append(urls, strings.TrimSuffix(u, "/")+"/delta")
		}
	}
	if len(urls) == 0 {
		return pkix.Extension{}, false
	}
	var dps []distributionPoint
	for _, u := range urls {
		dps = append(dps, distributionPoint{DistributionPoint: distributionPointName{
			FullName: []asn1.RawValue{{Tag: 6, Class: 2, Bytes: []byte(u)}}}})
	}
	v, err := asn1.Marshal(dps)
	if err != nil {
		return pkix.Extension{}, false
	}
	return pkix.Extension{Id: oidFreshestCRL, Value: v}, true
}
