package kv

import (
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/ledger-secrets/ledger/projections"
)

// numbered is a KV v2 version with its number, as the view keeps it: one per secret version, so
// at a million secrets every byte here is a megabyte. Against a Version it keeps its two times
// as seconds and nanoseconds (24 bytes instead of 48) and its data-key id split (keyID): 96
// bytes and no separate id string, where a Version and its id took 112 + 80.
type numbered struct {
	n                         uint64
	createdSec, deletionSec   int64
	createdNsec, deletionNsec uint32
	sealed                    []byte
	// The key's fields, laid out here rather than as a keyID so the two flags share a word.
	keyPre    string
	keyRnd    [16]byte
	keyHex    bool
	destroyed bool
}

func (s *secret) created() time.Time     { return projections.UnpackTime(s.createdSec, s.createdNsec) }
func (s *secret) updated() time.Time     { return projections.UnpackTime(s.updatedSec, s.updatedNsec) }
func (s *secret) setCreated(t time.Time) { s.createdSec, s.createdNsec = projections.PackTime(t) }
func (s *secret) setUpdated(t time.Time) { s.updatedSec, s.updatedNsec = projections.PackTime(t) }

// newNumbered keeps version n of ms's secret.
func (ms *mountState) newNumbered(n uint64, v Version) numbered {
	x := numbered{n: n, destroyed: v.Destroyed, sealed: v.Sealed}
	x.setKey(ms.keyID(v.KeyID))
	x.createdSec, x.createdNsec = projections.PackTime(v.Created)
	x.deletionSec, x.deletionNsec = projections.PackTime(v.Deletion)
	return x
}

// version is the Version callers get (the id string is built here).
func (x *numbered) version() Version {
	return Version{Created: x.created(), Deletion: x.deletion(), Destroyed: x.destroyed, KeyID: x.key().String(), Sealed: x.sealed}
}

func (x *numbered) created() time.Time  { return projections.UnpackTime(x.createdSec, x.createdNsec) }
func (x *numbered) deletion() time.Time { return projections.UnpackTime(x.deletionSec, x.deletionNsec) }

func (x *numbered) setDeletion(t time.Time) { x.deletionSec, x.deletionNsec = projections.PackTime(t) }

// destroy drops the version's value and key reference.
func (x *numbered) destroy() {
	x.destroyed, x.sealed = true, nil
	x.setKey(keyID{})
}

func (x *numbered) key() keyID { return keyID{pre: x.keyPre, rnd: x.keyRnd, hex: x.keyHex} }

func (x *numbered) setKey(k keyID) { x.keyPre, x.keyRnd, x.keyHex = k.pre, k.rnd, k.hex }

// appendTo encodes the version as appendVersion encodes a Version, byte for byte.
func (x *numbered) appendTo(b []byte) []byte {
	b = projections.AppendTime(projections.AppendTime(b, x.created()), x.deletion())
	b = x.key().appendTo(projections.AppendBool(b, x.destroyed))
	return projections.AppendBytes(b, x.sealed)
}

// encodedLen is the length appendTo adds.
func (x *numbered) encodedLen() int {
	n := x.key().len()
	return projections.TimeLen(x.created()) + projections.TimeLen(x.deletion()) + 1 + projections.UvarintLen(uint64(n)) + n +
		projections.UvarintLen(uint64(len(x.sealed))) + len(x.sealed)
}

// keyID is a data-key id as the view keeps it. The ids the KV engine makes are a prefix naming
// the mount, a dot and 32 lowercase hex digits (16 random bytes): the prefix is shared by the
// mount's versions and the random part kept as bytes. Any other id (an earlier build's,
// another engine's) is kept whole in pre.
type keyID struct {
	pre string
	rnd [16]byte
	hex bool // the id is pre + "." + hex(rnd); otherwise pre is the whole id
}

// keyID splits id, sharing its prefix with the mount's other ids.
func (ms *mountState) keyID(id string) keyID { return splitKeyID(ms, id) }

// splitKeyID is keyID for an id as a string or as bytes (a snapshot's, not copied first).
func splitKeyID[T string | []byte](ms *mountState, id T) keyID {
	i := lastDot(id)
	if i <= 0 || len(id)-i-1 != 2*len(keyID{}.rnd) {
		return keyID{pre: string(id)}
	}
	// Checked and decoded in one pass (a restore does this for every version it reads).
	k := keyID{hex: true}
	for j := range k.rnd {
		hi, lo := lowerHexValue[id[i+1+2*j]], lowerHexValue[id[i+2+2*j]]
		if hi|lo > 0xf {
			return keyID{pre: string(id)}
		}
		k.rnd[j] = hi<<4 | lo
	}
	if p, ok := ms.prefixes[string(id[:i])]; ok {
		k.pre = p
	} else {
		k.pre = string(id[:i])
		ms.prefixes[k.pre] = k.pre
	}
	return k
}

func lastDot[T string | []byte](s T) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// lowerHexValue maps a lowercase hex digit to its value and every other byte to 0xff.
var lowerHexValue = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = byte(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// String is the id ("" for none).
func (k keyID) String() string {
	if !k.hex {
		return k.pre
	}
	return string(k.appendRaw(make([]byte, 0, k.len())))
}

// is reports whether k is id (k.String() == id) without building k's string.
func (k keyID) is(id string) bool {
	if !k.hex {
		return k.pre == id
	}
	if len(id) != k.len() || id[len(k.pre)] != '.' || id[:len(k.pre)] != k.pre {
		return false
	}
	const digits = "0123456789abcdef"
	h := id[len(k.pre)+1:]
	for j, b := range k.rnd {
		if h[2*j] != digits[b>>4] || h[2*j+1] != digits[b&0x0f] {
			return false
		}
	}
	return true
}

func (k keyID) appendRaw(b []byte) []byte {
	if !k.hex {
		return append(b, k.pre...)
	}
	return hex.AppendEncode(append(append(b, k.pre...), '.'), k.rnd[:])
}

// len is the id's length.
func (k keyID) len() int {
	if k.hex {
		return len(k.pre) + 1 + 2*len(k.rnd)
	}
	return len(k.pre)
}

// appendTo appends the id as projections.AppendString does, without building the string.
func (k keyID) appendTo(b []byte) []byte {
	return k.appendRaw(binary.AppendUvarint(b, uint64(k.len())))
}
