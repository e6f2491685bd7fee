package commands

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	enginecubby "github.com/ledger-secrets/ledger/engines/cubbyhole"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// cubbyholeMount is the cubbyhole/ mount every token has. It is not in the mount table: it
// cannot be disabled, moved or tuned, and its data is keyed by token, not by mount.
var cubbyholeMount = mount.Entry{Path: "cubbyhole/", Type: "cubbyhole", UUID: "cubbyhole", Accessor: "cubbyhole_ledger",
	Description: "per-token private secret storage", Local: true}

func (c *Core) cubbyhole(st *unsealed) *enginecubby.Backend {
	return enginecubby.New(st.cubby, st.datakeys, st.keyring.Load())
}

func (c *Core) cubbyholeRoute(st *unsealed, path string) route {
	return route{mount: cubbyholeMount, backend: c.cubbyhole(st), rel: strings.TrimPrefix(strings.TrimPrefix(path, "cubbyhole"), "/")}
}

// builtinPolicy returns the policy of wrapping tokens, which grants nothing through the ACL
// (sys/wrapping/* check wrapping tokens themselves) and cannot be shadowed by a written policy
// of the same name. It returns nil for every other name.
func builtinPolicy(name string) *acl.Policy {
	if name != wrappingPolicy {
		return nil
	}
	p, err := acl.Parse(name, `path "sys/wrapping/nothing-through-the-acl" { capabilities = ["deny"] }`)
	if err != nil {
		panic("built-in policy does not parse: " + err.Error())
	}
	return p
}

// destroyCubbyholes drops and shreds the cubbyholes of the tokens that committed events
// revoked or used up.
func (c *Core) destroyCubbyholes(ctx context.Context, st *unsealed, events []ledger.Event) {
	var macs []string
	for _, ev := range events {
		if ev.Type != tokenview.Revoked && ev.Type != tokenview.Used {
			continue
		}
		var p struct {
			MAC string `json:"mac"`
		}
		if json.Unmarshal(ev.Payload, &p) == nil && p.MAC != "" {
			macs = append(macs, p.MAC)
		}
	}
	if len(macs) > 0 {
		c.destroyGone(context.WithoutCancel(ctx), st, macs)
	}
}

// destroyGone appends Destroyed for each of macs whose token is gone and whose cubbyhole is not
// empty, then shreds their keys.
func (c *Core) destroyGone(ctx context.Context, st *unsealed, macs []string) {
	b := c.cubbyhole(st)
	var evs []ledger.Event
	for _, mac := range macs {
		if _, live := st.tokens.ByMAC(mac); live {
			continue
		}
		if ev, ok := b.DestroyEvent(mac); ok {
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return
	}
	if err := c.commit(ctx, st, evs); err != nil {
		if ctx.Err() == nil {
			c.logger.Error("destroy cubbyholes of revoked tokens; the next sweep retries", "err", err)
		}
		return
	}
	if err := b.Shred(ctx, evs); err != nil {
		c.logger.Error("shred cubbyhole data keys; reconcile retries", "err", err)
	}
}

// reconcileCubbyholes sweeps cubbyholes whose token left the view without an event of its own
// (a descendant removed with its parent) or whose destroy failed, and shreds cubbyhole data keys
// no view references (a crash between an event and its shred).
func (c *Core) reconcileCubbyholes(ctx context.Context, st *unsealed) {
	const margin = 10 * time.Minute
	n := 0
	every(ctx, time.Minute, func() {
		c.destroyGone(ctx, st, st.cubby.Tokens())
		if n++; n%10 != 0 {
			return
		}
		head, err := c.log.LastSeq(ctx)
		if err != nil || st.runner.Applied() < head {
			return
		}
		if _, err := c.cubbyhole(st).Reconcile(ctx, time.Now().Add(-margin)); err != nil && ctx.Err() == nil {
			c.logger.Error("reconcile cubbyhole data keys", "err", err)
		}
	})
}

// DataKeyIDs lists the live data keys whose ids start with prefix and a dot (e.g. "cubbyhole"),
// for diagnostics: after a token is revoked or a wrapped response unwrapped, none of its keys
// may be left.
func (c *Core) DataKeyIDs(ctx context.Context, prefix string) ([]string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return nil, ErrSealed
	}
	list, err := c.st.datakeys.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(list))
	for i, k := range list {
		out[i] = k.ID
	}
	return out, nil
}
