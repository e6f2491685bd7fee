package clientcompat_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	vcg "github.com/hashicorp/vault-client-go"
	"github.com/hashicorp/vault-client-go/schema"
)

// KV v2 through the generated client: write, read, metadata, versions, and every list form
// it sends — the mount's root as "metadata//", a prefix as "metadata/vcg%2F/".
func TestKVv2(t *testing.T) {
	s := start(t)
	c := s.client(t, s.root)
	ctx := context.Background()
	mount := vcg.WithMountPath("secret")
	var err error
	for _, p := range []string{"vcg/one", "vcg/sub/two", "top"} {
		_, err = c.Secrets.KvV2Write(ctx, p, schema.KvV2WriteRequest{Data: map[string]any{"k": p}}, mount)
		noErr(t, err)
	}
	w, err := c.Secrets.KvV2Write(ctx, "top", schema.KvV2WriteRequest{Data: map[string]any{"k": "v2"}, Options: map[string]any{"cas": 1}}, mount)
	noErr(t, err)
	if w.Data.Version != 2 {
		t.Fatalf("second write version %d", w.Data.Version)
	}
	r, err := c.Secrets.KvV2Read(ctx, "top", mount)
	noErr(t, err)
	if r.Data.Data["k"] != "v2" || r.Data.Metadata["deletion_time"] != "" {
		t.Fatalf("read: %+v", r.Data)
	}
	old, err := c.Secrets.KvV2Read(ctx, "top", mount, vcg.WithQueryParameters(map[string][]string{"version": {"1"}}))
	noErr(t, err)
	if old.Data.Data["k"] != "top" {
		t.Fatalf("read version 1: %+v", old.Data)
	}

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"top", "vcg/"}},
		{"vcg", []string{"one", "sub/"}},
		{"vcg/", []string{"one", "sub/"}},
		{"vcg/sub", []string{"two"}},
	} {
		l, err := c.Secrets.KvV2List(ctx, tc.prefix, mount)
		if err != nil {
			t.Fatalf("KvV2List(%q): %v", tc.prefix, err)
		}
		got := slices.Clone(l.Data.Keys)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Fatalf("KvV2List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	_, err = c.Secrets.KvV2List(ctx, "nope", mount)
	wantStatus(t, err, http.StatusNotFound, "")

	meta, err := c.Secrets.KvV2ReadMetadata(ctx, "top", mount)
	noErr(t, err)
	if meta.Data.CurrentVersion != 2 {
		t.Fatalf("metadata current_version %d", meta.Data.CurrentVersion)
	}
	_, err = c.Secrets.KvV2DeleteVersions(ctx, "top", schema.KvV2DeleteVersionsRequest{Versions: []int32{2}}, mount)
	noErr(t, err)
	_, err = c.Secrets.KvV2UndeleteVersions(ctx, "top", schema.KvV2UndeleteVersionsRequest{Versions: []int32{2}}, mount)
	noErr(t, err)
	sub, err := c.Secrets.KvV2ReadSubkeys(ctx, "top", mount)
	noErr(t, err)
	if _, ok := sub.Data.Subkeys["k"]; !ok {
		t.Fatalf("subkeys %v", sub.Data.Subkeys)
	}
	_, err = c.Secrets.KvV2DeleteMetadataAndAllVersions(ctx, "vcg/one", mount)
	noErr(t, err)
	_, err = c.Secrets.KvV2Read(ctx, "vcg/one", mount)
	wantStatus(t, err, http.StatusNotFound, "")

	// Bad input: a CAS that does not match, and a doubled slash inside the path.
	_, err = c.Secrets.KvV2Write(ctx, "top", schema.KvV2WriteRequest{Data: map[string]any{"k": "x"}, Options: map[string]any{"cas": 1}}, mount)
	wantStatus(t, err, http.StatusBadRequest, "check-and-set parameter did not match the current version")
	_, err = c.Secrets.KvV2Write(ctx, "a//b", schema.KvV2WriteRequest{Data: map[string]any{"k": "x"}}, mount)
	wantStatus(t, err, http.StatusBadRequest, "empty segment")
}
