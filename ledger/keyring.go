package ledger

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// RootKeySize is the size of the root key that the unseal shares reconstruct.
const RootKeySize = 32

// Associated data binding the wrapped keysets to their role, so one cannot stand in for another.
var (
	adAEADKeyset = []byte("ledger keyring aead v1")
	adPRFKeyset  = []byte("ledger keyring prf v1")
)

// Term describes one generation of the encryption key, as sys/key-status reports it.
type Term struct {
	Term      uint32    `json:"term"`
	KeyID     uint32    `json:"key_id"`
	Installed time.Time `json:"installed"`
}

// Keyring holds the keys that seal event payloads (a Tink AES-256-GCM keyset, one key per term)
// and the PRF keys behind token and audit HMACs. It exists in memory only while unsealed; on
// disk it is always wrapped under the root key. A Keyring is immutable: Rotate returns a new one.
type Keyring struct {
	aeadHandle *keyset.Handle
	aead       tink.AEAD
	prfHandle  *keyset.Handle
	prf        prf.Set
	terms      []Term
	sealed     atomic.Uint64 // encryptions under this keyring, for key-status
	fp         fingerprintKey
	macs       *hmacPool                       // the PRF keyset's primary HMAC key, for MAC without a new HMAC per call
	gcm        map[[gcmPrefix]byte]cipher.AEAD // see OpenInPlace; nil: Tink opens everything
	sealGCM    cipher.AEAD                     // the primary key's, from gcm; nil: Tink seals
	sealPrefix [gcmPrefix]byte                 // the primary key's output prefix
}

// hmacPool hands out HMAC-SHA256 states under one key, reset between uses. Tink's HMAC PRF
// builds a new HMAC (two hashes and the key schedule) on every call; a token lookup and every
// string in an audit record pay that, so MAC keeps its states instead. The output is the same
// as the PRF's (keyring_test.go checks it against Tink).
type hmacPool struct{ pool sync.Pool }

type hmacState struct {
	h   hash.Hash
	sum []byte
}

func newHMACPool(key []byte) *hmacPool {
	p := &hmacPool{}
	p.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)} }
	return p
}

// hexSum returns the hex HMAC of the concatenation of parts.
func (p *hmacPool) hexSum(parts ...string) string { return p.prefixedHexSum("", parts...) }

// prefixedHexSum returns prefix followed by the hex HMAC of the concatenation of parts, built
// in one allocation (an audit record holds several such strings).
func (p *hmacPool) prefixedHexSum(prefix string, parts ...string) string {
	var digits [2 * sha256.Size]byte
	p.appendHexSum(digits[:0], parts...)
	var out strings.Builder
	out.Grow(len(prefix) + len(digits))
	out.WriteString(prefix)
	out.Write(digits[:])
	return out.String()
}

// appendHexSum appends the hex HMAC of the concatenation of parts to dst. The parts go straight
// into the hash: no copy of a message (it may be a token) is left in the pool.
func (p *hmacPool) appendHexSum(dst []byte, parts ...string) []byte {
	st := p.pool.Get().(*hmacState)
	st.h.Reset()
	for _, part := range parts {
		// A hash.Hash neither keeps nor changes what it is given: the string's bytes are
		// hashed in place instead of copied into a buffer.
		st.h.Write(unsafe.Slice(unsafe.StringData(part), len(part)))
	}
	st.sum = st.h.Sum(st.sum[:0])
	dst = hex.AppendEncode(dst, st.sum)
	p.pool.Put(st)
	return dst
}

// primaryHMACKey returns the raw key of the PRF keyset's primary key when it is an HMAC-SHA256
// PRF key (the template NewKeyring uses), or nil when it is not.
func primaryHMACKey(ph *keyset.Handle) []byte {
	e, err := ph.Primary()
	if err != nil {
		return nil
	}
	hk, ok := e.Key().(*hmacprf.Key)
	if !ok {
		return nil
	}
	if params, ok := hk.Parameters().(*hmacprf.Parameters); !ok || params.HashType() != hmacprf.SHA256 {
		return nil
	}
	return hk.KeyBytes().Data(insecuresecretdataaccess.Token{})
}

// NewKeyring generates a fresh keyring at term 1.
func NewKeyring(now time.Time) (*Keyring, error) {
	ah, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("new aead keyset: %w", err)
	}
	ph, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("new prf keyset: %w", err)
	}
	return assemble(ah, ph, []Term{{Term: 1, KeyID: ah.KeysetInfo().GetPrimaryKeyId(), Installed: now.UTC()}})
}

func assemble(ah, ph *keyset.Handle, terms []Term) (*Keyring, error) {
	a, err := aead.New(ah)
	if err != nil {
		return nil, fmt.Errorf("aead primitive: %w", err)
	}
	p, err := prf.NewPRFSet(ph)
	if err != nil {
		return nil, fmt.Errorf("prf primitive: %w", err)
	}
	k := &Keyring{aeadHandle: ah, aead: a, prfHandle: ph, prf: *p, terms: terms}
	if key := primaryHMACKey(ph); key != nil {
		k.macs = newHMACPool(key)
	}
	k.gcm = gcmKeys(ah)
	if e, err := ah.Primary(); err == nil && k.gcm != nil {
		if pk, ok := e.Key().(*aesgcm.Key); ok && len(pk.OutputPrefix()) == gcmPrefix {
			k.sealPrefix = [gcmPrefix]byte(pk.OutputPrefix())
			k.sealGCM = k.gcm[k.sealPrefix]
		}
	}
	return k, nil
}

// The layout of a ciphertext of a Tink AES-GCM key with Tink's output prefix: 0x01 and the
// key id (5 bytes), the IV, then the encrypted bytes and the tag.
const (
	gcmPrefix = 5
	gcmIV     = 12
	gcmTag    = 16
)

// gcmKeys returns the AEAD keyset's enabled keys as AES-GCM ciphers by output prefix, when
// every enabled key is AES-GCM with a 12-byte IV, a 16-byte tag and Tink's prefix (what
// NewKeyring and Rotate generate); otherwise nil, and Tink opens everything. Only then does a
// ciphertext's prefix name the one key Tink would try, so both open exactly the same inputs.
func gcmKeys(ah *keyset.Handle) map[[gcmPrefix]byte]cipher.AEAD {
	out := map[[gcmPrefix]byte]cipher.AEAD{}
	for i := range ah.Len() {
		e, err := ah.Entry(i)
		if err != nil {
			return nil
		}
		if e.KeyStatus() != keyset.Enabled {
			continue
		}
		k, ok := e.Key().(*aesgcm.Key)
		if !ok {
			return nil
		}
		p, ok := k.Parameters().(*aesgcm.Parameters)
		prefix := k.OutputPrefix()
		if !ok || p.IVSizeInBytes() != gcmIV || p.TagSizeInBytes() != gcmTag || p.Variant() != aesgcm.VariantTink || len(prefix) != gcmPrefix {
			return nil
		}
		block, err := aes.NewCipher(k.KeyBytes().Data(insecuresecretdataaccess.Token{}))
		if err != nil {
			return nil
		}
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil
		}
		out[[gcmPrefix]byte(prefix)] = g
	}
	return out
}

// OpenInPlace opens what Seal sealed, as Open does, but decrypts into the ciphertext's own
// storage and returns the plaintext as a slice of it: loading a checkpoint opens hundreds of
// megabytes at 1M secrets, and Tink's Decrypt allocates each chunk's plaintext afresh.
// ciphertext is overwritten whether or not it opens.
func (k *Keyring) OpenInPlace(ciphertext, ad []byte) ([]byte, error) {
	if k.gcm != nil && len(ciphertext) >= gcmPrefix+gcmIV+gcmTag {
		if g, ok := k.gcm[[gcmPrefix]byte(ciphertext[:gcmPrefix])]; ok {
			body := ciphertext[gcmPrefix+gcmIV:]
			return g.Open(body[:0], ciphertext[gcmPrefix:gcmPrefix+gcmIV], body, ad)
		}
	}
	pt, err := k.aead.Decrypt(ciphertext, ad)
	if err != nil {
		clear(ciphertext)
		return nil, err
	}
	n := copy(ciphertext, pt)
	clear(pt)
	return ciphertext[:n], nil
}

// Rotate returns a keyring with a new primary key at the next term. Older keys stay, so every
// event written under an earlier term still opens.
func (k *Keyring) Rotate(now time.Time) (*Keyring, error) {
	m := keyset.NewManagerFromHandle(k.aeadHandle)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	h, err := m.Handle()
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	terms := append(append([]Term(nil), k.terms...), Term{Term: k.Term() + 1, KeyID: id, Installed: now.UTC()})
	return assemble(h, k.prfHandle, terms)
}

// Term is the current (primary) key term.
func (k *Keyring) Term() uint32 { return k.terms[len(k.terms)-1].Term }

// Terms lists every key generation, oldest first.
func (k *Keyring) Terms() []Term { return append([]Term(nil), k.terms...) }

// Encryptions counts payloads sealed with this keyring since it was loaded.
func (k *Keyring) Encryptions() uint64 { return k.sealed.Load() }

// Seal encrypts plaintext bound to associated data. With an AES-GCM primary key (gcmKeys) it
// builds Tink's ciphertext itself — the key's prefix, a random 12-byte IV, the sealed bytes and
// tag — with a cipher made once: Tink's Encrypt makes a new AES-GCM (key schedule and GHASH
// table) on every call, and every event and audit record is sealed. Tink opens the result
// (keyring_test.go).
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) { return k.SealInto(nil, plaintext, ad) }

// SealInto is Seal writing the ciphertext into dst's room (growing it when it is too small), so
// a caller done with one ciphertext can seal the next into the same buffer.
func (k *Keyring) SealInto(dst, plaintext, ad []byte) ([]byte, error) {
	k.sealed.Add(1)
	if k.sealGCM == nil {
		ct, err := k.aead.Encrypt(plaintext, ad)
		if err != nil || cap(dst) < len(ct) {
			return ct, err
		}
		return append(dst[:0], ct...), nil
	}
	need := gcmPrefix + gcmIV + len(plaintext) + gcmTag
	if cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	out := dst[:gcmPrefix+gcmIV]
	copy(out, k.sealPrefix[:])
	if _, err := rand.Read(out[gcmPrefix:]); err != nil {
		return nil, fmt.Errorf("seal: random IV: %w", err)
	}
	return k.sealGCM.Seal(out, out[gcmPrefix:gcmPrefix+gcmIV], plaintext, ad), nil
}

// Open decrypts a payload sealed by any term of this keyring.
func (k *Keyring) Open(ciphertext, ad []byte) ([]byte, error) {
	return k.aead.Decrypt(ciphertext, ad)
}

// MAC returns a keyed, domain-separated HMAC-SHA256 of value, hex encoded. Tokens are stored and
// looked up only by MAC("token", token); audit records carry MAC("audit", value).
func (k *Keyring) MAC(domain, value string) string {
	if k.macs != nil {
		return k.macs.hexSum(domain, "\x00", value)
	}
	out, err := k.prf.ComputePrimaryPRF([]byte(domain+"\x00"+value), sha256.Size)
	if err != nil {
		// The PRF keyset is generated by us with a fixed template; an error means memory corruption.
		panic("ledger: keyring prf unusable")
	}
	return hex.EncodeToString(out)
}

// PrefixedMAC is prefix + MAC(domain, value), in one allocation when it can be.
func (k *Keyring) PrefixedMAC(prefix, domain, value string) string {
	if k.macs != nil {
		return k.macs.prefixedHexSum(prefix, domain, "\x00", value)
	}
	return prefix + k.MAC(domain, value)
}

// AppendPrefixedMAC appends PrefixedMAC(prefix, domain, value) to dst, allocating nothing when
// dst has room: an audit record writes its HMACs straight into its encoding.
func (k *Keyring) AppendPrefixedMAC(dst []byte, prefix, domain, value string) []byte {
	dst = append(dst, prefix...)
	if k.macs != nil {
		return k.macs.appendHexSum(dst, domain, "\x00", value)
	}
	return append(dst, k.MAC(domain, value)...)
}

// EqualMAC compares two MACs in constant time.
func EqualMAC(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

type wrappedKeyring struct {
	Version int    `json:"v"`
	AEAD    []byte `json:"aead"`
	PRF     []byte `json:"prf"`
	Terms   []Term `json:"terms"`
}

// Wrap encrypts the keyring under the root key for storage in the log.
func (k *Keyring) Wrap(rootKey []byte) ([]byte, error) {
	root, err := rootAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	var a, p bytes.Buffer
	if err := k.aeadHandle.WriteWithAssociatedData(keyset.NewBinaryWriter(&a), root, adAEADKeyset); err != nil {
		return nil, fmt.Errorf("wrap keyring: %w", err)
	}
	if err := k.prfHandle.WriteWithAssociatedData(keyset.NewBinaryWriter(&p), root, adPRFKeyset); err != nil {
		return nil, fmt.Errorf("wrap keyring: %w", err)
	}
	return json.Marshal(wrappedKeyring{Version: 1, AEAD: a.Bytes(), PRF: p.Bytes(), Terms: k.terms})
}

// ErrWrongRootKey: the root key does not open the stored keyring (wrong or mismatched shares).
var ErrWrongRootKey = fmt.Errorf("ledger: root key does not open the keyring")

// UnwrapKeyring opens a keyring wrapped by Wrap. A wrong root key yields ErrWrongRootKey.
func UnwrapKeyring(rootKey, blob []byte) (*Keyring, error) {
	var w wrappedKeyring
	if err := json.Unmarshal(blob, &w); err != nil || w.Version != 1 || len(w.Terms) == 0 {
		return nil, fmt.Errorf("unwrap keyring: %w", ErrCorrupt)
	}
	root, err := rootAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	ah, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(w.AEAD)), root, adAEADKeyset)
	if err != nil {
		return nil, ErrWrongRootKey
	}
	ph, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(w.PRF)), root, adPRFKeyset)
	if err != nil {
		return nil, ErrWrongRootKey
	}
	return assemble(ah, ph, w.Terms)
}

func rootAEAD(rootKey []byte) (tink.AEAD, error) {
	if len(rootKey) != RootKeySize {
		return nil, fmt.Errorf("root key is %d bytes, want %d: %w", len(rootKey), RootKeySize, ErrWrongRootKey)
	}
	a, err := aeadsubtle.NewAESGCM(rootKey)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	return a, nil
}
