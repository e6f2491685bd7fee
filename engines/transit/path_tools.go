package transit

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"strconv"

	"github.com/tink-crypto/tink-go/v2/subtle/random"

	"github.com/ledger-secrets/ledger/engines"
)

const randomMaxBytes = 128 * 1024

func validSource(s string) bool {
	switch s {
	case "", "platform", "seal", "all":
		return true
	}
	return false
}

// random is random[/:source][/:bytes], parsed as Vault does so that operators can write ACLs on
// both the source and the byte count.
func (b *Backend) random(req *engines.Request, r route) (*engines.Response, error) {
	source := "platform"
	n, err := engines.Int(req.Data, "bytes", 32)
	if err != nil {
		return nil, err
	}
	switch len(r.args) {
	case 1:
		if validSource(r.args[0]) {
			source = r.args[0]
		} else if n, err = strconv.Atoi(r.args[0]); err != nil {
			return nil, engines.BadRequest("error parsing url-set byte count: %s", err)
		}
	case 2:
		source = r.args[0]
		if n, err = strconv.Atoi(r.args[1]); err != nil {
			return nil, engines.BadRequest("error parsing url-set byte count: %s", err)
		}
	}
	format, err := engines.String(req.Data, "format", "base64")
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, engines.BadRequest(`"bytes" cannot be less than 1`)
	}
	if n > randomMaxBytes {
		return nil, engines.BadRequest(`"bytes" should be less than %d`, randomMaxBytes)
	}
	if format != "hex" && format != "base64" {
		return nil, engines.BadRequest(`unsupported encoding format %q; must be "hex" or "base64"`, format)
	}
	var warnings []string
	switch source {
	case "", "platform", "all":
	case "seal":
		warnings = append(warnings, "no seal/entropy augmentation available, using platform entropy source")
	default:
		return nil, engines.BadRequest(`unsupported entropy source %q; must be "platform" or "seal", or "all"`, source)
	}
	raw := random.GetRandomBytes(uint32(n))
	out := base64.StdEncoding.EncodeToString(raw)
	if format == "hex" {
		out = hex.EncodeToString(raw)
	}
	return &engines.Response{Data: map[string]any{"random_bytes": out}, Warnings: warnings}, nil
}

// hash is hash[/:algorithm]: a digest of the input, hex (default) or base64.
func (b *Backend) hash(req *engines.Request, r route) (*engines.Response, error) {
	in, err := engines.String(req.Data, "input", "")
	if err != nil {
		return nil, err
	}
	format, err := engines.String(req.Data, "format", "hex")
	if err != nil {
		return nil, err
	}
	alg := ""
	if len(r.args) > 0 {
		alg = r.args[0]
	}
	if alg == "" {
		if alg, err = engines.String(req.Data, "algorithm", "sha2-256"); err != nil {
			return nil, err
		}
	}
	input, err := base64.StdEncoding.DecodeString(in)
	if err != nil {
		return nil, engines.BadRequest("unable to decode input as base64: %s", err)
	}
	if format != "hex" && format != "base64" {
		return nil, engines.BadRequest(`unsupported encoding format %s; must be "hex" or "base64"`, format)
	}
	h, ok := hashes[alg]
	if !ok || h == crypto.SHA1 {
		return nil, engines.BadRequest("unsupported algorithm %s", alg)
	}
	sum := digest(h, input)
	out := hex.EncodeToString(sum)
	if format == "base64" {
		out = base64.StdEncoding.EncodeToString(sum)
	}
	return &engines.Response{Data: map[string]any{"sum": out}}, nil
}
