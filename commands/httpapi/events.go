package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/projections/events"
)

// eventsPrefix is Vault's event subscription endpoint.
const eventsPrefix = "/v1/sys/events/subscribe/"

func registerEvents(e *echo.Echo, a *api) {
	e.GET(eventsPrefix+"*", a.eventsSubscribe)
}

// eventsSubscribe serves sys/events/subscribe/:event_type over a WebSocket, as Vault does:
// every check (token, capability, options) is answered in Vault's error envelope before the
// upgrade; after it, one text message per event, each a CloudEvents JSON document and a
// newline.
func (a *api) eventsSubscribe(c echo.Context) error {
	r := c.Request()
	q := r.URL.Query()
	pattern := strings.TrimSpace(strings.TrimPrefix(r.URL.Path, eventsPrefix))
	if pattern == "" {
		return a.fail(c, "", engines.BadRequest("did not specify eventType to subscribe to"))
	}
	if v := q.Get("json"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return a.fail(c, "", engines.BadRequest("invalid parameter for JSON: %q", v))
		}
		if !b {
			return a.fail(c, "", engines.BadRequest("json=false (protobuf) is not supported: Ledger sends events as JSON; use json=true"))
		}
	}
	sub, err := a.core.SubscribeEvents(r.Context(), commands.SubscribeRequest{
		Token: token(r), RemoteAddr: r.RemoteAddr, Pattern: pattern,
		After: q.Get("after"), FromIndex: q.Get("from_index"),
		Namespaces: q["namespaces"], Filter: q.Get("filter"),
	})
	if err != nil {
		return a.fail(c, "", err)
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return a.fail(c, "", engines.BadRequest("sys/events/subscribe is a WebSocket endpoint: connect with a WebSocket client (ledger events subscribe, vault events subscribe)"))
	}
	// The first log sequence the stream covers, for a client that wants to resume later
	// without having seen an event yet.
	c.Response().Header().Set("X-Ledger-Index", strconv.FormatUint(sub.Started, 10))
	conn, err := websocket.Accept(c.Response(), r, nil)
	if err != nil {
		return nil // Accept answered the client already
	}
	conn.SetReadLimit(4 << 10)
	ctx := conn.CloseRead(r.Context())
	go ping(ctx, conn)
	err = sub.Run(ctx, func(ev events.Event) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, append(b, '\n'))
	})
	switch {
	case err == nil || ctx.Err() != nil:
		conn.Close(websocket.StatusNormalClosure, "")
	case errors.Is(err, commands.ErrSealed):
		conn.Close(websocket.StatusTryAgainLater, "Vault is sealed")
	case errors.Is(err, engines.ErrPermissionDenied):
		conn.Close(websocket.StatusPolicyViolation, "permission denied: the token is no longer valid")
	default:
		a.log.Warn("event subscription ended", "pattern", pattern, "err", err)
		conn.Close(websocket.StatusInternalError, "internal error; see the server log")
	}
	return nil
}

// ping keeps the connection alive through proxies, as Vault does every 30 seconds.
func ping(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}
