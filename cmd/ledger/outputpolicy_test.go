package main

import "testing"

func TestPolicyFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path, want string
	}{
		{"GET", "secret/data/myapp/x", "path \"secret/data/myapp/x\" {\n  capabilities = [\"read\"]\n}\n"},
		{"PUT", "/secret/data/myapp/x/", "path \"secret/data/myapp/x\" {\n  capabilities = [\"create\", \"update\"]\n}\n"},
		{"POST", "auth/token/create", "path \"auth/token/create\" {\n  capabilities = [\"create\", \"update\"]\n}\n"},
		{"PATCH", "secret/data/x", "path \"secret/data/x\" {\n  capabilities = [\"patch\"]\n}\n"},
		{"DELETE", "secret/metadata/x", "path \"secret/metadata/x\" {\n  capabilities = [\"delete\"]\n}\n"},
		{"LIST", "secret/metadata/", "path \"secret/metadata\" {\n  capabilities = [\"list\"]\n}\n"},
		{"PUT", "sys/rotate", "path \"sys/rotate\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n"},
		{"GET", "sys/audit", "path \"sys/audit\" {\n  capabilities = [\"read\", \"sudo\"]\n}\n"},
		{"PUT", "sys/leases/revoke-prefix/database/creds", "path \"sys/leases/revoke-prefix/database/creds\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n"},
		{"PUT", "sys/leases/revoke", "path \"sys/leases/revoke\" {\n  capabilities = [\"create\", \"update\"]\n}\n"},
	}
	for _, tt := range tests {
		if got := policyFor(tt.method, tt.path); got != tt.want {
			t.Errorf("policyFor(%s, %s) =\n%s\nwant\n%s", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestKVTargetPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target kvTarget
		api    string
		want   string
	}{
		{kvTarget{mount: "secret", rel: "myapp/x", version: 2}, "data", "secret/data/myapp/x"},
		{kvTarget{mount: "secret", rel: "myapp/x", version: 2}, "metadata", "secret/metadata/myapp/x"},
		{kvTarget{mount: "secret", rel: "", version: 2}, "metadata", "secret/metadata"},
		{kvTarget{mount: "team/kv", rel: "a", version: 2}, "destroy", "team/kv/destroy/a"},
		{kvTarget{mount: "kv1", rel: "a/b", version: 1}, "data", "kv1/a/b"},
		{kvTarget{rel: "old/a", version: 1}, "data", "old/a"},
	}
	for _, tt := range tests {
		if got := tt.target.path(tt.api); got != tt.want {
			t.Errorf("%+v.path(%q) = %q, want %q", tt.target, tt.api, got, tt.want)
		}
	}
}
