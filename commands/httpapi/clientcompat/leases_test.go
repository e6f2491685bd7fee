package clientcompat_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	vcg "github.com/hashicorp/vault-client-go"
	"github.com/hashicorp/vault-client-go/schema"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// Leases of dynamic database credentials (a real PostgreSQL) through the generated client,
// which lists sys/leases/lookup/<escaped prefix>/ — a prefix given with its trailing slash
// arrives as "…short%2F/", i.e. "short//".
func TestLeases(t *testing.T) {
	l := dbtest.LessonPostgres(t)
	s := start(t)
	c := s.client(t, s.root)
	ctx := context.Background()
	var err error
	_, err = c.System.MountsEnableSecretsEngine(ctx, "database", schema.MountsEnableSecretsEngineRequest{Type: "database"})
	noErr(t, err)
	_, err = c.Write(ctx, "database/config/pg", map[string]any{"plugin_name": l.Plugin, "connection_url": l.ConnectionURL,
		"allowed_roles": "short", "username": l.AdminUser, "password": l.AdminPassword})
	noErr(t, err)
	_, err = c.Write(ctx, "database/roles/short", map[string]any{"db_name": "pg", "creation_statements": l.Readonly,
		"revocation_statements": l.Revocation, "default_ttl": "10m", "max_ttl": "1h"})
	noErr(t, err)
	var ids []string
	for range 2 {
		cr, err := c.Secrets.DatabaseGenerateCredentials(ctx, "short", vcg.WithMountPath("database"))
		noErr(t, err)
		if cr.LeaseID == "" || cr.LeaseDuration != 600 || !cr.Renewable || cr.Data["username"] == "" {
			t.Fatalf("creds: lease %q ttl %d renewable %v data %v", cr.LeaseID, cr.LeaseDuration, cr.Renewable, cr.Data)
		}
		ids = append(ids, cr.LeaseID)
	}
	suffix := func(id string) string { return id[strings.LastIndexByte(id, '/')+1:] }
	want := []string{suffix(ids[0]), suffix(ids[1])}
	slices.Sort(want)
	for _, prefix := range []string{"database/creds/short", "database/creds/short/"} {
		ls, err := c.System.LeasesLookUp(ctx, prefix)
		if err != nil {
			t.Fatalf("LeasesLookUp(%q): %v", prefix, err)
		}
		got := slices.Clone(ls.Data.Keys)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("LeasesLookUp(%q) = %v, want %v", prefix, got, want)
		}
	}
	_, err = c.System.LeasesLookUp(ctx, "database/creds/none/")
	wantStatus(t, err, http.StatusNotFound, "")

	info, err := c.System.LeasesReadLease(ctx, schema.LeasesReadLeaseRequest{LeaseId: ids[0]})
	noErr(t, err)
	if info.Data.Id != ids[0] || !info.Data.Renewable || info.Data.Ttl <= 0 || info.Data.ExpireTime.IsZero() {
		t.Fatalf("lease lookup %+v", info.Data)
	}
	rn, err := c.System.LeasesRenewLease(ctx, schema.LeasesRenewLeaseRequest{LeaseId: ids[0], Increment: "20m"})
	noErr(t, err)
	if rn.LeaseID != ids[0] || rn.LeaseDuration != 1200 {
		t.Fatalf("renew: lease %q ttl %d", rn.LeaseID, rn.LeaseDuration)
	}
	_, err = c.System.LeasesRevokeLease(ctx, schema.LeasesRevokeLeaseRequest{LeaseId: ids[0]})
	noErr(t, err)
	_, err = c.System.LeasesReadLease(ctx, schema.LeasesReadLeaseRequest{LeaseId: ids[0]})
	wantStatus(t, err, http.StatusBadRequest, "lease not found")
	_, err = c.System.LeasesRevokeLeaseWithPrefix(ctx, "database/creds/short", schema.LeasesRevokeLeaseWithPrefixRequest{})
	noErr(t, err)
	_, err = c.System.LeasesLookUp(ctx, "database/creds/short/")
	wantStatus(t, err, http.StatusNotFound, "")
}
