package transit

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// hashName picks the hash of sign, verify and hmac: the URL segment, else hash_algorithm, else
// the deprecated algorithm, else sha2-256.
func hashName(req *engines.Request, r route) (string, error) {
	if len(r.args) > 0 && r.args[0] != "" {
		return r.args[0], nil
	}
	for _, field := range []string{"hash_algorithm", "algorithm"} {
		s, err := engines.String(req.Data, field, "")
		if err != nil || s != "" {
			return s, err
		}
	}
	return "sha2-256", nil
}

func hashAlgorithm(req *engines.Request, r route) (crypto.Hash, error) {
	name, err := hashName(req, r)
	if err != nil {
		return 0, err
	}
	h, ok := hashes[name]
	if !ok {
		return 0, engines.BadRequest("invalid hash algorithm %q", name)
	}
	return h, nil
}

// macAlgorithm is hashAlgorithm with the hmac endpoint's message.
func macAlgorithm(req *engines.Request, r route) (crypto.Hash, error) {
	name, err := hashName(req, r)
	if err != nil {
		return 0, err
	}
	h, ok := hashes[name]
	if !ok {
		return 0, engines.BadRequest("unsupported algorithm %s", name)
	}
	return h, nil
}

// signOptions reads the parameters shared by sign and verify.
func signOptions(req *engines.Request, r route, k transitview.Key) (signOpts, error) {
	var o signOpts
	var err error
	if o.hash, err = hashAlgorithm(req, r); err != nil {
		return o, err
	}
	m, err := engines.String(req.Data, "marshaling_algorithm", "asn1")
	if err != nil {
		return o, err
	}
	switch m {
	case "asn1", "":
	case "jws":
		o.jws = true
	default:
		return o, engines.BadRequest("invalid marshaling type %q", m)
	}
	if o.prehashed, err = engines.Bool(req.Data, "prehashed", false); err != nil {
		return o, err
	}
	if isRSA(k.Type) {
		alg, err := engines.String(req.Data, "signature_algorithm", "pss")
		if err != nil {
			return o, err
		}
		switch alg {
		case "pss", "":
			o.pss = true
		case "pkcs1v15":
		default:
			return o, engines.BadRequest("unsupported rsa signature algorithm %s", alg)
		}
		salt, err := engines.String(req.Data, "salt_length", "auto")
		if err != nil {
			return o, err
		}
		switch strings.ToLower(salt) {
		case "auto", "":
			o.saltLength = rsa.PSSSaltLengthAuto
		case "hash":
			o.saltLength = rsa.PSSSaltLengthEqualsHash
		default:
			n, err := strconv.Atoi(salt)
			if err != nil {
				return o, engines.BadRequest("salt length neither 'auto', 'hash', nor an int: %s", salt)
			}
			if n < rsa.PSSSaltLengthEqualsHash {
				return o, engines.BadRequest("salt length is invalid: %d", n)
			}
			o.saltLength = n
		}
	}
	return o, nil
}

// signingVersion resolves sign's key_version as Vault does.
func signingVersion(k transitview.Key, requested int) (int, error) {
	switch {
	case requested == 0:
		return k.LatestVersion, nil
	case requested < 0:
		return 0, engines.BadRequest("requested version for signing is negative")
	case requested > k.LatestVersion:
		return 0, engines.BadRequest("requested version for signing is higher than the latest key version")
	case k.Config.MinEncryptionVersion > 0 && requested < k.Config.MinEncryptionVersion:
		return 0, engines.BadRequest("requested version for signing is less than the minimum encryption key version")
	}
	if _, ok := k.Versions[requested]; !ok {
		return 0, engines.BadRequest("requested version for signing is less than the minimum encryption key version")
	}
	return requested, nil
}

// signItems reads sign/verify items: batch_input entries, or the top-level fields (a missing
// input is then the empty input, as in Vault).
func signItems(data map[string]any, fields ...string) ([]map[string]string, bool, error) {
	batch, isBatch, err := batchInput(data)
	if err != nil {
		return nil, isBatch, err
	}
	if !isBatch {
		batch = []map[string]any{data}
	}
	out := make([]map[string]string, len(batch))
	for i, m := range batch {
		out[i] = map[string]string{}
		for _, f := range fields {
			s, has, err := itemString(m, i, f)
			if err != nil {
				if !isBatch {
					return nil, false, engines.BadRequest("field %q: expected a string", f)
				}
				return nil, true, err
			}
			if has || (!isBatch && f == "input") {
				out[i][f] = s
			}
		}
	}
	return out, isBatch, nil
}

func (b *Backend) sign(req *engines.Request, r route) (*engines.Response, error) {
	k, err := b.lookup(r.name, "signing key not found")
	if err != nil {
		return nil, err
	}
	o, err := signOptions(req, r, k)
	if err != nil {
		return nil, err
	}
	if !keyTypes[k.Type].sign {
		return nil, engines.BadRequest("key type %v does not support signing", k.Type)
	}
	requested, err := engines.Int(req.Data, "key_version", 0)
	if err != nil {
		return nil, err
	}
	its, isBatch, err := signItems(req.Data, "input", "context", "reference")
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(its))
	for i, it := range its {
		res := map[string]any{}
		if isBatch {
			res["reference"] = it["reference"]
		}
		results[i] = res
		s, ver, err := b.signOne(k, requested, it, o)
		if err != nil {
			msg, ok := message(err)
			if !ok {
				return nil, err
			}
			if !isBatch {
				return nil, engines.BadRequest("%s", msg)
			}
			res["error"] = msg
			continue
		}
		res["signature"], res["key_version"] = s.sig, ver
		if len(s.publicKey) > 0 {
			if isBatch {
				res["publickey"] = base64.StdEncoding.EncodeToString(s.publicKey)
			} else {
				res["public_key"] = base64.StdEncoding.EncodeToString(s.publicKey)
			}
		}
	}
	if !isBatch {
		return &engines.Response{Data: results[0]}, nil
	}
	list := make([]any, len(results))
	for i := range results {
		list[i] = results[i]
	}
	return &engines.Response{Data: map[string]any{"batch_results": list}}, nil
}

func (b *Backend) signOne(k transitview.Key, requested int, it map[string]string, o signOpts) (signed, int, error) {
	raw, ok := it["input"]
	if !ok {
		return signed{}, 0, engines.BadRequest("missing input")
	}
	input, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return signed{}, 0, engines.BadRequest("unable to decode input: %s", err)
	}
	var context []byte
	if c := it["context"]; c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return signed{}, 0, engines.BadRequest("failed to base64-decode context")
		}
	}
	ver, err := signingVersion(k, requested)
	if err != nil {
		return signed{}, 0, err
	}
	s, err := b.signItem(k, ver, context, input, o)
	return s, ver, err
}

// verify is verify/:name[/:hash_algorithm], for signatures and, with "hmac", for HMACs.
func (b *Backend) verify(req *engines.Request, r route) (*engines.Response, error) {
	its, isBatch, err := signItems(req.Data, "input", "context", "signature", "hmac", "reference")
	if err != nil {
		return nil, err
	}
	sigFound, hmacFound, missing := false, false, false
	for _, it := range its {
		_, s := it["signature"]
		_, h := it["hmac"]
		switch {
		case s:
			sigFound = true
		case h:
			hmacFound = true
		default:
			missing = true
		}
		if s && h && !isBatch {
			return nil, engines.BadRequest("provide one of 'signature' or 'hmac'")
		}
	}
	switch {
	case !isBatch && !sigFound && !hmacFound:
		return nil, engines.BadRequest("missing one of 'signature' or 'hmac' arguments to verify")
	case sigFound && hmacFound:
		return nil, engines.BadRequest("elements of batch_input must all provide either 'signature' or 'hmac'")
	case missing && sigFound:
		return nil, engines.BadRequest("some elements of batch_input are missing 'signature'")
	case missing && hmacFound:
		return nil, engines.BadRequest("some elements of batch_input are missing 'hmac'")
	case missing:
		return nil, engines.BadRequest("no batch_input elements have 'signature' or 'hmac'")
	case hmacFound:
		return b.hmacVerify(req, r, its, isBatch)
	}

	k, err := b.lookup(r.name, "signature verification key not found")
	if err != nil {
		return nil, err
	}
	o, err := signOptions(req, r, k)
	if err != nil {
		return nil, err
	}
	if !keyTypes[k.Type].sign {
		return nil, engines.BadRequest("key type %v does not support verification", k.Type)
	}
	return verifyResults(its, isBatch, func(it map[string]string) (bool, error) {
		input, err := base64.StdEncoding.DecodeString(it["input"])
		if err != nil {
			return false, engines.BadRequest("failed to parse item: unable to decode input: %s", err)
		}
		var context []byte
		if c := it["context"]; c != "" {
			if context, err = base64.StdEncoding.DecodeString(c); err != nil {
				return false, engines.BadRequest("failed to parse item: failed to base64-decode context")
			}
		}
		return b.verifyItem(k, it["signature"], context, input, o)
	})
}

// verifyResults runs check over the items: valid per item, user errors per item in a batch
// (HTTP 200, as Vault's verify) or as the request's error for a single item.
func verifyResults(its []map[string]string, isBatch bool, check func(map[string]string) (bool, error)) (*engines.Response, error) {
	list := make([]any, len(its))
	for i, it := range its {
		res := map[string]any{"valid": false}
		if isBatch {
			res["reference"] = it["reference"]
		}
		list[i] = res
		valid, err := check(it)
		if err != nil {
			msg, ok := message(err)
			if !ok {
				return nil, err
			}
			if !isBatch {
				return nil, engines.BadRequest("%s", msg)
			}
			res["error"] = msg
			continue
		}
		res["valid"] = valid
	}
	if !isBatch {
		return &engines.Response{Data: map[string]any{"valid": list[0].(map[string]any)["valid"]}}, nil
	}
	return &engines.Response{Data: map[string]any{"batch_results": list}}, nil
}
