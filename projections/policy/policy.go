// Package policy is the ACL policy view: policy texts by name, with a version that changes on
// every write so parsed forms can be cached by (name, version). Parsing and evaluation live in
// commands/acl; this view only stores what was accepted.
package policy

import (
	"sort"
	"sync"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Event types.
const (
	Written = "policy.written.v1"
	Deleted = "policy.deleted.v1"
)

// WrittenPayload stores a policy (already validated by the writer).
type WrittenPayload struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// DeletedPayload removes a policy.
type DeletedPayload struct {
	Name string `json:"name"`
}

// Entry is a stored policy.
type Entry struct {
	Name    string          `json:"name"`
	Text    string          `json:"text"`
	Version ledger.Position `json:"version"` // position of the write that produced it
}

// DefaultText is the built-in "default" policy every token carries unless it opts out: enough
// to look itself up, renew and revoke itself, and ask what it may do. Writable like in Vault.
const DefaultText = `# Allow a token to look up its own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Allow a token to renew itself.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Allow a token to revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Allow a token to ask which capabilities it has on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Allow a token to look up its own entity and the mounts' UI metadata.
path "sys/internal/ui/mounts" {
  capabilities = ["read"]
}

path "sys/internal/ui/mounts/*" {
  capabilities = ["read"]
}

# Allow a token to renew and look up leases it holds.
path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token, and to look up and
# unwrap wrapping tokens.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Allow general purpose tools.
path "sys/tools/hash" {
  capabilities = ["update"]
}

path "sys/tools/hash/*" {
  capabilities = ["update"]
}

`

// View holds the policies.
type View struct {
	mu       sync.RWMutex
	policies map[string]Entry
}

// New returns a view holding only the built-in default policy.
func New() *View {
	return &View{policies: map[string]Entry{"default": {Name: "default", Text: DefaultText}}}
}

// Name implements projections.View.
func (v *View) Name() string { return "policy" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Written:
		var p WrittenPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		v.policies[p.Name] = Entry{Name: p.Name, Text: p.Text, Version: rec.Pos}
		v.mu.Unlock()
	case Deleted:
		var p DeletedPayload
		if err := projections.Decode(rec, &p); err != nil {
			return err
		}
		v.mu.Lock()
		delete(v.policies, p.Name)
		v.mu.Unlock()
	}
	return nil
}

// Get returns the policy called name.
func (v *View) Get(name string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.policies[name]
	return e, ok
}

// Names returns every policy name, sorted, with "root" as Vault lists it.
func (v *View) Names() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.policies)+1)
	for n := range v.policies {
		out = append(out, n)
	}
	out = append(out, "root")
	sort.Strings(out)
	return out
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return projections.EncodeList(v.policies)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	m, err := projections.DecodeList("policy", data, func(e Entry) string { return e.Name })
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.policies = m
	v.mu.Unlock()
	return nil
}
