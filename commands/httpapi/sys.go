package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
)

// The sys endpoints that work sealed and without a token.

func (a *api) initStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"initialized": a.core.Initialized()})
}

func (a *api) init(c echo.Context) error {
	reqID := newRequestID()
	data, err := a.decodeBody(c)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	// Unknown fields are ignored, as Vault does, but named: a typo here ("secret_share")
	// silently means the default split.
	var warnings []string
	if unknown := engines.Unknown(data, "secret_shares", "secret_threshold", "pgp_keys", "root_token_pgp_key",
		"stored_shares", "recovery_shares", "recovery_threshold", "recovery_pgp_keys", "recovery_escrow"); len(unknown) > 0 {
		warnings = []string{fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown)}
	}
	if keys, _ := data["pgp_keys"].([]any); len(keys) > 0 {
		return a.fail(c, reqID, engines.BadRequest("pgp_keys is not supported: hand each share to its holder directly"))
	}
	n, err := engines.Int(data, "secret_shares", 5)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	t, err := engines.Int(data, "secret_threshold", 3)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	if keys, _ := data["recovery_pgp_keys"].([]any); len(keys) > 0 {
		return a.fail(c, reqID, engines.BadRequest("recovery_pgp_keys is not supported: hand each recovery share to its holder directly"))
	}
	rn, err := engines.Int(data, "recovery_shares", 5)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	rt, err := engines.Int(data, "recovery_threshold", 3)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	escrow, err := engines.Bool(data, "recovery_escrow", false)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	res, err := a.core.Init(c.Request().Context(), commands.InitRequest{SecretShares: n, SecretThreshold: t,
		RecoveryShares: rn, RecoveryThreshold: rt, RecoveryEscrow: escrow})
	if err != nil {
		return a.fail(c, reqID, err)
	}
	keysHex, keysB64 := encodeShares(res.Keys)
	c.Response().Header().Set("Cache-Control", "no-store")
	out := map[string]any{"keys": keysHex, "keys_base64": keysB64, "root_token": res.RootToken}
	if res.RecoveryKeys != nil {
		out["recovery_keys"], out["recovery_keys_base64"] = encodeShares(res.RecoveryKeys)
		out["recovery_escrow"] = res.RecoveryEscrow
	}
	if warnings != nil {
		out["warnings"] = warnings
	}
	return c.JSON(http.StatusOK, out)
}

func encodeShares(keys [][]byte) (hexes, b64s []string) {
	hexes, b64s = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		hexes[i], b64s[i] = hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k)
	}
	return hexes, b64s
}

func (a *api) unseal(c echo.Context) error {
	reqID := newRequestID()
	data, err := a.decodeBody(c)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	reset, err := engines.Bool(data, "reset", false)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	if !a.core.Initialized() {
		return a.fail(c, reqID, commands.ErrNotInitialized)
	}
	if reset {
		return c.JSON(http.StatusOK, a.core.ResetUnseal())
	}
	key, err := engines.String(data, "key", "")
	if err != nil {
		return a.fail(c, reqID, err)
	}
	if key == "" {
		return a.fail(c, reqID, engines.BadRequest("'key' must be specified in request body as JSON, or 'reset' set to true"))
	}
	share, err := commands.DecodeShare(key)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	migrate, err := engines.Bool(data, "migrate", false)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	recovery, err := engines.Bool(data, "recovery", false)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	st, err := a.core.UnsealWith(c.Request().Context(), commands.UnsealRequest{Share: share, Migrate: migrate, Recovery: recovery})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// Answered as a 503 without detail; the operator reading the server's log needs
			// to know which step did not finish (the key share is not in err).
			a.log.Warn("unseal did not finish", "request_id", reqID, "err", err)
		}
		return a.fail(c, reqID, err)
	}
	return c.JSON(http.StatusOK, st)
}

func (a *api) sealStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, a.core.SealStatus())
}

// health answers with Vault's status codes, each overridable by a query parameter.
func (a *api) health(c echo.Context) error {
	q := c.QueryParams()
	code := func(name string, def int) (int, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return 0, engines.BadRequest("%s: expected an HTTP status code, got %q", name, v)
		}
		return n, nil
	}
	var status int
	var err error
	initialized, unsealed := a.core.Initialized(), a.core.Unsealed()
	// Every Ledger standby serves reads from its own views: a performance standby, 473 unless
	// perfstandbyok, as Vault's.
	perfStandbyOK := q.Get("perfstandbyok") == "true"
	standby := unsealed && a.core.IsStandby()
	switch {
	case !initialized:
		status, err = code("uninitcode", http.StatusNotImplemented)
	case !unsealed:
		status, err = code("sealedcode", http.StatusServiceUnavailable)
	case standby && !perfStandbyOK:
		status, err = code("performancestandbycode", 473)
	default:
		status, err = code("activecode", http.StatusOK)
	}
	if err == nil {
		for _, name := range []string{"standbycode", "drsecondarycode", "performancestandbycode", "haunhealthycode"} {
			if _, err = code(name, 0); err != nil {
				break
			}
		}
	}
	if err != nil {
		return a.fail(c, newRequestID(), err)
	}
	name, id := a.core.ClusterInfo()
	body := map[string]any{
		"initialized": initialized, "sealed": !unsealed, "standby": standby, "performance_standby": standby,
		"replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
		"server_time_utc": time.Now().Unix(), "version": commands.Version,
		"cluster_name": name, "cluster_id": id, "enterprise": false, "echo_duration_ms": 0,
		"clock_skew_ms": 0, "replication_primary_canary_age_ms": 0, "removed_from_cluster": false,
	}
	if checked, ok, state, msg := a.core.SealKeyHealth(); !checked.IsZero() {
		// Ledger's: the last proof that the auto-seal key still decrypts the root key.
		body["seal_key_healthy"], body["seal_key_checked"] = ok, checked.Unix()
		if state != "" {
			body["seal_key_state"] = state
		}
		if msg != "" {
			body["seal_key_error"] = msg
		}
	}
	if msg := a.core.AutoUnsealError(); msg != "" && !unsealed {
		body["seal_error"] = msg
	}
	if c.Request().Method == http.MethodHead {
		return c.NoContent(status)
	}
	return c.JSON(status, body)
}

func (a *api) leader(c echo.Context) error {
	if !a.core.Unsealed() {
		return a.fail(c, newRequestID(), commands.ErrSealed)
	}
	st := a.core.HAStatus(c.Request().Context())
	if !st.Enabled {
		return c.JSON(http.StatusOK, map[string]any{
			"ha_enabled": false, "is_self": true, "active_time": time.Time{}, "leader_address": a.opts.APIAddr,
			"leader_cluster_address": "", "performance_standby": false, "performance_standby_last_remote_wal": 0,
			"raft_committed_index": 0, "raft_applied_index": 0,
		})
	}
	applied := a.core.Applied()
	leaderAddr, activeTime := "", time.Time{}
	if st.LeaderKnown {
		leaderAddr, activeTime = st.Leader.APIAddr, st.Leader.Since
	}
	return c.JSON(http.StatusOK, map[string]any{
		"ha_enabled": true, "is_self": st.Active, "active_time": activeTime, "leader_address": leaderAddr,
		"leader_cluster_address": "", "performance_standby": !st.Active, "performance_standby_last_remote_wal": applied,
		"raft_committed_index": applied, "raft_applied_index": applied,
	})
}
