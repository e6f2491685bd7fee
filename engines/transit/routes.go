package transit

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*Backend)(nil)

func f(name, typ, desc string) engines.Field {
	return engines.Field{Name: name, Type: typ, Description: desc}
}

func pf(name, desc string) engines.Field {
	return engines.Field{Name: name, Type: "string", In: "path", Description: desc}
}

// Routes implements engines.Describer with Vault's transit paths.
func (b *Backend) Routes() []engines.Route { return routeTable }

// routeTable is built once; callers only read it.
var routeTable = buildRoutes()

func buildRoutes() []engines.Route {
	var (
		r   = []engines.Operation{engines.OpRead}
		u   = []engines.Operation{engines.OpUpdate}
		rud = []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}
	)
	name := pf("name", "Name of the key.")
	batch := f("batch_input", "[]object", "A list of items to process in one request; each item takes the single-item fields.")
	ref := f("reference", "string", "A value returned as is in the matching batch result.")
	pfrc := f("partial_failure_response_code", "int", "The status code of a batch in which some items failed (default 400).")
	ctx := f("context", "string", "Base64 context for key derivation; required for derived keys.")
	nonce := f("nonce", "string", "Base64 nonce for convergent encryption (version 1 keys only).")
	kv := f("key_version", "int", "The version of the key to use; 0 for the latest.")
	ad := f("associated_data", "string", "Base64 associated data for AEAD key types.")
	signFields := []engines.Field{name, pf("hash_algorithm", "The hash algorithm, as a path segment."),
		f("input", "string", "Base64 input to sign or verify."), kv, ctx, batch, ref,
		f("hash_algorithm", "string", "sha2-256 (default), sha2-224, sha2-384, sha2-512, sha3-*."),
		f("algorithm", "string", "Deprecated name of hash_algorithm."),
		f("prehashed", "bool", "The input is already hashed."),
		f("signature_algorithm", "string", "pss or pkcs1v15 for RSA keys."),
		f("marshaling_algorithm", "string", "asn1 (default) or jws for ECDSA keys."),
		f("salt_length", "string", "The PSS salt length: auto, hash or a number.")}
	verifyFields := append(append([]engines.Field{}, signFields...),
		f("signature", "string", "The signature to verify."), f("hmac", "string", "The HMAC to verify."))
	hmacFields := []engines.Field{name, pf("urlalgorithm", "The hash algorithm, as a path segment."),
		f("input", "string", "Base64 input to authenticate."), kv, batch, ref,
		f("algorithm", "string", "The hash algorithm (default sha2-256).")}
	return []engines.Route{
		{Pattern: "keys", Operations: []engines.Operation{engines.OpList}, Summary: "List the named keys."},
		{Pattern: "keys/{name}", Operations: rud, Summary: "Create, read or delete a named encryption key.",
			Fields: []engines.Field{name,
				f("type", "string", "The key type: aes256-gcm96 (default), aes128-gcm96, chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096, hmac."),
				f("derived", "bool", "Derive a key per context (the context field becomes required)."),
				f("convergent_encryption", "bool", "Same plaintext and context give the same ciphertext; requires derived."),
				f("exportable", "bool", "The key may be exported."),
				f("allow_plaintext_backup", "bool", "The key may be backed up in plaintext."),
				f("auto_rotate_period", "duration", "Rotate the key this often; 0 disables."),
				f("key_size", "int", "The size in bytes of an hmac key."),
				ctx}},
		{Pattern: "keys/{name}/config", Operations: u, Summary: "Configure a named key.",
			Fields: []engines.Field{name,
				f("min_decryption_version", "int", "The oldest version that may decrypt."),
				f("min_encryption_version", "int", "The oldest version that may encrypt; 0 for the latest."),
				f("deletion_allowed", "bool", "The key may be deleted."),
				f("exportable", "bool", "The key may be exported (cannot be turned off)."),
				f("allow_plaintext_backup", "bool", "The key may be backed up in plaintext (cannot be turned off)."),
				f("auto_rotate_period", "duration", "Rotate the key this often; 0 disables.")}},
		{Pattern: "keys/{name}/rotate", Operations: u, Summary: "Rotate a named key: a new version encrypts, old ones still decrypt.", Fields: []engines.Field{name}},
		{Pattern: "keys/{name}/trim", Operations: u, Summary: "Remove key versions older than min_available_version.",
			Fields: []engines.Field{name, f("min_available_version", "int", "The oldest version kept.")}},
		{Pattern: "encrypt/{name}", Operations: u, Summary: "Encrypt a plaintext with a named key (created on first use).",
			Fields: []engines.Field{name, f("plaintext", "string", "Base64 plaintext to encrypt."), ctx, nonce, kv, ad, batch, ref, pfrc,
				f("type", "string", "The type of key to create when it does not exist."),
				f("convergent_encryption", "bool", "Create the key with convergent encryption when it does not exist.")}},
		{Pattern: "decrypt/{name}", Operations: u, Summary: "Decrypt a ciphertext with a named key.",
			Fields: []engines.Field{name, f("ciphertext", "string", "The ciphertext (vault:vN:…)."), ctx, nonce, ad, batch, ref, pfrc}},
		{Pattern: "rewrap/{name}", Operations: u, Summary: "Re-encrypt a ciphertext with the latest (or a given) key version, without revealing the plaintext.",
			Fields: []engines.Field{name, f("ciphertext", "string", "The ciphertext (vault:vN:…)."), ctx, nonce, kv, batch, ref}},
		{Pattern: "datakey/{plaintext}/{name}", Operations: u, Summary: "Generate a data key, returned wrapped and, on the plaintext path, in the clear.",
			Fields: []engines.Field{name, pf("plaintext", "plaintext or wrapped."), ctx, nonce, kv,
				f("bits", "int", "The key size: 128, 256 (default) or 512.")}},
		{Pattern: "sign/{name}", Operations: u, Summary: "Sign an input with a named key.", Fields: signFields},
		{Pattern: "sign/{name}/{hash_algorithm}", Operations: u, Summary: "Sign an input with a named key and a hash algorithm.", Fields: signFields},
		{Pattern: "verify/{name}", Operations: u, Summary: "Verify a signature or HMAC.", Fields: verifyFields},
		{Pattern: "verify/{name}/{hash_algorithm}", Operations: u, Summary: "Verify a signature or HMAC with a hash algorithm.", Fields: verifyFields},
		{Pattern: "hmac/{name}", Operations: u, Summary: "The HMAC of an input under a named key.", Fields: hmacFields},
		{Pattern: "hmac/{name}/{urlalgorithm}", Operations: u, Summary: "The HMAC of an input under a named key with a hash algorithm.", Fields: hmacFields},
		{Pattern: "export/{type}/{name}", Operations: r, Summary: "Export every version of an exportable key.",
			Fields: []engines.Field{name, pf("type", "encryption-key, signing-key, hmac-key or public-key.")}},
		{Pattern: "export/{type}/{name}/{version}", Operations: r, Summary: "Export one version of an exportable key.",
			Fields: []engines.Field{name, pf("type", "encryption-key, signing-key, hmac-key or public-key."), pf("version", "The version, or latest.")}},
		{Pattern: "backup/{name}", Operations: r, Summary: "Back up a named key (allow_plaintext_backup and exportable required).", Fields: []engines.Field{name}},
		{Pattern: "restore", Operations: u, Summary: "Restore a key from a backup under its own name.",
			Fields: []engines.Field{f("backup", "string", "The backup, as returned by backup/:name."), f("force", "bool", "Overwrite an existing key.")}},
		{Pattern: "restore/{name}", Operations: u, Summary: "Restore a key from a backup under a new name.",
			Fields: []engines.Field{name, f("backup", "string", "The backup, as returned by backup/:name."), f("force", "bool", "Overwrite an existing key.")}},
		{Pattern: "random", Operations: u, Summary: "Random bytes.", Fields: randomFields()},
		{Pattern: "random/{urlbytes}", Operations: u, Summary: "Random bytes; the count (or source) as a path segment.", Fields: append(randomFields(), pf("urlbytes", "The number of bytes."))},
		{Pattern: "random/{source}/{urlbytes}", Operations: u, Summary: "Random bytes from a source.", Fields: append(randomFields(), pf("source", "platform, seal or all."), pf("urlbytes", "The number of bytes."))},
		{Pattern: "hash", Operations: u, Summary: "The hash of an input.", Fields: hashFields()},
		{Pattern: "hash/{urlalgorithm}", Operations: u, Summary: "The hash of an input with an algorithm.", Fields: append(hashFields(), pf("urlalgorithm", "The hash algorithm."))},
	}
}

func randomFields() []engines.Field {
	return []engines.Field{
		f("bytes", "int", "The number of bytes (default 32)."),
		f("format", "string", "base64 (default) or hex."),
		f("source", "string", "platform (default), seal or all.")}
}

func hashFields() []engines.Field {
	return []engines.Field{
		f("input", "string", "Base64 input to hash."),
		f("format", "string", "hex (default) or base64."),
		f("algorithm", "string", "sha2-256 (default), sha2-224, sha2-384, sha2-512, sha3-*.")}
}
