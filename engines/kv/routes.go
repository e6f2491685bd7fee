package kv

import "github.com/ledger-secrets/ledger/engines"

var _ engines.Describer = (*Backend)(nil)

var (
	opsR    = []engines.Operation{engines.OpRead}
	opsU    = []engines.Operation{engines.OpUpdate}
	opsRU   = []engines.Operation{engines.OpRead, engines.OpUpdate}
	opsData = []engines.Operation{engines.OpRead, engines.OpUpdate, engines.OpPatch, engines.OpDelete}
	opsMeta = []engines.Operation{engines.OpRead, engines.OpList, engines.OpUpdate, engines.OpPatch, engines.OpDelete}
)

func secretPath() engines.Field {
	return engines.Field{Name: "path", Type: "string", In: "path", Description: "Location of the secret."}
}

// Routes implements engines.Describer: KV v2's endpoints, or KV v1's one path of any data.
func (b *Backend) Routes() []engines.Route {
	if b.v2 {
		return routesV2
	}
	return routesV1
}

// The route tables are built once; callers only read them.
var routesV1, routesV2 = buildRoutes(false), buildRoutes(true)

func buildRoutes(v2 bool) []engines.Route {
	if !v2 {
		return []engines.Route{{Pattern: "{path...}", Operations: []engines.Operation{engines.OpRead, engines.OpList, engines.OpUpdate, engines.OpDelete},
			Summary:     "Read, write, list or delete a secret (KV version 1).",
			Description: "Any field written is stored as the secret's data; a ttl field is returned as the lease duration.",
			Fields:      []engines.Field{secretPath()}, ArbitraryInput: true}}
	}
	versions := engines.Field{Name: "versions", Type: "[]int", Description: "The versions to act on."}
	return []engines.Route{
		{Pattern: "config", Operations: opsRU, Summary: "Configure the backend.",
			Fields: []engines.Field{
				{Name: "max_versions", Type: "int", Description: "The number of versions to keep for each key (default 10)."},
				{Name: "cas_required", Type: "bool", Description: "Require the cas parameter on every write."},
				{Name: "delete_version_after", Type: "duration", Description: "Delete a version this long after it was written; 0 never."}}},
		{Pattern: "data/{path...}", Operations: opsData, Summary: "Write, patch, read or delete the data of a secret.",
			Fields: []engines.Field{secretPath(),
				{Name: "data", Type: "object", Description: "The contents of the data map stored in the secret."},
				{Name: "options", Type: "object", Description: "Options for writing a KV entry: cas (the version the write expects to replace, 0 for none)."},
				{Name: "version", Type: "int", Description: "On read: the version to return; 0 or absent for the latest."}}},
		{Pattern: "metadata/{path...}", Operations: opsMeta, Summary: "Configure, read, list or delete the metadata and every version of a secret.",
			Fields: []engines.Field{secretPath(),
				{Name: "max_versions", Type: "int", Description: "The number of versions to keep; 0 means the mount's setting."},
				{Name: "cas_required", Type: "bool", Description: "Require the cas parameter on writes of this secret."},
				{Name: "delete_version_after", Type: "duration", Description: "Delete a version this long after it was written."},
				{Name: "custom_metadata", Type: "map", Description: "User-provided key-value pairs describing the secret."}}},
		{Pattern: "delete/{path...}", Operations: opsU, Summary: "Mark versions as deleted (soft delete).", Fields: []engines.Field{secretPath(), versions}},
		{Pattern: "undelete/{path...}", Operations: opsU, Summary: "Undelete soft-deleted versions.", Fields: []engines.Field{secretPath(), versions}},
		{Pattern: "destroy/{path...}", Operations: opsU, Summary: "Permanently destroy versions: their data keys are shredded.", Fields: []engines.Field{secretPath(), versions}},
		{Pattern: "subkeys/{path...}", Operations: opsR, Summary: "The structure of a secret's data with its values replaced by null.",
			Fields: []engines.Field{secretPath(),
				{Name: "version", Type: "int", Description: "The version to read; 0 for the latest."},
				{Name: "depth", Type: "int", Description: "How deep to descend into nested maps; 0 for all the way."}}},
		{Pattern: "rollback/{path...}", Operations: opsU, Summary: "Write an old version of a secret as its new current version (Ledger).",
			Fields: []engines.Field{secretPath(),
				{Name: "version", Type: "int", Description: "The version to restore."},
				{Name: "cas", Type: "int", Description: "The current version the rollback expects."}}},
		{Pattern: "import/{path...}", Operations: opsU, Summary: "Import one version of a secret from another server, with its source times (Ledger; sudo).",
			Fields: []engines.Field{secretPath(),
				{Name: "version", Type: "int", Description: "The source's version number; it must be after the current version."},
				{Name: "created_time", Type: "string", Description: "The source's created_time (RFC 3339)."},
				{Name: "deletion_time", Type: "string", Description: "The source's deletion_time (RFC 3339), if the version is deleted or scheduled for deletion."},
				{Name: "destroyed", Type: "bool", Description: "The version is destroyed at the source: it is imported without a value, destroyed."},
				{Name: "oldest_version", Type: "int", Description: "The source's oldest_version."},
				{Name: "data", Type: "object", Description: "The version's value; absent for a destroyed or deleted version."},
				{Name: "versions", Type: "array", Description: "Instead of one version's fields: a list of them, oldest first, imported in one append."}}},
	}
}
