package httpapi

import (
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// wrapEnvelope is the answer to a wrapped request: Vault's envelope with everything but
// wrap_info empty, so nothing of the wrapped response reaches the client.
func wrapEnvelope(reqID string, w *engines.WrapInfo) map[string]any {
	return map[string]any{
		"request_id": reqID, "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "warnings": nil, "auth": nil, "mount_type": "",
		"wrap_info": map[string]any{
			"token": w.Token, "accessor": w.Accessor, "ttl": int64(w.TTL / time.Second),
			"creation_time": w.CreationTime.UTC().Format(time.RFC3339Nano), "creation_path": w.CreationPath,
			"wrapped_accessor": w.WrappedAccessor,
		},
	}
}
