package audit

import (
	_ "embed"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/ocsf-1.1.0-required.json
var ocsfRequired []byte

type ocsfSpec struct {
	Version   string `json:"version"`
	BaseEvent struct {
		Required []string `json:"required"`
	} `json:"base_event"`
	Classes map[string]struct {
		CategoryUID int      `json:"category_uid"`
		ActivityIDs []int    `json:"activity_ids"`
		Required    []string `json:"required"`
		AtLeastOne  []string `json:"at_least_one"`
	} `json:"classes"`
	Objects map[string]struct {
		Required   []string `json:"required"`
		AtLeastOne []string `json:"at_least_one"`
	} `json:"objects"`
	Enums map[string][]int `json:"enums"`
}

// sampleEntries are response entries as a device sees them: a KV read, a write, a denial, a
// login and a failed login.
func sampleEntries() map[string]Entry {
	at := "2026-12-04T08:00:00.123456Z"
	pos := &Position{Stream: "LEDGER", Seq: 12, Index: 3}
	auth := &Auth{Accessor: "hmac-sha256:abc", DisplayName: "token-ci", EntityID: "ent-1", Policies: []string{"default", "ci"}}
	return map[string]Entry{
		"read": {Time: at, Type: "response", Auth: auth, Ledger: pos,
			Request: &Request{ID: "r1", Operation: "read", Path: "secret/data/app/db", MountType: "kv", MountPoint: "secret/", RemoteAddress: "127.0.0.1", RemotePort: 5000}},
		"write": {Time: at, Type: "response", Auth: auth, Ledger: pos,
			Request: &Request{ID: "r2", Operation: "create", Path: "secret/data/app/db", MountType: "kv", RemoteAddress: "10.0.0.9"}},
		"denied": {Time: at, Type: "response", Ledger: pos, Error: "1 error occurred:\n\t* permission denied\n\n",
			Request: &Request{ID: "r3", Operation: "delete", Path: "sys/policies/acl/x"}},
		"login": {Time: at, Type: "response", Ledger: pos,
			Request:  &Request{ID: "r4", Operation: "update", Path: "auth/userpass/login/alice", MountType: "userpass", MountPoint: "auth/userpass/", RemoteAddress: "127.0.0.1"},
			Response: &Response{Auth: &Auth{Accessor: "hmac-sha256:def", DisplayName: "userpass-alice", EntityID: "ent-2"}}},
		"failed login": {Time: at, Type: "response", Ledger: pos, Error: "invalid username or password",
			Request: &Request{ID: "r5", Operation: "update", Path: "auth/userpass/login/mallory", MountType: "userpass", MountPoint: "auth/userpass/"}},
	}
}

// TestOCSFRequiredFields checks every sample against the OCSF 1.1.0 required attributes and
// constraints of its class, embedded as test data.
func TestOCSFRequiredFields(t *testing.T) {
	var spec ocsfSpec
	if err := json.Unmarshal(ocsfRequired, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Version != OCSFVersion {
		t.Fatalf("test data is OCSF %s, the format claims %s", spec.Version, OCSFVersion)
	}
	wantClass := map[string]int{"read": 6003, "write": 6003, "denied": 6003, "login": 3002, "failed login": 3002}
	for name, e := range sampleEntries() {
		t.Run(name, func(t *testing.T) {
			b, err := siemLine(OutputOCSF, e, "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			var ev map[string]any
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			class := int(ev["class_uid"].(float64))
			if class != wantClass[name] {
				t.Fatalf("class_uid %d, want %d", class, wantClass[name])
			}
			cs, ok := spec.Classes[strconv.Itoa(class)]
			if !ok {
				t.Fatalf("class %d not in the test data", class)
			}
			for _, k := range append(append([]string(nil), spec.BaseEvent.Required...), cs.Required...) {
				if isEmpty(ev[k]) {
					t.Errorf("required attribute %q missing: %s", k, b)
				}
			}
			if len(cs.AtLeastOne) > 0 && !slices.ContainsFunc(cs.AtLeastOne, func(k string) bool { return !isEmpty(ev[k]) }) {
				t.Errorf("none of %v present", cs.AtLeastOne)
			}
			for path, o := range spec.Objects {
				v, present := lookup(ev, path)
				if !present {
					continue // only objects the event carries are checked; required ones are checked above
				}
				obj, _ := v.(map[string]any)
				for _, k := range o.Required {
					if isEmpty(obj[k]) {
						t.Errorf("%s.%s is required: %s", path, k, b)
					}
				}
				if len(o.AtLeastOne) > 0 && !slices.ContainsFunc(o.AtLeastOne, func(k string) bool { return !isEmpty(obj[k]) }) {
					t.Errorf("%s needs one of %v: %s", path, o.AtLeastOne, b)
				}
			}
			act := int(ev["activity_id"].(float64))
			if !slices.Contains(cs.ActivityIDs, act) {
				t.Errorf("activity_id %d not defined for class %d", act, class)
			}
			if got := int(ev["type_uid"].(float64)); got != class*100+act {
				t.Errorf("type_uid %d, want class_uid*100+activity_id = %d", got, class*100+act)
			}
			if got := int(ev["category_uid"].(float64)); got != cs.CategoryUID {
				t.Errorf("category_uid %d, want %d", got, cs.CategoryUID)
			}
			for k, allowed := range spec.Enums {
				if !slices.Contains(allowed, int(ev[k].(float64))) {
					t.Errorf("%s = %v not in %v", k, ev[k], allowed)
				}
			}
			if ts := int64(ev["time"].(float64)); ts != time.Date(2026, 12, 4, 8, 0, 0, 123456000, time.UTC).UnixMilli() {
				t.Errorf("time %d is not the record's epoch milliseconds", ts)
			}
			if md := ev["metadata"].(map[string]any); md["version"] != spec.Version {
				t.Errorf("metadata.version %v", md["version"])
			}
		})
	}
	// Outcomes: a denial is a failure of higher severity than an error.
	ev := func(name string) map[string]any {
		b, _ := siemLine(OutputOCSF, sampleEntries()[name], "1")
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	if ev("read")["status_id"] != 1.0 || ev("denied")["status_id"] != 2.0 || ev("failed login")["status_id"] != 2.0 ||
		ev("denied")["severity_id"].(float64) <= ev("failed login")["severity_id"].(float64) {
		t.Error("status and severity do not follow the outcome")
	}
	if u := ev("failed login")["user"].(map[string]any); u["name"] != "mallory" {
		t.Errorf("failed login user %v", u)
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestECSFields: the ECS fields SIEM rules key on, with ECS's allowed values.
func TestECSFields(t *testing.T) {
	allowedType := map[string][]string{"configuration": {"access", "change", "creation", "deletion", "info"}, "authentication": {"start", "end", "info"}}
	for name, e := range sampleEntries() {
		b, err := siemLine(OutputECS, e, "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		json.Unmarshal(b, &ev)
		for _, k := range []string{"@timestamp", "ecs.version", "event.kind", "event.category", "event.type", "event.action", "event.outcome", "url.path"} {
			if v, ok := lookup(ev, k); !ok || isEmpty(v) {
				t.Errorf("%s: %s missing: %s", name, k, b)
			}
		}
		event := ev["event"].(map[string]any)
		cat := event["category"].([]any)[0].(string)
		typ := event["type"].([]any)[0].(string)
		if !slices.Contains(allowedType[cat], typ) {
			t.Errorf("%s: event.type %q not allowed with category %q", name, typ, cat)
		}
		if o := event["outcome"]; (e.Error == "") != (o == "success") {
			t.Errorf("%s: outcome %v", name, o)
		}
		if name == "read" {
			if src, _ := lookup(ev, "source.ip"); src != "127.0.0.1" {
				t.Errorf("source.ip %v", src)
			}
			if u, _ := lookup(ev, "user.name"); u != "token-ci" {
				t.Errorf("user.name %v", u)
			}
		}
	}
}

// TestCEFEscaping: header fields escape | and \, extension values escape \, = and line
// breaks; what is escaped still parses back to the original.
func TestCEFEscaping(t *testing.T) {
	e := sampleEntries()["denied"]
	e.Request.Path = `a|b\c=d`
	line := cefLine(e, "1.0|beta")
	if strings.ContainsAny(line, "\n\r") {
		t.Fatalf("line break in %q", line)
	}
	head := splitCEFHeader(line)
	if len(head) != 8 || head[0] != "CEF:0" || head[1] != "Ledger" || head[3] != `1.0\|beta` || head[6] != "7" {
		t.Fatalf("header %q", head)
	}
	if head[5] != `delete a\|b\\c=d` {
		t.Fatalf("name %q", head[5])
	}
	ext := head[7]
	for _, want := range []string{`request=a|b\\c\=d`, "reason=1 error occurred:\\n\t* permission denied\\n\\n", "outcome=failure", "cs1Label=ledgerPosition", "cs1=LEDGER:12.3"} {
		if !strings.Contains(ext, want) {
			t.Errorf("extension lacks %q: %s", want, ext)
		}
	}
	if p, part, ok := linePosition([]byte(line)); !ok || p != (Position{Stream: "LEDGER", Seq: 12, Index: 3}) || part != 0 {
		t.Errorf("position from CEF: %v %v %v", p, part, ok)
	}
	if cefHeader("a\nb") != "a b" || cefExt("x\ny") != `x\ny` || cefExt(`k=v\`) != `k\=v\\` {
		t.Error("escapes")
	}
}

// splitCEFHeader splits on unescaped pipes, seven times.
func splitCEFHeader(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if len(out) == 7 {
			cur.WriteString(s[i:])
			break
		}
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i])
			cur.WriteByte(s[i+1])
			i++
		case s[i] == '|':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// TestLinePositionEveryFormat: a file device reads its own tail back in every format.
func TestLinePositionEveryFormat(t *testing.T) {
	e := sampleEntries()["read"]
	for _, f := range []string{OutputOCSF, OutputECS, OutputCEF} {
		b, err := siemLine(f, e, "1")
		if err != nil {
			t.Fatal(err)
		}
		if p, part, ok := linePosition(b); !ok || p != *e.Ledger || part != 0 {
			t.Errorf("%s: %v %v %v", f, p, part, ok)
		}
	}
	b, _ := json.Marshal(e)
	if p, part, ok := linePosition(b); !ok || p != *e.Ledger || part != 1 {
		t.Errorf("json: %v %v %v", p, part, ok)
	}
}

func TestFormatOption(t *testing.T) {
	for f, want := range map[string]string{"": OutputJSON, "json": OutputJSON, "ocsf": OutputOCSF, "ecs": OutputECS, "cef": OutputCEF} {
		s, err := ParseSettings("file", map[string]string{"file_path": "discard", "format": f})
		if err != nil || s.Output != want {
			t.Errorf("format %q: %v %v", f, s.Output, err)
		}
	}
	for _, f := range []string{"jsonx", "xml", "OCSF"} {
		if _, err := ParseSettings("file", map[string]string{"file_path": "discard", "format": f}); err == nil || !strings.Contains(err.Error(), "ocsf") {
			t.Errorf("format %q: %v", f, err)
		}
	}
}
