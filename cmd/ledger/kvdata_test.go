package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, []byte("-----BEGIN-----\nabc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonFile := filepath.Join(dir, "data.json")
	if err := os.WriteFile(jsonFile, []byte(`{"user":"bob","port":5432}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		want    map[string]any
		wantErr string
	}{
		{name: "pairs", args: []string{"message=vault works", "a=b=c"}, want: map[string]any{"message": "vault works", "a": "b=c"}},
		{name: "empty value", args: []string{"k="}, want: map[string]any{"k": ""}},
		{name: "value from file", args: []string{"cert=@" + certFile}, want: map[string]any{"cert": "-----BEGIN-----\nabc\n"}},
		{name: "escaped at", args: []string{`handle=\@bob`}, want: map[string]any{"handle": "@bob"}},
		{name: "value from stdin", args: []string{"password=-"}, stdin: "s3cret", want: map[string]any{"password": "s3cret"}},
		{name: "object from stdin", args: []string{"-"}, stdin: `{"a":"b","n":3}`, want: map[string]any{"a": "b", "n": json.Number("3")}},
		{name: "object from file", args: []string{"@" + jsonFile, "extra=1"}, want: map[string]any{"user": "bob", "port": json.Number("5432"), "extra": "1"}},
		{name: "repeated key makes a list", args: []string{"p=a", "p=b", "p=c"}, want: map[string]any{"p": []any{"a", "b", "c"}}},
		{name: "no args", args: nil, want: map[string]any{}},
		{name: "not a pair", args: []string{"oops"}, wantErr: "format must be key=value"},
		{name: "empty key", args: []string{"=v"}, wantErr: "empty key"},
		{name: "stdin twice", args: []string{"a=-", "b=-"}, stdin: "x", wantErr: "only once"},
		{name: "bad JSON on stdin", args: []string{"-"}, stdin: "[1,2]", wantErr: "parse JSON object from stdin"},
		{name: "missing file", args: []string{"k=@" + filepath.Join(dir, "nope")}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseData(tt.args, strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseData(%q) = %#v, want %#v", tt.args, got, tt.want)
			}
		})
	}
}

func TestParseStringMap(t *testing.T) {
	t.Parallel()
	got, err := parseStringMap([]string{"team=web", "env=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"team": "web", "env": "a=b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseStringMap([]string{"novalue"}); err == nil {
		t.Error("want an error for a pair without '='")
	}
	if got, err := parseStringMap(nil); err != nil || got != nil {
		t.Errorf("parseStringMap(nil) = %v, %v; want nil, nil", got, err)
	}
}
