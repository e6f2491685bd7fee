package commands

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*sysBackend)(nil)

// Shorthands for the route tables of this package.
var (
	opsR   = []engines.Operation{engines.OpRead}
	opsL   = []engines.Operation{engines.OpList}
	opsU   = []engines.Operation{engines.OpUpdate}
	opsRU  = []engines.Operation{engines.OpRead, engines.OpUpdate}
	opsRUD = []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpDelete}
	opsUD  = []engines.Operation{engines.OpUpdate, engines.OpDelete}
	opsRL  = []engines.Operation{engines.OpRead, engines.OpList}
)

func pathField(name, desc string) engines.Field {
	return engines.Field{Name: name, Type: "string", In: "path", Description: desc}
}

var mountFields = []engines.Field{
	{Name: "type", Type: "string", Description: "The type of the backend: kv, transit, database, approle, userpass."},
	{Name: "description", Type: "string", Description: "User-friendly description for this mount."},
	{Name: "config", Type: "map", Description: "Configuration for this mount: default_lease_ttl, max_lease_ttl."},
	{Name: "options", Type: "map", Description: "Mount-type options, such as version=2 for KV."},
	{Name: "local", Type: "bool", Description: "Mark the mount as local (accepted; Ledger has no replication)."},
	{Name: "seal_wrap", Type: "bool", Description: "Accepted for compatibility; every value is sealed already."},
	{Name: "plugin_name", Type: "string", Description: "Name of the plugin; the same as type for built-in engines."},
	{Name: "plugin_version", Type: "string", Description: "Accepted for compatibility; built-in engines have one version."},
	{Name: "external_entropy_access", Type: "bool", Description: "Accepted for compatibility."},
}

var tuneFields = []engines.Field{
	{Name: "default_lease_ttl", Type: "duration", Description: "The default lease duration of the mount."},
	{Name: "max_lease_ttl", Type: "duration", Description: "The maximum lease duration of the mount."},
	{Name: "description", Type: "string", Description: "User-friendly description for this mount."},
	{Name: "options", Type: "map", Description: "Mount-type options, such as version=2 for KV."},
}

// Routes implements engines.Describer for the authenticated sys/ paths.
func (s *sysBackend) Routes() []engines.Route { return sysRouteTable }

// sysRouteTable is built once; callers only read it.
var sysRouteTable = buildSysRoutes()

func buildSysRoutes() []engines.Route {
	mountPath := pathField("path", "The path to mount to, such as secret/.")
	rs := []engines.Route{
		{Pattern: "mounts", Operations: opsR, Summary: "List the currently mounted secrets engines."},
		{Pattern: "mounts/{path...}", Operations: opsRUD, Summary: "Enable, read or disable a secrets engine at a path.",
			Fields: append([]engines.Field{mountPath}, mountFields...)},
		{Pattern: "mounts/{path...}/tune", Operations: opsRU, Summary: "Tune the configuration of a secrets engine.",
			Fields: append([]engines.Field{mountPath}, tuneFields...)},
		{Pattern: "auth", Operations: opsR, Summary: "List the currently enabled auth methods."},
		{Pattern: "auth/{path...}", Operations: opsRUD, Summary: "Enable, read or disable an auth method at a path.",
			Fields: append([]engines.Field{mountPath}, mountFields...)},
		{Pattern: "auth/{path...}/tune", Operations: opsRU, Summary: "Tune the configuration of an auth method.",
			Fields: append([]engines.Field{mountPath}, tuneFields...)},
		{Pattern: "policies/acl", Operations: opsRL, Summary: "List the names of the ACL policies."},
		{Pattern: "policies/acl/{name}", Operations: opsRUD, Summary: "Read, write or delete an ACL policy.",
			Fields: []engines.Field{pathField("name", "The name of the policy."),
				{Name: "policy", Type: "string", Description: "The policy document, in HCL or JSON."}}},
		{Pattern: "policy", Operations: opsRL, Summary: "List the names of the ACL policies (legacy path)."},
		{Pattern: "policy/{name}", Operations: opsRUD, Summary: "Read, write or delete an ACL policy (legacy path).",
			Fields: []engines.Field{pathField("name", "The name of the policy."),
				{Name: "policy", Type: "string", Description: "The policy document, in HCL or JSON."},
				{Name: "rules", Type: "string", Description: "The policy document (deprecated name of policy).", Deprecated: true}}},
		{Pattern: "capabilities-self", Operations: opsU, Summary: "The capabilities of the calling token on paths.",
			Fields: []engines.Field{{Name: "paths", Type: "[]string", Description: "Paths to check."},
				{Name: "path", Type: "[]string", Description: "Deprecated single path.", Deprecated: true}}},
		{Pattern: "capabilities", Operations: opsU, Summary: "The capabilities of a token on paths.",
			Fields: []engines.Field{{Name: "token", Type: "string", Description: "The token to check."},
				{Name: "paths", Type: "[]string", Description: "Paths to check."},
				{Name: "path", Type: "[]string", Description: "Deprecated single path.", Deprecated: true}}},
		{Pattern: "capabilities-accessor", Operations: opsU, Summary: "The capabilities of the token behind an accessor on paths.",
			Fields: []engines.Field{{Name: "accessor", Type: "string", Description: "The accessor of the token to check."},
				{Name: "paths", Type: "[]string", Description: "Paths to check."},
				{Name: "path", Type: "[]string", Description: "Deprecated single path.", Deprecated: true}}},
		{Pattern: "internal/ui/mounts", Operations: opsR, Summary: "The mounts the calling token can see."},
		{Pattern: "internal/ui/mounts/{path...}", Operations: opsR, Summary: "The mount that holds a path.",
			Fields: []engines.Field{pathField("path", "The path whose mount is wanted.")}},
		{Pattern: "internal/specs/openapi", Operations: opsR, Summary: "The OpenAPI 3 document of every path the calling token can see, generated from the routes.",
			Fields: []engines.Field{{Name: "generic_mount_paths", Type: "bool", Description: "Show mounts as {mount_path} parameters (accepted; Ledger shows real mount paths)."},
				{Name: "context", Type: "string", Description: "Accepted for compatibility."}}},
		{Pattern: "key-status", Operations: opsR, Summary: "The current term and install time of the keyring's primary key."},
		{Pattern: "rotate", Operations: opsU, Summary: "Add a new primary key to the keyring; old keys keep decrypting."},
		{Pattern: "seal", Operations: opsU, Summary: "Seal this server: views dropped, keys zeroed."},
		{Pattern: "step-down", Operations: opsU, Summary: "Make the active node give up the lease; a standby takes over."},
		{Pattern: "ha-status", Operations: opsR, Summary: "The nodes of the cluster and which one is active."},
		{Pattern: "leases/lookup", Operations: opsU, Summary: "Look up a lease.",
			Fields: []engines.Field{{Name: "lease_id", Type: "string", Description: "The ID of the lease."}}},
		{Pattern: "leases/lookup/{prefix...}", Operations: opsL, Summary: "List the lease IDs under a prefix.",
			Fields: []engines.Field{pathField("prefix", "The lease ID prefix to list.")}},
		{Pattern: "leases/renew", Operations: opsU, Summary: "Renew a lease.",
			Fields: []engines.Field{{Name: "lease_id", Type: "string", Description: "The ID of the lease."},
				{Name: "increment", Type: "duration", Description: "The requested extension of the lease."}}},
		{Pattern: "leases/renew/{lease_id...}", Operations: opsU, Summary: "Renew a lease named in the path.",
			Fields: []engines.Field{pathField("lease_id", "The ID of the lease."),
				{Name: "increment", Type: "duration", Description: "The requested extension of the lease."}}},
		{Pattern: "renew", Operations: opsU, Summary: "Renew a lease (legacy path).",
			Fields: []engines.Field{{Name: "lease_id", Type: "string", Description: "The ID of the lease."},
				{Name: "increment", Type: "duration", Description: "The requested extension of the lease."}}},
		{Pattern: "renew/{lease_id...}", Operations: opsU, Summary: "Renew a lease named in the path (legacy path).",
			Fields: []engines.Field{pathField("lease_id", "The ID of the lease."),
				{Name: "increment", Type: "duration", Description: "The requested extension of the lease."}}},
		{Pattern: "leases/revoke", Operations: opsU, Summary: "Revoke a lease.",
			Fields: []engines.Field{{Name: "lease_id", Type: "string", Description: "The ID of the lease."},
				{Name: "sync", Type: "bool", Description: "Wait for the revocation (default true); false answers 202 and revokes in the background."}}},
		{Pattern: "leases/revoke/{lease_id...}", Operations: opsU, Summary: "Revoke a lease named in the path.",
			Fields: []engines.Field{pathField("lease_id", "The ID of the lease."),
				{Name: "sync", Type: "bool", Description: "Wait for the revocation (default true)."}}},
		{Pattern: "revoke", Operations: opsU, Summary: "Revoke a lease (legacy path).",
			Fields: []engines.Field{{Name: "lease_id", Type: "string", Description: "The ID of the lease."},
				{Name: "sync", Type: "bool", Description: "Wait for the revocation (default true)."}}},
		{Pattern: "revoke/{lease_id...}", Operations: opsU, Summary: "Revoke a lease named in the path (legacy path).",
			Fields: []engines.Field{pathField("lease_id", "The ID of the lease."),
				{Name: "sync", Type: "bool", Description: "Wait for the revocation (default true)."}}},
	}
	for _, pre := range []string{"leases/revoke-prefix", "revoke-prefix"} {
		rs = append(rs, engines.Route{Pattern: pre + "/{prefix...}", Operations: opsU, Summary: "Revoke every lease under a prefix.",
			Fields: []engines.Field{pathField("prefix", "The lease ID prefix."),
				{Name: "sync", Type: "bool", Description: "Wait for the revocations (default true)."}}})
	}
	rs = append(rs, wrappingRoutes()...)
	rs = append(rs, ceremonyRoutes()...) // rekey.go
	for _, pre := range []string{"leases/revoke-force", "revoke-force"} {
		rs = append(rs, engines.Route{Pattern: pre + "/{prefix...}", Operations: opsU, Summary: "Forget every lease under a prefix without revoking it at the backend.",
			Fields: []engines.Field{pathField("prefix", "The lease ID prefix.")}})
	}
	rs = append(rs, miscRoutes()...) // sys_misc_routes.go
	return append(append(rs,
		engines.Route{Pattern: "audit", Operations: opsR, Summary: "List the enabled audit devices."},
		engines.Route{Pattern: "audit/{path...}", Operations: opsUD, Summary: "Enable or disable an audit device.",
			Fields: []engines.Field{pathField("path", "The path of the audit device."),
				{Name: "type", Type: "string", Description: "The type of the device: file, syslog, socket, http."},
				{Name: "description", Type: "string", Description: "User-friendly description."},
				{Name: "options", Type: "map", Description: "Device options, such as file_path."},
				{Name: "local", Type: "bool", Description: "Accepted for compatibility."}}},
		engines.Route{Pattern: "audit-hash/{path...}", Operations: opsU, Summary: "The HMAC of an input as the audit device writes it.",
			Fields: []engines.Field{pathField("path", "The path of the audit device."),
				{Name: "input", Type: "string", Description: "The value to hash."}}},
		engines.Route{Pattern: "storage/raft/snapshot", Operations: opsRU, Summary: "Download a snapshot (GET) or restore one (POST the file)."},
		engines.Route{Pattern: "storage/raft/snapshot-force", Operations: opsU, Summary: "Restore a snapshot taken by another cluster."},
		engines.Route{Pattern: "storage/raft/configuration", Operations: opsR, Summary: "The nodes of the cluster: which hold a copy of the log (voters) and which is active (leader)."},
		engines.Route{Pattern: "storage/raft/remove-peer", Operations: opsU, Summary: "Retire a node: JetStream moves its copies of the streams to another server.",
			Fields: []engines.Field{{Name: "server_id", Type: "string", Description: "The node's id, as list-peers shows it."}}},
		engines.Route{Pattern: "storage/raft/autopilot/state", Operations: opsR, Summary: "The health of every node's copy of the log, and how many nodes the cluster can lose."},
		engines.Route{Pattern: "storage/raft/autopilot/configuration", Operations: opsRU, Summary: "The fixed rules the autopilot state applies (read only)."},
		engines.Route{Pattern: "ledger/history/{path...}", Operations: opsR, Summary: "Every change to a secret, policy or mount: when, what, by whom; never a value.",
			Fields: []engines.Field{pathField("path", "The API path whose history is wanted.")}},
		engines.Route{Pattern: "ledger/at/{path...}", Operations: opsR, Summary: "A read as of a past moment.",
			Fields: []engines.Field{pathField("path", "The API path to read."),
				{Name: "time", Type: "string", Description: "The moment, RFC 3339."},
				{Name: "seq", Type: "string", Description: "A log sequence number instead of a time."}}},
		engines.Route{Pattern: "ledger/audit/verify", Operations: opsRU, Summary: "Recompute the hash chain of the log and name the first gap or change.",
			Fields: []engines.Field{{Name: "from", Type: "int", Description: "The first sequence to verify."}}},
		engines.Route{Pattern: "ledger/audit/query", Operations: opsR, Summary: "Search audit records.",
			Fields: append(auditFilterFields(), engines.Field{Name: "limit", Type: "int", Description: "The most records to return."})},
		engines.Route{Pattern: "ledger/audit/tail", Operations: opsR, Summary: "The newest audit records, and those after a cursor.",
			Fields: append(auditFilterFields(), engines.Field{Name: "n", Type: "int", Description: "How many records."},
				engines.Field{Name: "cursor", Type: "string", Description: "Where the previous call ended."})},
		engines.Route{Pattern: "ledger/audit/checkpoints", Operations: opsR, Summary: "The recorded chain-head checkpoints."},
		engines.Route{Pattern: "ledger/audit/checkpoint", Operations: opsU, Summary: "Record a checkpoint of the chain head now."},
		engines.Route{Pattern: "ledger/audit/devices", Operations: opsR, Summary: "The delivery position of each audit device."},
		engines.Route{Pattern: "ledger/replay/verify", Operations: opsRU, Summary: "Rebuild every view from the log beside the live ones and compare digests (POST), or follow the running verify (GET)."},
	), moreSysRoutes()...)
}

func auditFilterFields() []engines.Field {
	return []engines.Field{{Name: "path", Type: "string", Description: "Only records of this path (prefix with a trailing *)."},
		{Name: "accessor", Type: "string", Description: "Only records of this token accessor."},
		{Name: "exclude_path", Type: "string", Description: "Leave out records of this path."},
		{Name: "errors_only", Type: "bool", Description: "Only failed requests."},
		{Name: "since", Type: "string", Description: "Start time, RFC 3339 or a duration ago."},
		{Name: "until", Type: "string", Description: "End time, RFC 3339 or a duration ago."}}
}
