package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
)

func (a *app) eventsCmd() *cobra.Command {
	return group("events", "Subscribe to change events", a.eventsSubscribeCmd())
}

func (a *app) eventsSubscribeCmd() *cobra.Command {
	var (
		timeout             time.Duration
		after, from, filter string
	)
	cmd := &cobra.Command{
		Use:   "subscribe [flags] EVENT_TYPE",
		Short: "Print change events (kv-v2/data-write, kv*, *) as JSON lines",
		Long: `Subscribe to sys/events/subscribe/EVENT_TYPE over a WebSocket and print each event as
one line of JSON (Vault's CloudEvents shape), until interrupted or -timeout passes. EVENT_TYPE
is a glob: kv-v2/data-write, 'kv*', '*'. Only events for paths the token may read (or list)
and subscribe to arrive.

Each event carries "ledgerpos", its position in the log. When the connection drops, the
command reconnects and resumes after the last event it printed, so nothing is missed or
printed twice; -after POSITION does the same across runs, -from-index SEQ starts at a log
sequence. -filter takes a go-bexpr expression over event_type, operation, data_path,
source_plugin_mount and namespace, as Vault's does:
  -filter='data_path == "secret/data/foo" and operation != "data-write"'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return a.followEvents(ctx, c, args[0], after, from, filter)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&timeout, "timeout", 0, "stop after this long (e.g. 30s); 0: until interrupted")
	fl.StringVar(&after, "after", "", "resume after this event position (an event's ledgerpos, e.g. 42.3)")
	fl.StringVar(&from, "from-index", "", "start at this log sequence instead of now")
	fl.StringVar(&filter, "filter", "", `send only events matching this go-bexpr expression (e.g. 'data_path == "secret/data/foo"')`)
	return cmd
}

// followEvents prints events until ctx ends, reconnecting after a dropped connection with
// after=<the last position printed>.
func (a *app) followEvents(ctx context.Context, c *Client, pattern, after, from, filter string) error {
	backoff := 200 * time.Millisecond
	for {
		q := url.Values{"json": {"true"}}
		if filter != "" {
			q.Set("filter", filter)
		}
		switch {
		case after != "":
			q.Set("after", after)
		case from != "":
			q.Set("from_index", from)
		}
		last, err := a.readEvents(ctx, c, pattern, q)
		if last != "" {
			after, from, backoff = last, "", 200*time.Millisecond
		}
		if ctx.Err() != nil {
			return nil
		}
		var apiErr *APIError
		switch {
		case errors.As(err, &apiErr):
			return fail("subscribing to "+pattern, err)
		case websocket.CloseStatus(err) == websocket.StatusPolicyViolation:
			return fail("subscribing to "+pattern, errors.New("the server ended the stream: the token is no longer valid; log in again and resume with -after "+after))
		}
		fmt.Fprintf(a.stderr, "events: connection lost (%v); reconnecting", err)
		if after != "" {
			fmt.Fprintf(a.stderr, " after %s", after)
		}
		fmt.Fprintln(a.stderr)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// readEvents holds one connection, printing events; it returns the last position printed.
func (a *app) readEvents(ctx context.Context, c *Client, pattern string, q url.Values) (string, error) {
	u := c.url("sys/events/subscribe/"+pattern, q)
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	hc := *c.http
	hc.Timeout = 0 // the stream is long-lived; ctx bounds it
	h := http.Header{}
	if c.token != "" {
		h.Set("X-Vault-Token", c.token)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, resp, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{HTTPClient: &hc, HTTPHeader: h})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			var env struct {
				Errors []string `json:"errors"`
			}
			json.Unmarshal(b, &env)
			return "", &APIError{Method: "GET", URL: u.Redacted(), StatusCode: resp.StatusCode, Errors: env.Errors}
		}
		return "", c.redact(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	last := ""
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				conn.Close(websocket.StatusNormalClosure, "")
			}
			return last, err
		}
		var ev struct {
			LedgerPos string `json:"ledgerpos"`
		}
		json.Unmarshal(b, &ev)
		fmt.Fprintln(a.stdout, strings.TrimRight(string(b), "\n"))
		if ev.LedgerPos != "" {
			last = ev.LedgerPos
		}
	}
}
