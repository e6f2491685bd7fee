package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	engineapprole "github.com/ledger-secrets/ledger/engines/approle"
	enginedb "github.com/ledger-secrets/ledger/engines/database"
	enginejwt "github.com/ledger-secrets/ledger/engines/jwt"
	enginek8s "github.com/ledger-secrets/ledger/engines/kubernetes"
	enginekv "github.com/ledger-secrets/ledger/engines/kv"
	enginepki "github.com/ledger-secrets/ledger/engines/pki"
	enginessh "github.com/ledger-secrets/ledger/engines/ssh"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	enginetransit "github.com/ledger-secrets/ledger/engines/transit"
	engineuserpass "github.com/ledger-secrets/ledger/engines/userpass"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/mount"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// buildBackend makes the backend for a mount from its type. New engine types are added here.
func (c *Core) buildBackend(st *unsealed, m mount.Entry) (engines.Backend, error) {
	em := c.engineMount(m)
	switch m.Type {
	case "kv":
		return enginekv.New(st.kv, st.datakeys, st.keyring.Load(), em), nil
	case "transit":
		return enginetransit.New(st.transit, em), nil
	case "pki":
		return enginepki.New(st.pki, em), nil
	case "ssh":
		return enginessh.New(st.ssh, em), nil
	case "database":
		return enginedb.New(st.database, em, c.logger, enginedb.WithLeaseCount(func(dbName string) int {
			n := 0
			for _, id := range st.leases.WithPrefix(m.Path) {
				if e, ok := st.leases.Get(id); ok {
					if ld, err := enginedb.ParseLeaseData(e.InternalData); err == nil && ld.DBName == dbName {
						n++
					}
				}
			}
			return n
		}), enginedb.WithPasswordGenerator(st.generatePassword), enginedb.WithFingerprint(st.keyring.Load().Fingerprint)), nil
	case "approle":
		return engineapprole.New(st.approle, st.tokens, st.keyring.Load(), em), nil
	case "userpass":
		return engineuserpass.New(st.userpass, st.keyring.Load(), em), nil
	case "identity":
		return c.identityBackend(st), nil
	case "jwt", "oidc":
		return enginejwt.New(st.authroles, st.tokens, st.keyring.Load(), em), nil
	case "kubernetes":
		return enginek8s.New(st.authroles, st.tokens, st.keyring.Load(), em), nil
	case "token":
		return enginetoken.New(st.tokens, st.keyring.Load(), em, func(name string) bool {
			_, ok := st.policies.Get(name)
			return ok
		}, enginetoken.WithIdentityPolicies(st.identity.Policies), enginetoken.WithSudo(func(caller *engines.Caller, path string) bool {
			a := c.aclForCaller(st, caller)
			return a.IsRoot() || a.Allowed(acl.Update, m.Path+path, nil).Sudo
		})), nil
	}
	return nil, fmt.Errorf("mount %s has type %q, which this build cannot serve", m.Path, m.Type)
}

// initialEvents issues the root token and mounts the token auth method, in the init batch.
func initialEvents(kr *ledger.Keyring, rootToken string, now time.Time) (string, []ledger.Event, error) {
	accessor := ""
	if rootToken == "" {
		rootToken, accessor = enginetoken.NewToken()
	} else {
		_, accessor = enginetoken.NewToken()
	}
	created := rootTokenEvent(kr, rootToken, accessor, now)
	tm := mount.Entry{Path: "auth/token/", Type: "token", Description: "token based credentials",
		UUID: newUUID(), Accessor: "auth_token_" + newUUID()[:8], CreatedAt: now}
	b, err := json.Marshal(tm)
	if err != nil {
		return "", nil, err
	}
	return rootToken, []ledger.Event{created, {Type: mount.Enabled, Subject: ledger.SubjectFor("mount", tm.Path), Payload: b}}, nil
}

// rootTokenEvent records a root token (init, generate-root): root policy, orphan, no TTL.
func rootTokenEvent(kr *ledger.Keyring, token, accessor string, now time.Time) ledger.Event {
	return enginetoken.CreatedEvent(tokenview.CreatedPayload{
		MAC: kr.MAC("token", token), Accessor: accessor, Policies: []string{"root"}, Orphan: true,
		DisplayName: "root", Path: "auth/token/root", CreationTime: now, Type: "service",
	}, "")
}

// expireTokens revokes tokens when their TTL runs out. Requests already refuse an expired token
// at the exact instant; this removes it (and its children) from the view and the log's present.
func (c *Core) expireTokens(ctx context.Context, st *unsealed) {
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		var events []ledger.Event
		unlock := func() {}
		if tm, ok := st.mounts.Get("auth/token/"); ok {
			// The same lock token creation takes, so a child cannot be born to a parent being
			// expired and survive it.
			unlock = st.locks.lock(tm.UUID + "\x00" + enginetoken.TreeLock)
		}
		seen := map[string]bool{}
		for _, e := range st.tokens.Expiring(now, 1000) {
			if seen[e.MAC] {
				continue
			}
			b := enginetoken.New(st.tokens, st.keyring.Load(), engines.Mount{Path: "auth/token/"}, nil)
			for _, ev := range b.RevokeTree(e.MAC, "expired") {
				var p tokenview.RevokedPayload
				if json.Unmarshal(ev.Payload, &p) == nil && !seen[p.MAC] {
					seen[p.MAC] = true
					events = append(events, ev)
				}
			}
		}
		if len(events) > 0 {
			if err := c.commit(ctx, st, events); err != nil && ctx.Err() == nil {
				c.logger.Error("expire tokens", "err", err)
			}
		}
		unlock()
		c.afterEvents(ctx, st, events)
		next := time.Second
		if t, ok := st.tokens.NextExpiry(); ok {
			next = min(max(time.Until(t), 10*time.Millisecond), time.Second)
		}
		timer.Reset(next)
	}
}

// reconcileDataKeys shreds data keys that no view references any more (a crash between an
// append and its shred, a mount disabled mid-way). It runs only while the views are caught up
// with the log, and spares keys younger than a margin, which may belong to a write in flight.
func (c *Core) reconcileDataKeys(ctx context.Context, st *unsealed) {
	const margin = 10 * time.Minute
	// First pass as soon as the views caught up: no key stored before this unseal can belong
	// to a write still in flight, so every unreferenced one goes — among them trims that
	// ShredLater had not erased yet when the node stopped (ledger.ShredDeadline). The cut is
	// the unseal's start, not this pass's: the pass begins postUnsealGrace later, and a write
	// answered in between may have stored its key with its event not yet applied.
	c.reconcileCaughtUp(ctx, st, st.opened)
	every(ctx, 10*time.Minute, func() {
		head, err := c.log.LastSeq(ctx)
		if err != nil || st.runner.Applied() < head {
			return
		}
		if _, err := enginekv.Reconcile(ctx, st.kv, st.datakeys, time.Now().Add(-margin)); err != nil && ctx.Err() == nil {
			c.logger.Error("reconcile data keys", "err", err)
		}
	})
}

// reconcileCaughtUp waits until the views have caught up with the log, then shreds the
// unreferenced KV data keys stored before `before`.
func (c *Core) reconcileCaughtUp(ctx context.Context, st *unsealed, before time.Time) {
	for ctx.Err() == nil {
		head, err := c.log.LastSeq(ctx)
		if err == nil && st.runner.Applied() >= head {
			if _, err := enginekv.Reconcile(ctx, st.kv, st.datakeys, before); err != nil && ctx.Err() == nil {
				c.logger.Error("reconcile data keys", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Maintenance that runs on the active node: small periodic loops over the mounts of one type.

// every runs fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// eachBackend calls fn with the backend of every mount of type typ.
func eachBackend[B engines.Backend](c *Core, st *unsealed, typ string, fn func(m mount.Entry, b B)) {
	for _, m := range st.mounts.List() {
		if m.Type != typ {
			continue
		}
		if b, err := c.backend(st, m); err == nil {
			if tb, ok := b.(B); ok {
				fn(m, tb)
			}
		}
	}
}

// commit appends events and waits until the views applied them.
func (c *Core) commit(ctx context.Context, st *unsealed, evs []ledger.Event) error {
	pos, err := c.log.Append(ctx, evs, c.termOf(ctx)...)
	if err != nil {
		return err
	}
	return st.runner.WaitFor(ctx, pos[len(pos)-1].Seq)
}

// tidyAppRoles removes expired AppRole secret IDs from the views (they are refused at login the
// instant they expire; this keeps the views from growing).
func (c *Core) tidyAppRoles(ctx context.Context, st *unsealed) {
	every(ctx, time.Minute, func() {
		eachBackend(c, st, "approle", func(m mount.Entry, ar *engineapprole.Backend) {
			for evs := ar.TidyEvents(time.Now()); len(evs) > 0; evs = ar.TidyEvents(time.Now()) {
				if err := c.commit(ctx, st, evs); err != nil {
					if ctx.Err() == nil {
						c.logger.Error("tidy approle secret ids", "mount", m.Path, "err", err)
					}
					return
				}
			}
		})
	})
}

// rotateStaticRoles rotates database static-role passwords whose rotation_period elapsed. The
// side effect (the new password in the database) happens inside RotateDue; the events that
// record it are appended here.
func (c *Core) rotateStaticRoles(ctx context.Context, st *unsealed) {
	every(ctx, 5*time.Second, func() {
		eachBackend(c, st, "database", func(m mount.Entry, db *enginedb.Backend) {
			evs, err := db.RotateDue(ctx, time.Now())
			if err != nil && ctx.Err() == nil {
				c.logger.Error("rotate static roles", "mount", m.Path, "err", err)
			}
			if len(evs) > 0 {
				if err := c.commit(ctx, st, evs); err != nil && ctx.Err() == nil {
					c.logger.Error("record static role rotation", "mount", m.Path, "err", err)
				}
			}
		})
	})
}

// rotateTransitKeys honours transit keys' auto_rotate_period on the active node. Each rotation
// takes the same per-key lock as a request on that key.
func (c *Core) rotateTransitKeys(ctx context.Context, st *unsealed) {
	every(ctx, 10*time.Second, func() {
		eachBackend(c, st, "transit", func(m mount.Entry, tb *enginetransit.Backend) {
			for _, ev := range tb.RotateDue(time.Now()) {
				var p struct {
					Name string `json:"name"`
				}
				json.Unmarshal(ev.Payload, &p)
				unlock := st.locks.lock(m.UUID + "\x00" + p.Name)
				err := c.commit(ctx, st, []ledger.Event{ev})
				unlock()
				if err != nil && ctx.Err() == nil {
					c.logger.Error("auto-rotate transit key", "mount", m.Path, "err", err)
				}
			}
		})
	})
}

// reportOrphans looks, once after unseal, for database users with Ledger's prefix that no lease
// owns (a crash between creating a user and recording its lease) and reports them. Dropping
// them is an operator's decision.
func (c *Core) reportOrphans(ctx context.Context, st *unsealed) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(10 * time.Second):
	}
	eachBackend(c, st, "database", func(m mount.Entry, db *enginedb.Backend) {
		owned := map[string]bool{}
		for _, id := range st.leases.WithPrefix(m.Path) {
			if e, ok := st.leases.Get(id); ok {
				if ld, err := enginedb.ParseLeaseData(e.InternalData); err == nil {
					owned[ld.DBName+"\x00"+ld.Username] = true
				}
			}
		}
		orphans, err := db.Orphans(ctx, func(dbName, user string) bool { return owned[dbName+"\x00"+user] })
		if err != nil {
			c.logger.Warn("look for orphaned database users", "mount", m.Path, "err", err)
			return
		}
		for _, o := range orphans {
			c.logger.Warn("database user with Ledger's prefix owned by no lease", "mount", m.Path, "db", o.DBName, "user", o.Username)
		}
	})
}
