package commands

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// A snapshot restore is done by the active node (a standby forwards the request): it appends
// the restore event and rebuilds its own views from the snapshot. Every other unsealed node
// sees the event in its seal state and must rebuild too, or its views would go on from the
// pre-restore state under the restored data keys. followRestores watches for that and rebuilds
// the node's views with the root key it holds: a snapshot of the same cluster opens under it
// and the node stays unsealed; a forced restore of another cluster does not, and the node is
// left sealed, to be unsealed with the snapshot's keys (as the active node is).

func restoreSeqOf(s seal.State) uint64 {
	if s.Restore == nil {
		return 0
	}
	return s.Restore.Seq
}

// followRestores runs while st is the unsealed state of an HA node.
func (c *Core) followRestores(ctx context.Context, st *unsealed) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if restoreSeqOf(c.sealView.State()) > st.restoreSeq {
			go c.reopenAfterRestore(st)
			return
		}
	}
}

// reopenAfterRestore seals st and opens the views again from the restored snapshot.
func (c *Core) reopenAfterRestore(st *unsealed) {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.RLock()
	cur := c.st
	c.mu.RUnlock()
	if cur != st {
		return // sealed, or already reopened (by the restore itself on the node that did it)
	}
	st.keyMu.Lock()
	rootKey := append([]byte(nil), st.rootKey...)
	st.keyMu.Unlock()
	restore := c.sealView.State().Restore
	c.logger.Info("a snapshot was restored through another node: rebuilding the views from it", "restore_seq", restore.Seq)
	c.sealLocked()
	// The node that restored replaces the cluster's data keys with the snapshot's, then stores
	// the snapshot again without them. Opening before that would replace them a second time
	// (deleting the keys that node installed): wait until it is done. Streams it recreated may
	// still be electing their leaders: retry while the wait lasts.
	deadline := time.Now().Add(restoreInstallWait)
	var err error
	for {
		if err = c.waitRestoreInstalled(restore.Object, time.Until(deadline)); err == nil {
			kr, kerr := ledger.UnwrapKeyring(rootKey, c.sealView.State().Keyring)
			if kerr != nil {
				clear(rootKey)
				c.logger.Warn("the restored snapshot does not open under this node's root key (a snapshot of another cluster): the node stays sealed; unseal it with the snapshot's unseal keys")
				c.haReconcile()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
			err = c.open(ctx, append([]byte(nil), rootKey...), kr) // open takes (and on failure clears) its copy
			cancel()
			if err == nil {
				clear(rootKey)
				c.logger.Info("views rebuilt from the restored snapshot", "applied_seq", c.Applied())
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		c.logger.Debug("rebuilding the views after a restore: retrying", "err", err)
		time.Sleep(500 * time.Millisecond)
	}
	clear(rootKey)
	c.logger.Error("rebuilding the views after a restore failed: the node stays sealed; unseal it again", "err", err)
	c.haReconcile()
}

// restoreInstallWait bounds how long a node waits for the restoring node to install the
// snapshot's data keys.
const restoreInstallWait = 2 * time.Minute

// waitRestoreInstalled waits (up to budget) until the restored snapshot object no longer
// carries data keys.
func (c *Core) waitRestoreInstalled(object string, budget time.Duration) error {
	deadline := time.Now().Add(budget)
	var last error
	for {
		last = c.restoreHasDataKeys(object)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the restoring node did not install the snapshot's data keys within %s: %w", restoreInstallWait, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var errRestorePending = fmt.Errorf("the restored snapshot still carries its data keys")

// restoreHasDataKeys reads the restored snapshot object once: nil when its data keys were
// installed (the object was stored again without them).
func (c *Core) restoreHasDataKeys(object string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := replay.OpenStore(ctx, c.log.JetStream(), c.opts.Replicas)
	if err != nil {
		return err
	}
	f, err := store.Decode(ctx, object)
	if err != nil {
		return fmt.Errorf("restored snapshot %s: %w", object, err)
	}
	if slices.ContainsFunc(f.Header.Sections, func(s replay.Section) bool { return s.Kind == replay.KindDataKeys }) {
		return errRestorePending
	}
	return nil
}
