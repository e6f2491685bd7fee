package userpass

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for new hashes: OWASP's second recommended setting (19 MiB, two passes,
// one lane), chosen over the 64 MiB / one pass setting so that concurrent logins stay
// affordable on a two-core node. They are stored with each hash, so raising them later does not
// break existing users (their next password change re-hashes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Bounds on the parameters read back from a stored hash, so that a damaged or hostile entry
// cannot make one verification take gigabytes or minutes.
const (
	maxArgonMemory = 1 << 20 // KiB: 1 GiB
	maxArgonTime   = 16
	maxArgonLanes  = 16
)

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC string of a fresh argon2id hash of pw.
func hashPassword(pw []byte) string {
	salt := make([]byte, argonSaltLen)
	// crypto/rand.Read never fails (it aborts the program if the kernel's generator does).
	_, _ = rand.Read(salt)
	key := argon2.IDKey(pw, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	defer clear(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// phc is a parsed argon2id hash.
type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parsePHC(s string) (phc, bool) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return phc{}, false
	}
	var (
		p       phc
		threads uint32
	)
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 {
		return phc{}, false
	}
	if p.memory < 8 || p.memory > maxArgonMemory || p.time < 1 || p.time > maxArgonTime || threads < 1 || threads > maxArgonLanes {
		return phc{}, false
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return phc{}, false
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return phc{}, false
	}
	return p, true
}

// verify reports whether pw matches the stored hash, comparing in constant time. An entry that
// does not parse matches nothing.
func verify(stored string, pw []byte) bool {
	p, ok := parsePHC(stored)
	if !ok {
		return false
	}
	key := argon2.IDKey(pw, p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	defer clear(key)
	return subtle.ConstantTimeCompare(key, p.key) == 1
}

// hashSlot bounds the argon2 computations running at once (each holds its memory cost, 19 MiB,
// for its duration), so a burst of logins queues instead of exhausting memory.
func (b *Backend) hashSlot(ctx context.Context) (release func(), err error) {
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dummyHash is a hash of a random password with the current parameters, which logins of
// unknown users verify against so that they cost what a known user's login costs.
func (b *Backend) dummyHash() string {
	b.dummyOnce.Do(func() {
		pw := make([]byte, 32)
		_, _ = rand.Read(pw)
		b.dummy = hashPassword(pw)
		clear(pw)
	})
	return b.dummy
}
