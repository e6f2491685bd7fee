package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// sys/remount moves a mount to another path with everything it holds. Views keep engine data by
// mount UUID, so a move is one event (mount.moved.v1) that re-keys the mount table and renames
// the mount's lease IDs (their prefix is the mount path, as in Vault); policies are left as they
// are. Vault migrates asynchronously and answers a migration id to poll; the move here is done
// when the request returns, and sys/remount/status/:id reports it, from this node's memory (as
// Vault keeps it in memory).

// remountStatus is what sys/remount/status/:id reports.
type remountStatus struct {
	From, To string
	Time     time.Time
}

func (s *sysBackend) remountPaths(req *engines.Request, p string) (*engines.Response, error) {
	if id, ok := strings.CutPrefix(p, "remount/status/"); ok {
		if req.Op != engines.OpRead {
			return nil, engines.ErrUnsupported
		}
		v, found := s.st.migrations.Load(id)
		if !found {
			return nil, engines.BadRequest("no remount migration with id %q on this node", id)
		}
		m := v.(remountStatus)
		return &engines.Response{Data: map[string]any{"migration_id": id, "migration_info": map[string]any{
			"source_mount": m.From, "target_mount": m.To, "status": "success",
		}}}, nil
	}
	if p != "remount" {
		return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/"+p)
	}
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	from, err := remountPath(req.Data, "from")
	if err != nil {
		return nil, err
	}
	to, err := remountPath(req.Data, "to")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{from, to} {
		if p == "auth/" {
			return nil, engines.BadRequest("cannot move a mount from or to %q: name the auth method, e.g. \"auth/approle\"", p)
		}
		if err := ReservedMountPath("remount", p); err != nil {
			return nil, err
		}
	}
	src, ok := s.st.mounts.Get(from)
	if !ok {
		return nil, engines.BadRequest("no mount at %q to move; list them with `ledger secrets list` or `ledger auth list`", from)
	}
	switch {
	case src.IsAuth() && !strings.HasPrefix(to, "auth/"):
		return nil, engines.BadRequest("cannot move the auth method at %q to %q: auth methods stay under auth/", from, to)
	case !src.IsAuth() && strings.HasPrefix(to, "auth/"):
		return nil, engines.BadRequest("cannot move the secrets engine at %q under auth/", from)
	case from == to:
		return nil, engines.BadRequest("%q is already at %q", from, to)
	}
	for _, m := range s.st.mounts.List() {
		if m.UUID != src.UUID && (strings.HasPrefix(m.Path, to) || strings.HasPrefix(to, m.Path)) {
			return nil, engines.BadRequest("path is already in use at %s", m.Path)
		}
	}
	var warnings []string
	if unknown := engines.Unknown(req.Data, "from", "to"); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	id := newUUID()
	b, _ := json.Marshal(mount.MovedPayload{From: from, To: to, UUID: src.UUID, MigrationID: id, Time: req.Now})
	st, uuid := s.st, src.UUID
	s.after = func() {
		// The backend was built with the old path; the next request builds it anew.
		st.dropBackend(uuid)
		st.migrations.Store(id, remountStatus{From: from, To: to, Time: req.Now})
	}
	return &engines.Response{Data: map[string]any{"migration_id": id}, Warnings: warnings,
		Events: []ledger.Event{{Type: mount.Moved, Subject: ledger.SubjectFor("mount", from), Payload: b}}}, nil
}

// remountPath reads and normalises one side of a remount: a mount path with a trailing slash.
func remountPath(data map[string]any, key string) (string, error) {
	p, err := engines.String(data, key, "")
	if err != nil {
		return "", err
	}
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return "", engines.BadRequest("field %q is required: the mount's path, e.g. \"transit\" or \"auth/approle\"", key)
	}
	if !mountPathRE.MatchString(p) || ValidatePath(p) != nil {
		return "", engines.BadRequest("invalid mount path %q for %q: use letters, digits, '-', '_', '.' and '/' between segments", p, key)
	}
	return p + "/", nil
}
