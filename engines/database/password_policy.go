package database

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
	dbview "github.com/ledger-secrets/ledger/projections/database"
)

// WithPasswordGenerator lets connection configs name a password policy (sys/policies/password):
// gen returns a password from the named policy, or an error when there is no such policy.
// Without it, a config that names a policy cannot issue passwords at all, rather than
// silently issue weaker ones.
func WithPasswordGenerator(gen func(ctx context.Context, policy string) (string, error)) Option {
	return func(b *Backend) { b.genPassword = gen }
}

// newPassword returns a password for a user of connection c: from its password_policy when it
// names one, else by the default rules (Vault's default policy).
func (b *Backend) newPassword(ctx context.Context, c dbview.Config) (string, error) {
	if c.PasswordPolicy == "" {
		return NewPassword()
	}
	if b.genPassword == nil {
		return "", engines.BadRequest("password_policy %q cannot be used: this server has no password policies", c.PasswordPolicy)
	}
	return b.genPassword(ctx, c.PasswordPolicy)
}
