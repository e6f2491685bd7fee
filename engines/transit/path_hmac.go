package transit

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// hmacKey returns the HMAC key of a version: the key itself for hmac keys, else the version's
// own HMAC key (every version of every type has one, as in Vault).
func hmacKey(k transitview.Key, ver int) []byte {
	v := k.Versions[ver]
	if k.Type == typeHMAC {
		return v.Key
	}
	return v.HMACKey
}

// hmac is hmac/:name[/:algorithm].
func (b *Backend) hmac(req *engines.Request, r route) (*engines.Response, error) {
	k, err := b.lookup(r.name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	h, err := macAlgorithm(req, r)
	if err != nil {
		return nil, err
	}
	ver, err := engines.Int(req.Data, "key_version", 0)
	if err != nil {
		return nil, err
	}
	switch {
	case ver == 0:
		ver = k.LatestVersion
	case ver > k.LatestVersion || ver < 0:
		return nil, engines.BadRequest("invalid key version")
	case k.Config.MinEncryptionVersion > 0 && ver < k.Config.MinEncryptionVersion:
		return nil, engines.BadRequest("cannot generate HMAC: version is too old (disallowed by policy)")
	}
	key := hmacKey(k, ver)
	if len(key) == 0 {
		return nil, engines.BadRequest("invalid key version")
	}
	its, isBatch, err := signItems(req.Data, "input", "reference")
	if err != nil {
		return nil, err
	}
	list := make([]any, len(its))
	for i, it := range its {
		res := map[string]any{}
		if isBatch {
			res["reference"] = it["reference"]
		}
		list[i] = res
		raw, ok := it["input"]
		if !ok {
			res["error"] = "missing input for HMAC"
			continue
		}
		input, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			msg := "unable to decode input as base64: " + err.Error()
			if !isBatch {
				return nil, engines.BadRequest("%s", msg)
			}
			res["error"] = msg
			continue
		}
		sum, err := hmacSum(h, key, input)
		if err != nil {
			return nil, err
		}
		res["hmac"] = format(ver, sum, base64.StdEncoding)
	}
	if !isBatch {
		return &engines.Response{Data: map[string]any{"hmac": list[0].(map[string]any)["hmac"]}}, nil
	}
	return &engines.Response{Data: map[string]any{"batch_results": list}}, nil
}

// hmacVerify is verify/:name with "hmac" instead of "signature".
func (b *Backend) hmacVerify(req *engines.Request, r route, its []map[string]string, isBatch bool) (*engines.Response, error) {
	h, err := macAlgorithm(req, r)
	if err != nil {
		return nil, err
	}
	k, err := b.lookup(r.name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	return verifyResults(its, isBatch, func(it map[string]string) (bool, error) {
		input, err := base64.StdEncoding.DecodeString(it["input"])
		if err != nil {
			return false, engines.BadRequest("unable to decode input as base64: %s", err)
		}
		rest, ok := strings.CutPrefix(it["hmac"], prefix)
		if !ok {
			return false, engines.BadRequest("invalid HMAC to verify: no prefix")
		}
		vs, payload, ok := strings.Cut(rest, ":")
		if !ok {
			return false, engines.BadRequest("invalid HMAC: wrong number of fields")
		}
		ver, err := strconv.Atoi(vs)
		if err != nil || ver < 0 || vs[0] == '+' {
			return false, engines.BadRequest("invalid HMAC: version number could not be decoded")
		}
		tag, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			return false, engines.BadRequest("unable to decode verification HMAC as base64: %s", err)
		}
		if ver > k.LatestVersion {
			return false, engines.BadRequest("invalid HMAC: version is too new")
		}
		if ver < k.Config.MinDecryptionVersion {
			return false, engines.BadRequest("cannot verify HMAC: version is too old (disallowed by policy)")
		}
		key := hmacKey(k, ver)
		if len(key) == 0 {
			return false, engines.BadRequest("cannot verify HMAC: version is too old (disallowed by policy)")
		}
		return hmacEqual(h, key, input, tag)
	})
}
