package commands

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
)

// randomMaxBytes caps sys/tools/random, as Vault does (128 KiB).
const randomMaxBytes = 128 * 1024

// random serves sys/tools/random[/:source][/:bytes]: bytes from the platform's CSPRNG. "seal"
// and "all" are accepted as Vault accepts them without entropy augmentation: Ledger's seal is
// Shamir, so both mean the platform source (with Vault's warning for "seal").
func (s *sysBackend) random(req *engines.Request, rest string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	n, err := engines.Int(req.Data, "bytes", 32)
	if err != nil {
		return nil, err
	}
	source, err := engines.String(req.Data, "source", "platform")
	if err != nil {
		return nil, err
	}
	segs := strings.Split(rest, "/")
	if rest == "" {
		segs = nil
	}
	switch len(segs) {
	case 0:
	case 1: // either a source or a byte count, as Vault reads it
		if validRandomSource(segs[0]) {
			source = segs[0]
		} else if n, err = strconv.Atoi(segs[0]); err != nil {
			return nil, engines.BadRequest("error parsing url-set byte count: %q is not a number or a source (platform, seal, all)", segs[0])
		}
	case 2:
		source = segs[0]
		if n, err = strconv.Atoi(segs[1]); err != nil {
			return nil, engines.BadRequest("error parsing url-set byte count: %q is not a number", segs[1])
		}
	default:
		return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/tools/random/"+rest)
	}
	format, err := engines.String(req.Data, "format", "base64")
	if err != nil {
		return nil, err
	}
	switch {
	case n < 1:
		return nil, engines.BadRequest("'bytes' cannot be less than 1")
	case n > randomMaxBytes:
		return nil, engines.BadRequest("'bytes' should be less than %d", randomMaxBytes)
	case format != "hex" && format != "base64":
		return nil, engines.BadRequest("unsupported encoding format %q; must be \"hex\" or \"base64\"", format)
	case !validRandomSource(source):
		return nil, engines.BadRequest("unsupported entropy source %q; must be \"platform\" or \"seal\", or \"all\"", source)
	}
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	resp := &engines.Response{Data: map[string]any{"random_bytes": encode(format, b)}}
	if source == "seal" {
		resp.Warnings = []string{"no seal/entropy augmentation available, using platform entropy source"}
	}
	return resp, nil
}

func validRandomSource(s string) bool {
	return s == "" || s == "platform" || s == "seal" || s == "all"
}

func encode(format string, b []byte) string {
	if format == "hex" {
		return hex.EncodeToString(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// hashes are the algorithms of sys/tools/hash, by Vault's names.
var hashes = map[string]func() hash.Hash{
	"sha2-224": sha256.New224,
	"sha2-256": sha256.New,
	"sha2-384": sha512.New384,
	"sha2-512": sha512.New,
	"sha3-224": func() hash.Hash { return sha3.New224() },
	"sha3-256": func() hash.Hash { return sha3.New256() },
	"sha3-384": func() hash.Hash { return sha3.New384() },
	"sha3-512": func() hash.Hash { return sha3.New512() },
}

// hash serves sys/tools/hash[/:algorithm]: the digest of base64 input.
func (s *sysBackend) hash(req *engines.Request, urlAlgorithm string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	in, err := engines.String(req.Data, "input", "")
	if err != nil {
		return nil, err
	}
	format, err := engines.String(req.Data, "format", "hex")
	if err != nil {
		return nil, err
	}
	algorithm := urlAlgorithm
	if algorithm == "" {
		if algorithm, err = engines.String(req.Data, "algorithm", "sha2-256"); err != nil {
			return nil, err
		}
	}
	input, err := base64.StdEncoding.DecodeString(in)
	if err != nil {
		return nil, engines.BadRequest("unable to decode input as base64: the field \"input\" must be standard base64")
	}
	if format != "hex" && format != "base64" {
		return nil, engines.BadRequest("unsupported encoding format %q; must be \"hex\" or \"base64\"", format)
	}
	newHash, ok := hashes[algorithm]
	if !ok {
		return nil, engines.BadRequest("unsupported algorithm %q; use sha2-224, sha2-256, sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512", algorithm)
	}
	h := newHash()
	h.Write(input)
	return &engines.Response{Data: map[string]any{"sum": encode(format, h.Sum(nil))}}, nil
}
