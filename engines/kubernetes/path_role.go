package kubernetes

import (
	"encoding/json"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
)

// Alias name sources, as Vault's.
const (
	aliasSourceUID  = "serviceaccount_uid"
	aliasSourceName = "serviceaccount_name"
)

// Role is one role, as stored in the log.
type Role struct {
	Names             []string `json:"bound_service_account_names"`
	Namespaces        []string `json:"bound_service_account_namespaces"`
	NamespaceSelector string   `json:"bound_service_account_namespace_selector,omitempty"`
	Audience          string   `json:"audience,omitempty"`
	AliasNameSource   string   `json:"alias_name_source"`
	enginetoken.RoleParams
}

// WildcardNamespaceWarning is the answer to a role bound to every namespace: it works, as in
// Vault, but anyone able to create a service account of that name anywhere logs in as it.
const WildcardNamespaceWarning = `bound_service_account_namespaces is "*": a service account with a bound name in ANY namespace (test, CI, or one a developer creates) can log in with this role; list the exact namespaces instead`

var roleFields = append([]string{"bound_service_account_names", "bound_service_account_namespaces",
	"bound_service_account_namespace_selector", "audience", "alias_name_source"}, enginetoken.RoleParamFields()...)

func (b *Backend) role(name string) (Role, bool) {
	raw, ok := b.view.Role(b.mount.UUID, name)
	if !ok {
		return Role{}, false
	}
	var r Role
	if err := json.Unmarshal(raw, &r); err != nil {
		return Role{}, false
	}
	return r, true
}

func (b *Backend) readRole(name string) (*engines.Response, error) {
	role, ok := b.role(name)
	if !ok {
		return nil, engines.ErrNotFound
	}
	d := map[string]any{
		"bound_service_account_names":              append([]string{}, role.Names...),
		"bound_service_account_namespaces":         append([]string{}, role.Namespaces...),
		"bound_service_account_namespace_selector": role.NamespaceSelector,
		"audience":          role.Audience,
		"alias_name_source": role.AliasNameSource,
	}
	role.Populate(d)
	return &engines.Response{Data: d}, nil
}

// writeRole is POST role/<name>, following Vault's pathRoleCreateUpdate.
func (b *Backend) writeRole(r *request, name string) (*engines.Response, error) {
	role, exists := b.role(name)
	if !exists {
		role = Role{AliasNameSource: aliasSourceUID}
		role.Token.Type = "default"
	}
	warnings, err := role.Parse(r.data)
	if err != nil {
		return nil, err
	}
	if engines.Has(r.data, "bound_service_account_names") {
		if role.Names, err = engines.Strings(r.data, "bound_service_account_names"); err != nil {
			return nil, err
		}
	}
	if engines.Has(r.data, "bound_service_account_namespaces") {
		if role.Namespaces, err = engines.Strings(r.data, "bound_service_account_namespaces"); err != nil {
			return nil, err
		}
	}
	for key, dst := range map[string]*string{"bound_service_account_namespace_selector": &role.NamespaceSelector, "audience": &role.Audience, "alias_name_source": &role.AliasNameSource} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.String(r.data, key, ""); err != nil {
				return nil, err
			}
		}
	}
	if len(role.Names) == 0 {
		return nil, engines.BadRequest(`"bound_service_account_names" can not be empty`)
	}
	if len(role.Namespaces) == 0 && role.NamespaceSelector == "" {
		return nil, engines.BadRequest(`"bound_service_account_namespaces" can not be empty if "bound_service_account_namespace_selector" is not set`)
	}
	if len(role.Names) > 1 && slices.Contains(role.Names, "*") {
		return nil, engines.BadRequest(`can not mix "*" with values`)
	}
	if len(role.Namespaces) > 1 && slices.Contains(role.Namespaces, "*") {
		return nil, engines.BadRequest(`can not mix "*" with values`)
	}
	if slices.Equal(role.Names, []string{"*"}) && slices.Equal(role.Namespaces, []string{"*"}) {
		return nil, engines.BadRequest(`service_account_names and service_account_namespaces can not both be "*"`)
	}
	if role.NamespaceSelector != "" {
		if _, err := parseSelector(role.NamespaceSelector); err != nil {
			return nil, engines.BadRequest(`invalid "bound_service_account_namespace_selector" configured: %v`, err)
		}
	}
	switch role.AliasNameSource {
	case aliasSourceUID, aliasSourceName:
	case "":
		role.AliasNameSource = aliasSourceUID
	default:
		return nil, engines.BadRequest("invalid alias_name_source %q, valid values: %s, %s", role.AliasNameSource, aliasSourceUID, aliasSourceName)
	}
	if slices.Equal(role.Namespaces, []string{"*"}) {
		warnings = append(warnings, WildcardNamespaceWarning)
	}
	if role.Audience == "" {
		warnings = append(warnings, "This role does not specify an audience: service-account tokens issued for any audience will be accepted.")
	}
	if unknown := engines.Unknown(r.data, roleFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	raw, err := json.Marshal(role)
	if err != nil {
		return nil, err
	}
	ev := b.event(r, authrole.RoleWritten, name, authrole.RoleWrittenPayload{Mount: b.mount.UUID, Name: name, Role: raw})
	return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

func (b *Backend) deleteRole(r *request, name string) (*engines.Response, error) {
	if _, ok := b.role(name); !ok {
		return &engines.Response{}, nil
	}
	ev := b.event(r, authrole.RoleDeleted, name, authrole.RoleDeletedPayload{Mount: b.mount.UUID, Name: name})
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

// parseSelector reads a label selector written as JSON (or YAML's JSON subset), as Vault.
func parseSelector(s string) (*metav1.LabelSelector, error) {
	var sel metav1.LabelSelector
	if err := json.Unmarshal([]byte(s), &sel); err != nil {
		return nil, err
	}
	if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
		return nil, err
	}
	return &sel, nil
}
