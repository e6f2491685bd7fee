package approle

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// seconds is a duration as Vault's JSON shows it: whole seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// list copies a list for a response: [] rather than null when empty, as Vault shows lists.
func list(in []string) []string { return append([]string{}, in...) }

// newUUID is a random UUID in Vault's go-uuid format: all 128 bits random (go-uuid does not set
// version bits either), since role IDs and secret IDs are credentials.
func newUUID() string {
	var b [16]byte
	// crypto/rand.Read never fails (it aborts the program if the kernel's generator does).
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// parseMetadata reads a secret ID's metadata as Vault's strutil.ParseArbitraryKeyValues: a
// JSON object in a string (or base64 of one), or "k=v,k2=v2"; a JSON object is accepted too.
func parseMetadata(data map[string]any) (map[string]string, error) {
	v, ok := data["metadata"]
	if !ok || v == nil {
		return nil, nil
	}
	bad := func(why string) error { return engines.BadRequest("failed to parse metadata: %s", why) }
	s, isString := v.(string)
	if !isString {
		m, err := engines.StringMap(data, "metadata")
		if err != nil {
			return nil, bad("expected a JSON object of strings")
		}
		return m, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if dec, err := base64.StdEncoding.DecodeString(s); err == nil && strings.HasPrefix(strings.TrimSpace(string(dec)), "{") {
		s = string(dec)
	}
	if strings.HasPrefix(s, "{") {
		var m map[string]string
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, bad("expected a JSON object of strings")
		}
		return m, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, bad("expected a JSON object or key=value pairs")
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return m, nil
}
