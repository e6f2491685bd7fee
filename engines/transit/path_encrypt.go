package transit

import (
	"encoding/base64"

	"github.com/tink-crypto/tink-go/v2/subtle/random"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// item is one unit of an encrypt, decrypt or rewrap request: the single-value fields or one
// batch_input entry.
type item struct {
	value      string // plaintext (encrypt) or ciphertext (decrypt, rewrap)
	context    string
	nonce      string
	ad         string // associated_data
	reference  string
	keyVersion int
}

// items reads the request's batch_input, or its top-level fields as a single item. valueKey is
// "plaintext" or "ciphertext"; a missing value is Vault's whole-request error.
func items(data map[string]any, valueKey, missing string) ([]item, bool, error) {
	batch, isBatch, err := batchInput(data)
	if err != nil {
		return nil, isBatch, err
	}
	if !isBatch {
		if !engines.Has(data, valueKey) || (valueKey == "ciphertext" && data[valueKey] == "") {
			return nil, false, engines.BadRequest("%s", missing)
		}
		it := item{}
		for _, f := range []struct {
			key string
			dst *string
		}{{valueKey, &it.value}, {"context", &it.context}, {"nonce", &it.nonce}, {"associated_data", &it.ad}} {
			if *f.dst, err = engines.String(data, f.key, ""); err != nil {
				return nil, false, err
			}
		}
		if it.keyVersion, err = engines.Int(data, "key_version", 0); err != nil {
			return nil, false, err
		}
		return []item{it}, false, nil
	}
	out := make([]item, len(batch))
	for i, m := range batch {
		it := &out[i]
		var has bool
		if it.value, has, err = itemString(m, i, valueKey); err != nil {
			return nil, true, err
		}
		if !has {
			return nil, true, engines.BadRequest("'[%d].%s' %s", i, valueKey, missing)
		}
		for _, f := range []struct {
			key string
			dst *string
		}{{"context", &it.context}, {"nonce", &it.nonce}, {"associated_data", &it.ad}, {"reference", &it.reference}} {
			if *f.dst, _, err = itemString(m, i, f.key); err != nil {
				return nil, true, err
			}
		}
		if it.keyVersion, err = engines.Int(m, "key_version", 0); err != nil {
			return nil, true, engines.BadRequest("'[%d].key_version' expected type 'int'", i)
		}
	}
	// Vault derives `derived` for an upsert from the presence of a context, so it must be
	// consistent across the batch.
	withContext := out[0].context != ""
	for _, it := range out {
		if (it.context != "") != withContext {
			return nil, isBatch, engines.BadRequest("context should be set either in all the request blocks or in none")
		}
	}
	return out, true, nil
}

// decoded is an item's base64 fields, decoded.
type decoded struct {
	context, ad []byte
	nonce       bool
}

func decodeItem(it item) (decoded, error) {
	var d decoded
	var err error
	if it.context != "" {
		if d.context, err = base64.StdEncoding.DecodeString(it.context); err != nil {
			return d, engines.BadRequest("%s", err.Error())
		}
	}
	if it.ad != "" {
		if d.ad, err = base64.StdEncoding.DecodeString(it.ad); err != nil {
			return d, engines.BadRequest("unable to decode associated_data as base64: %s", err)
		}
	}
	if it.nonce != "" {
		if _, err = base64.StdEncoding.DecodeString(it.nonce); err != nil {
			return d, engines.BadRequest("%s", err.Error())
		}
		d.nonce = true
	}
	return d, nil
}

// batchOutcome tracks a batch for Vault's status rule on encrypt and decrypt: any user error
// makes the response a 400 (with the batch_results body), unless some items succeeded and the
// request names a partial_failure_response_code. Vault's rewrap keeps 200 (noStatus).
type batchOutcome struct {
	successes, failures bool
	noStatus            bool
}

func (o *batchOutcome) fail(results []map[string]any, i int, err error) error {
	msg, ok := message(err)
	if !ok {
		return err // internal: the whole request fails with a 500
	}
	results[i]["error"] = msg
	o.failures = true
	return nil
}

// respond builds the response of a batch or single-item request.
func (o batchOutcome) respond(req *engines.Request, isBatch bool, results []map[string]any, single func(map[string]any) map[string]any) (*engines.Response, error) {
	if !isBatch {
		if msg, ok := results[0]["error"].(string); ok {
			return nil, engines.BadRequest("%s", msg)
		}
		return &engines.Response{Data: single(results[0])}, nil
	}
	list := make([]any, len(results))
	for i, r := range results {
		list[i] = r
	}
	resp := &engines.Response{Data: map[string]any{"batch_results": list}}
	if o.failures && !o.noStatus {
		resp.Status = 400
		if o.successes && engines.Has(req.Data, "partial_failure_response_code") {
			code, err := engines.Int(req.Data, "partial_failure_response_code", 0)
			if err == nil && code >= 1 && code <= 599 {
				resp.Status = code
			} else {
				resp.Warnings = append(resp.Warnings, "invalid HTTP response code override from partial_failure_response_code, reverting to 400")
			}
		}
	}
	return resp, nil
}

func newResults(its []item, isBatch bool) []map[string]any {
	results := make([]map[string]any, len(its))
	for i := range results {
		results[i] = map[string]any{}
		if isBatch {
			results[i]["reference"] = its[i].reference
		}
	}
	return results
}

// upsertTypes are the types encrypt may create: the symmetric ones.
var upsertTypes = map[string]bool{typeAES128: true, typeAES256: true, typeChaCha20: true}

func (b *Backend) encrypt(req *engines.Request, name string) (*engines.Response, error) {
	its, isBatch, err := items(req.Data, "plaintext", "missing plaintext to encrypt")
	if err != nil {
		return nil, err
	}
	var events []ledger.Event
	var warnings []string
	k, exists := b.view.Get(b.mount.UUID, name)
	switch {
	case !exists && req.Op != engines.OpCreate:
		return nil, engines.BadRequest("encryption key not found")
	case !exists:
		// Upsert, as Vault does when the caller holds "create": derived when a context is given.
		s := keySpec{createdAt: req.Now, derived: its[0].context != ""}
		if s.typ, err = engines.String(req.Data, "type", typeAES256); err != nil {
			return nil, err
		}
		if s.convergent, err = engines.Bool(req.Data, "convergent_encryption", false); err != nil {
			return nil, err
		}
		if s.convergent && !s.derived {
			return nil, engines.BadRequest("convergent encryption requires derivation to be enabled, so context is required")
		}
		if _, known := keyTypes[s.typ]; !known {
			return nil, engines.BadRequest("unknown key type %v", s.typ)
		}
		if !upsertTypes[s.typ] {
			return nil, engines.BadRequest("key type %v not supported for this operation", s.typ)
		}
		if k, err = newKey(name, s); err != nil {
			return nil, err
		}
		ev, err := b.event(req, transitview.KeyCreated, name, transitview.KeyPayload{Mount: b.mount.UUID, Name: name, Key: k})
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	case req.Op == engines.OpCreate:
		warnings = append(warnings, "Attempted creation of the key during the encrypt operation, but it was created beforehand")
	}

	results := newResults(its, isBatch)
	var o batchOutcome
	for i, it := range its {
		ct, ver, err := b.encryptOne(k, it)
		if err != nil {
			if err := o.fail(results, i, err); err != nil {
				return nil, err
			}
			continue
		}
		o.successes = true
		results[i]["ciphertext"], results[i]["key_version"] = ct, ver
	}
	resp, err := o.respond(req, isBatch, results, func(r map[string]any) map[string]any {
		return map[string]any{"ciphertext": r["ciphertext"], "key_version": r["key_version"]}
	})
	if err != nil {
		return nil, err
	}
	resp.Events = events
	resp.Warnings = append(warnings, resp.Warnings...)
	return resp, nil
}

// encryptOne encrypts one item whose value is base64 plaintext.
func (b *Backend) encryptOne(k transitview.Key, it item) (string, int, error) {
	pt, err := base64.StdEncoding.DecodeString(it.value)
	if err != nil {
		return "", 0, engines.BadRequest("%s", err.Error()) // position only, never the value
	}
	defer clear(pt)
	return b.sealDecoded(k, it, pt)
}

// sealDecoded encrypts plaintext for an item (its context, associated data and key version).
func (b *Backend) sealDecoded(k transitview.Key, it item, pt []byte) (string, int, error) {
	d, err := decodeItem(it)
	if err != nil {
		return "", 0, err
	}
	if d.nonce {
		return "", 0, errNonceNotAllowed
	}
	if !keyTypes[k.Type].encrypt {
		return "", 0, engines.BadRequest("message encryption not supported for key type %s", k.Type)
	}
	ver, err := encryptionVersion(k, it.keyVersion)
	if err != nil {
		return "", 0, err
	}
	ct, err := b.sealItem(k, ver, d.context, pt, d.ad)
	if err != nil {
		return "", 0, err
	}
	return ct, ver, nil
}

func (b *Backend) decrypt(req *engines.Request, name string) (*engines.Response, error) {
	its, isBatch, err := items(req.Data, "ciphertext", "missing ciphertext to decrypt")
	if err != nil {
		return nil, err
	}
	k, err := b.lookup(name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	results := newResults(its, isBatch)
	var o batchOutcome
	for i, it := range its {
		pt, err := b.decryptOne(k, it)
		if err != nil {
			if err := o.fail(results, i, err); err != nil {
				return nil, err
			}
			continue
		}
		o.successes = true
		results[i]["plaintext"] = base64.StdEncoding.EncodeToString(pt)
		clear(pt)
	}
	return o.respond(req, isBatch, results, func(r map[string]any) map[string]any {
		return map[string]any{"plaintext": r["plaintext"]}
	})
}

func (b *Backend) decryptOne(k transitview.Key, it item) ([]byte, error) {
	if it.value == "" {
		return nil, engines.BadRequest("missing ciphertext to decrypt")
	}
	d, err := decodeItem(it)
	if err != nil {
		return nil, err
	}
	if d.nonce {
		return nil, errNonceNotAllowed
	}
	return b.openItem(k, it.value, d.context, d.ad)
}

func (b *Backend) rewrap(req *engines.Request, name string) (*engines.Response, error) {
	its, isBatch, err := items(req.Data, "ciphertext", "missing ciphertext to decrypt")
	if err != nil {
		return nil, err
	}
	k, err := b.lookup(name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	results := newResults(its, isBatch)
	o := batchOutcome{noStatus: true}
	for i, it := range its {
		ct, ver, err := b.rewrapOne(k, it)
		if err != nil {
			if err := o.fail(results, i, err); err != nil {
				return nil, err
			}
			continue
		}
		o.successes = true
		results[i]["ciphertext"], results[i]["key_version"] = ct, ver
	}
	return o.respond(req, isBatch, results, func(r map[string]any) map[string]any {
		return map[string]any{"ciphertext": r["ciphertext"], "key_version": r["key_version"]}
	})
}

// rewrapOne decrypts and re-encrypts under key_version (default: latest) without the plaintext
// ever leaving this function.
func (b *Backend) rewrapOne(k transitview.Key, it item) (string, int, error) {
	pt, err := b.decryptOne(k, it)
	if err != nil {
		return "", 0, err
	}
	defer clear(pt)
	return b.sealDecoded(k, it, pt)
}

// datakey is datakey/plaintext|wrapped/:name: a fresh random key, encrypted under the named key,
// with its plaintext only on the "plaintext" path, so policies can allow one and not the other.
func (b *Backend) datakey(req *engines.Request, r route) (*engines.Response, error) {
	plaintext := false
	switch r.args[0] {
	case "plaintext":
		plaintext = true
	case "wrapped":
	default:
		return nil, engines.BadRequest("Invalid path, must be 'plaintext' or 'wrapped'")
	}
	it := item{}
	var err error
	if it.context, err = engines.String(req.Data, "context", ""); err != nil {
		return nil, err
	}
	if it.nonce, err = engines.String(req.Data, "nonce", ""); err != nil {
		return nil, err
	}
	if it.keyVersion, err = engines.Int(req.Data, "key_version", 0); err != nil {
		return nil, err
	}
	if it.context != "" {
		if _, err := base64.StdEncoding.DecodeString(it.context); err != nil {
			return nil, engines.BadRequest("failed to base64-decode context")
		}
	}
	if it.nonce != "" {
		if _, err := base64.StdEncoding.DecodeString(it.nonce); err != nil {
			return nil, engines.BadRequest("failed to base64-decode nonce")
		}
	}
	k, err := b.lookup(r.name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	bits, err := engines.Int(req.Data, "bits", 256)
	if err != nil {
		return nil, err
	}
	switch bits {
	case 128, 256, 512:
	default:
		return nil, engines.BadRequest("invalid bit length")
	}
	key := random.GetRandomBytes(uint32(bits / 8))
	defer clear(key)
	ct, ver, err := b.sealDecoded(k, it, key)
	if err != nil {
		return nil, err
	}
	d := map[string]any{"ciphertext": ct, "key_version": ver}
	if plaintext {
		d["plaintext"] = base64.StdEncoding.EncodeToString(key)
	}
	return &engines.Response{Data: d}, nil
}
