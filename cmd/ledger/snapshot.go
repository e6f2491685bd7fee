package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/replay"
)

// operator raft snapshot save|restore|inspect, as Vault spells it, and operator snapshot … as
// an alias: Ledger's log replicates through JetStream's raft, and scripts written for Vault
// call it that.

func (a *app) operatorRaftCmd() *cobra.Command {
	return group("raft", "Raft-compatible operations: peers, autopilot state, snapshots",
		a.raftListPeersCmd(), a.raftRemovePeerCmd(), a.raftAutopilotCmd(), // operator_raft.go
		group("snapshot", "Save, restore and inspect snapshots",
			a.snapshotSaveCmd(), a.snapshotRestoreCmd(), a.snapshotInspectCmd()))
}

func (a *app) operatorSnapshotCmd() *cobra.Command {
	return group("snapshot", "Save, restore and inspect snapshots (alias of operator raft snapshot)",
		a.snapshotSaveCmd(), a.snapshotRestoreCmd(), a.snapshotInspectCmd())
}

// rawRequest sends one request with a binary body and returns the response for the caller to
// stream. Errors ≥ 400 become *APIError. No client timeout: snapshots can be large; ctx ends it.
func (c *Client) rawRequest(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	u := c.url(path, nil)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("X-Vault-Request", "true")
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.redact(err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, c.apiError(method, u, resp.StatusCode, data)
	}
	return resp, nil
}

func (a *app) snapshotSaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the server's state to FILE",
		Long: `Save a snapshot of every view of the server at one position of its log, sealed
under its keyring, with the seal configuration and the data keys: restored onto
a fresh server it is opened by this server's unseal keys and root token. The
file holds no secret in clear. Needs a sudo token.

FILE is written only once the whole snapshot arrived and checked out.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			path := args[0]
			resp, err := c.rawRequest(cmd.Context(), http.MethodGet, "sys/storage/raft/snapshot", nil, -1)
			if err != nil {
				return fail("saving snapshot", err)
			}
			defer resp.Body.Close()
			m := a.newMeter("Saving snapshot", resp.ContentLength, true, "")
			tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
			if err != nil {
				m.Finish(false)
				return &cliError{op: "saving snapshot", err: err, code: 1}
			}
			defer os.Remove(tmp.Name())
			var buf bytes.Buffer
			_, err = io.Copy(io.MultiWriter(tmp, &buf), meterReader{resp.Body, m})
			if err == nil && resp.ContentLength >= 0 && int64(buf.Len()) != resp.ContentLength {
				err = fmt.Errorf("the connection ended after %d of %d bytes", buf.Len(), resp.ContentLength)
			}
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			m.Finish(err == nil)
			if err != nil {
				return &cliError{op: "saving snapshot", err: err, code: 1, hint: "Nothing was written to " + path + "; run the command again."}
			}
			f, err := replay.Decode(buf.Bytes())
			if err != nil {
				return &cliError{op: "saving snapshot", err: fmt.Errorf("the server sent a snapshot that does not check out: %w", err), code: 1,
					hint: "Nothing was written to " + path + "; run the command again."}
			}
			if err := os.Chmod(tmp.Name(), 0o600); err != nil {
				return &cliError{op: "saving snapshot", err: err, code: 1}
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return &cliError{op: "saving snapshot", err: err, code: 1}
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			if p.format != formatTable {
				return p.Structured(snapshotSummary(f, path))
			}
			fmt.Fprintf(a.stdout, "Success! Saved snapshot to %s (%s, log position %d, cluster %s)\n", path, humanBytes(float64(f.Size)), f.Header.Seq, f.Header.ClusterID)
			return nil
		},
	}
}

func (a *app) snapshotRestoreCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore [-force] FILE",
		Short: "Restore a snapshot: replace the server's state with FILE's",
		Long: `Restore a snapshot saved with "operator raft snapshot save".

Onto a fresh server (empty data dir, not initialised) no token is needed: the
server then opens with the snapshot's unseal keys and root token. Onto an
unsealed server a sudo token is needed; a snapshot of another cluster also
needs -force, and leaves the server sealed until it is unsealed with the
snapshot's unseal keys. A snapshot of the same cluster leaves it unsealed.

The file is checked before anything changes: a truncated, corrupted or foreign
snapshot is refused and the server is left as it was. Restoring revokes
nothing: leases expire by the TTLs the snapshot recorded.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			data, err := os.ReadFile(path)
			if err != nil {
				return &cliError{op: "restoring snapshot", err: err, code: 1}
			}
			// The server checks again; checking here first spares an upload of a bad file.
			f, err := replay.Decode(data)
			if err != nil {
				return &cliError{op: "restoring snapshot", err: fmt.Errorf("%s: %w", path, err), code: 1,
					hint: "Nothing was sent to the server. Use another copy of the snapshot, or take a new one with `ledger operator raft snapshot save`."}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			endpoint := "sys/storage/raft/snapshot"
			if force {
				endpoint += "-force"
			}
			m := a.newMeter("Restoring snapshot", int64(len(data)), true, "")
			resp, err := c.rawRequest(cmd.Context(), http.MethodPost, endpoint, meterReader{bytes.NewReader(data), m}, int64(len(data)))
			m.Finish(err == nil)
			if err != nil {
				ce := &cliError{op: "restoring snapshot", err: err}
				var apiErr *APIError
				if errors.As(err, &apiErr) && apiErr.Contains("another cluster") && !force {
					ce.hint = "The server was left as it was. To replace its state with the snapshot's anyway, run the command again with -force; the server will then open with the snapshot's unseal keys."
				} else if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
					ce.hint = "The server was left as it was."
				} else if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusServiceUnavailable {
					ce.hint = "The server is sealed: unseal it first, or restore into a server started on an empty data dir."
				}
				return ce
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			var env struct {
				Data struct {
					Seq    uint64 `json:"restored_at_seq"`
					Sealed bool   `json:"sealed"`
					Object string `json:"object"`
				} `json:"data"`
				Warnings []string `json:"warnings"`
			}
			_ = json.Unmarshal(body, &env)
			for _, w := range env.Warnings {
				fmt.Fprintln(a.stderr, "WARNING! "+w)
			}
			fmt.Fprintf(a.stdout, "Success! Restored the snapshot taken at log position %d of cluster %s (%s).\n", f.Header.Seq, f.Header.ClusterID, f.Header.Created.Format(time.RFC3339))
			if env.Data.Sealed {
				fmt.Fprintf(a.stdout, "\nThe server is sealed. Unseal it with %d of the snapshot's %d unseal keys\n(`ledger operator unseal`); the snapshot's root token and policies apply.\n", f.Header.Seal.Threshold, f.Header.Seal.Shares)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore a snapshot of another cluster, replacing this server's state and keys")
	return cmd
}

type snapshotInfo struct {
	File      string           `json:"file,omitempty"`
	Size      int64            `json:"size"`
	SHA256    string           `json:"sha256"`
	ClusterID string           `json:"cluster_id"`
	Cluster   string           `json:"cluster_name,omitempty"`
	Seq       uint64           `json:"seq"`
	Hash      string           `json:"hash"`
	Created   time.Time        `json:"created"`
	Shares    int              `json:"unseal_shares"`
	Threshold int              `json:"unseal_threshold"`
	Term      uint32           `json:"key_term"`
	Sections  []replay.Section `json:"sections"`
}

func snapshotSummary(f *replay.File, path string) snapshotInfo {
	h := f.Header
	return snapshotInfo{File: path, Size: f.Size, SHA256: fmt.Sprintf("%x", f.SHA256), ClusterID: h.ClusterID, Cluster: h.ClusterName,
		Seq: h.Seq, Hash: h.Hash, Created: h.Created, Shares: h.Seal.Shares, Threshold: h.Seal.Threshold, Term: h.Seal.Term, Sections: h.Sections}
}

func (a *app) snapshotInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Check a snapshot file and print what it holds, without keys or a server",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return &cliError{op: "inspecting snapshot", err: err, code: 1}
			}
			f, err := replay.Decode(data)
			if err != nil {
				return &cliError{op: "inspecting snapshot", err: fmt.Errorf("%s: %w", args[0], err), code: 1,
					hint: "Use another copy of the snapshot, or take a new one with `ledger operator raft snapshot save`."}
			}
			info := snapshotSummary(f, args[0])
			if p.format != formatTable {
				return p.Structured(info)
			}
			rows := [][]string{
				{"File", info.File}, {"Size", humanBytes(float64(info.Size))}, {"SHA256", info.SHA256},
				{"Cluster ID", info.ClusterID}, {"Cluster Name", info.Cluster}, {"Log Position", strconv.FormatUint(info.Seq, 10)},
				{"Batch Hash", info.Hash}, {"Created", info.Created.Format(time.RFC3339)},
				{"Unseal Keys", fmt.Sprintf("%d of %d", info.Threshold, info.Shares)}, {"Key Term", fmt.Sprint(info.Term)},
			}
			var sections []string
			for _, s := range info.Sections {
				sections = append(sections, fmt.Sprintf("%s (%s)", s.Name, humanBytes(float64(s.Size))))
			}
			rows = append(rows, []string{"Sections", strings.Join(sections, ", ")})
			fmt.Fprint(a.stdout, columns(rows))
			return nil
		},
	}
}
