package token

// WithIdentityPolicies sets how the store learns a token's identity policies (its entity's and
// groups'), which lookups show as identity_policies, as Vault.
func WithIdentityPolicies(f func(entityID string) []string) Option {
	return func(b *Backend) { b.identityPolicies = f }
}

// addIdentity adds identity_policies to a lookup's data when the token's entity has any.
func (b *Backend) addIdentity(d map[string]any, entityID string) {
	if b.identityPolicies == nil || entityID == "" {
		return
	}
	if ip := b.identityPolicies(entityID); len(ip) > 0 {
		d["identity_policies"] = append([]string{}, ip...)
	}
}
