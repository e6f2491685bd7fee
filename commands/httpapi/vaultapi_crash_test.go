package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultAPICrashDurability: every KV write the client saw acknowledged survives SIGKILL of
// the server, and no secret value sits in clear anywhere under the data dir.
func TestVaultAPICrashDurability(t *testing.T) {
	dir := t.TempDir()
	srv := startChild(t, dir)
	c := srv.client("")
	init, root := srv.initUnseal()
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 50
	value := func(i int) string { return fmt.Sprintf("durable-marker-%02d-9d41c7e2b8", i) }
	for i := range n {
		if _, err := root.KVv2("secret").Put(ctx, fmt.Sprintf("crash/k%02d", i), map[string]any{"password": value(i)}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	srv.kill9()
	srv.start()
	st, err := c.Sys().SealStatus()
	if err != nil || !st.Sealed {
		t.Fatalf("after SIGKILL the server must come back sealed: %+v %v", st, err)
	}
	if _, err := c.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sec, err := root.KVv2("secret").Get(ctx, fmt.Sprintf("crash/k%02d", i))
		if err != nil {
			t.Fatalf("read %d after SIGKILL: %v", i, err)
		}
		if sec.Data["password"] != value(i) || sec.VersionMetadata.Version != 1 {
			t.Fatalf("read %d after SIGKILL = %v v%d", i, sec.Data, sec.VersionMetadata.Version)
		}
	}
	if keys := listKeys(t, root, "secret/metadata/crash/"); len(keys) != n {
		t.Fatalf("list after SIGKILL: %d keys, want %d", len(keys), n)
	}
	// The mount and the ability to write survive too.
	if _, err := root.KVv2("secret").Put(ctx, "crash/after", map[string]any{"password": "x"}); err != nil {
		t.Fatal(err)
	}

	files := dataDirFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no files in the data dir")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i := range n {
			if bytes.Contains(b, []byte(value(i))) {
				t.Fatalf("%s holds secret value %d in clear", f, i)
			}
		}
		if bytes.Contains(b, []byte(init.RootToken)) {
			t.Fatalf("%s holds the root token in clear", f)
		}
	}
}
