package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Output formats of an audit device (its "format" option). json is Vault's audit JSON, a
// request and a response entry per record, unchanged; the SIEM formats write one line per
// record, built from the response entry (which holds the request too).
const (
	OutputJSON = "json"
	OutputOCSF = "ocsf" // Open Cybersecurity Schema Framework, OCSFVersion
	OutputECS  = "ecs"  // Elastic Common Schema, ECSVersion
	OutputCEF  = "cef"  // ArcSight Common Event Format, version 0
)

// Schema versions the SIEM formats follow.
const (
	OCSFVersion = "1.1.0"
	ECSVersion  = "8.11.0"
)

// siemLine renders one record (its response entry) in a SIEM format. product is Ledger's
// version, for the formats' product fields.
func siemLine(output string, e Entry, product string) ([]byte, error) {
	switch output {
	case OutputOCSF:
		return json.Marshal(ocsfEvent(e, product))
	case OutputECS:
		return json.Marshal(ecsEvent(e, product))
	case OutputCEF:
		return []byte(cefLine(e, product)), nil
	}
	return nil, fmt.Errorf("unknown audit output format %q", output)
}

// facts are what every SIEM format says of a record, derived once.
type facts struct {
	op, path, reqID  string
	login            bool
	ok, denied       bool
	user, userID     string
	accessor         string
	ip               string
	port             int
	mountType, mount string
	millis           int64
	ts               time.Time
	pos              string
	err              string
	policies         []string
}

func factsOf(e Entry) facts {
	f := facts{}
	if e.Request != nil {
		f.op, f.path, f.reqID = e.Request.Operation, e.Request.Path, e.Request.ID
		f.ip, f.port = e.Request.RemoteAddress, e.Request.RemotePort
		f.mountType, f.mount = e.Request.MountType, e.Request.MountPoint
		f.accessor = e.Request.ClientTokenAccessor
	}
	f.ts, _ = time.Parse(time.RFC3339Nano, e.Time)
	f.millis = f.ts.UnixMilli()
	f.err = e.Error
	f.ok = e.Error == ""
	f.denied = strings.Contains(e.Error, "permission denied")
	f.login = isLogin(f.path)
	a := e.Auth
	if f.login && e.Response != nil && e.Response.Auth != nil {
		a = e.Response.Auth
	}
	if a != nil {
		f.user, f.userID, f.policies = a.DisplayName, a.EntityID, a.Policies
		if f.accessor == "" {
			f.accessor = a.Accessor
		}
	}
	if f.login && f.user == "" {
		// A failed login names its user only in the path (auth/userpass/login/alice).
		if i := strings.LastIndex(f.path, "/login/"); i >= 0 {
			f.user = f.path[i+len("/login/"):]
		}
	}
	if e.Ledger != nil {
		f.pos = e.Ledger.String()
	}
	return f
}

// isLogin: a request to an auth method's login endpoint (auth/<mount>/login[/<name>]).
func isLogin(path string) bool {
	if !strings.HasPrefix(path, "auth/") || strings.HasPrefix(path, "auth/token/") {
		return false
	}
	return strings.HasSuffix(path, "/login") || strings.Contains(path, "/login/")
}

// OCSF activity ids of API Activity (class 6003).
func apiActivity(op string) (int, string) {
	switch op {
	case "create":
		return 1, "Create"
	case "read", "list":
		return 2, "Read"
	case "update", "patch":
		return 3, "Update"
	case "delete":
		return 4, "Delete"
	}
	return 99, "Other"
}

func (f facts) severity() (int, string) {
	switch {
	case f.denied:
		return 3, "Medium"
	case !f.ok:
		return 2, "Low"
	}
	return 1, "Informational"
}

func (f facts) status() (int, string) {
	if f.ok {
		return 1, "Success"
	}
	return 2, "Failure"
}

// ocsfEvent maps a record to OCSF: Authentication (3002) for logins, API Activity (6003) for
// every other request. Field by field in README "SIEM formats".
func ocsfEvent(e Entry, product string) map[string]any {
	f := factsOf(e)
	sevID, sev := f.severity()
	stID, st := f.status()
	ev := map[string]any{
		"time":        f.millis,
		"severity_id": sevID,
		"severity":    sev,
		"status_id":   stID,
		"status":      st,
		"metadata": map[string]any{
			"version":         OCSFVersion,
			"uid":             f.pos,
			"correlation_uid": f.reqID,
			"log_name":        "audit",
			"product":         map[string]any{"name": "Ledger", "vendor_name": "Ledger", "version": product},
		},
		"src_endpoint": ocsfEndpoint(f),
		"unmapped":     map[string]any{"ledger": e.Ledger},
	}
	if f.err != "" {
		ev["status_detail"] = f.err
	}
	user := map[string]any{}
	if f.user != "" {
		user["name"] = f.user
	}
	if f.userID != "" {
		user["uid"] = f.userID
	}
	if len(user) == 0 {
		user["name"] = "anonymous"
	}
	if f.login {
		ev["category_uid"], ev["category_name"] = 3, "Identity & Access Management"
		ev["class_uid"], ev["class_name"] = 3002, "Authentication"
		ev["activity_id"], ev["activity_name"] = 1, "Logon"
		ev["type_uid"], ev["type_name"] = 3002*100+1, "Authentication: Logon"
		ev["user"] = user
		ev["service"] = map[string]any{"name": f.mount, "uid": f.mountType}
		ev["auth_protocol_id"], ev["auth_protocol"] = 99, f.mountType
		ev["message"] = "login " + f.path
		if f.accessor != "" {
			ev["session"] = map[string]any{"uid": f.accessor}
		}
		return ev
	}
	actID, act := apiActivity(f.op)
	ev["category_uid"], ev["category_name"] = 6, "Application Activity"
	ev["class_uid"], ev["class_name"] = 6003, "API Activity"
	ev["activity_id"], ev["activity_name"] = actID, act
	ev["type_uid"], ev["type_name"] = 6003*100+actID, "API Activity: "+act
	actor := map[string]any{"user": user}
	if f.accessor != "" {
		actor["session"] = map[string]any{"uid": f.accessor}
	}
	ev["actor"] = actor
	resp := map[string]any{}
	if f.err != "" {
		resp["error"], resp["message"] = "error", f.err
	}
	ev["api"] = map[string]any{
		"operation": f.op,
		"request":   map[string]any{"uid": f.reqID},
		"response":  resp,
		"service":   map[string]any{"name": f.mountType},
	}
	ev["resources"] = []any{map[string]any{"name": f.path, "type": f.mountType}}
	ev["message"] = f.op + " " + f.path
	return ev
}

func ocsfEndpoint(f facts) map[string]any {
	if f.ip == "" {
		return map[string]any{"name": "unknown"}
	}
	ep := map[string]any{"ip": f.ip}
	if f.port > 0 {
		ep["port"] = f.port
	}
	return ep
}

// ecsEvent maps a record to the Elastic Common Schema.
func ecsEvent(e Entry, product string) map[string]any {
	f := factsOf(e)
	outcome := "success"
	if !f.ok {
		outcome = "failure"
	}
	event := map[string]any{
		"kind":     "event",
		"module":   "ledger",
		"dataset":  "ledger.audit",
		"provider": "ledger",
		"action":   f.op,
		"outcome":  outcome,
		"id":       f.pos,
		"created":  f.ts.UTC().Format(time.RFC3339Nano),
	}
	if f.login {
		event["category"] = []string{"authentication"}
		event["action"] = "login"
		event["type"] = []string{map[bool]string{true: "start", false: "info"}[f.ok]}
	} else {
		event["category"] = []string{"configuration"}
		event["type"] = []string{ecsType(f.op)}
	}
	if f.err != "" {
		event["reason"] = f.err
	}
	ev := map[string]any{
		"@timestamp": f.ts.UTC().Format(time.RFC3339Nano),
		"ecs":        map[string]any{"version": ECSVersion},
		"event":      event,
		"message":    f.op + " " + f.path,
		"url":        map[string]any{"path": "/v1/" + f.path},
		"http":       map[string]any{"request": map[string]any{"id": f.reqID}},
		"service":    map[string]any{"name": "ledger", "type": "ledger", "version": product},
		"ledger":     e.Ledger,
	}
	user := map[string]any{}
	if f.user != "" {
		user["name"] = f.user
	}
	if f.userID != "" {
		user["id"] = f.userID
	}
	if len(f.policies) > 0 {
		user["roles"] = f.policies
	}
	if len(user) > 0 {
		ev["user"] = user
	}
	if f.ip != "" {
		src := map[string]any{"ip": f.ip, "address": f.ip}
		if f.port > 0 {
			src["port"] = f.port
		}
		ev["source"] = src
	}
	if f.err != "" {
		ev["error"] = map[string]any{"message": f.err}
	}
	if f.accessor != "" {
		ev["session"] = map[string]any{"id": f.accessor} // not ECS core: a custom field
	}
	return ev
}

func ecsType(op string) string {
	switch op {
	case "read", "list":
		return "access"
	case "create":
		return "creation"
	case "update", "patch":
		return "change"
	case "delete":
		return "deletion"
	}
	return "info"
}

// cefLine maps a record to one ArcSight CEF line:
// CEF:0|Ledger|Ledger|version|signature|name|severity|extension.
func cefLine(e Entry, product string) string {
	f := factsOf(e)
	sig, cat := "ledger:"+f.op, "API Activity"
	if f.login {
		sig, cat = "ledger:login", "Authentication"
	}
	sev := 3
	switch {
	case f.denied:
		sev = 7
	case !f.ok:
		sev = 5
	}
	outcome := "success"
	if !f.ok {
		outcome = "failure"
	}
	var ext []string
	add := func(k, v string) {
		if v != "" {
			ext = append(ext, k+"="+cefExt(v))
		}
	}
	add("rt", strconv.FormatInt(f.millis, 10))
	add("cat", cat)
	add("act", f.op)
	add("outcome", outcome)
	add("request", f.path)
	add("requestMethod", f.op)
	add("externalId", f.reqID)
	add("suser", f.user)
	add("suid", f.userID)
	add("src", f.ip)
	if f.port > 0 {
		add("spt", strconv.Itoa(f.port))
	}
	add("reason", f.err)
	if f.pos != "" {
		add("cs1Label", "ledgerPosition")
		add("cs1", f.pos)
	}
	if f.accessor != "" {
		add("cs2Label", "tokenAccessor")
		add("cs2", f.accessor)
	}
	if f.mountType != "" {
		add("cs3Label", "mountType")
		add("cs3", f.mountType)
	}
	name := f.op + " " + f.path
	if f.login {
		name = "login " + f.path
	}
	return strings.Join([]string{"CEF:0", cefHeader("Ledger"), cefHeader("Ledger"), cefHeader(product),
		cefHeader(sig), cefHeader(name), strconv.Itoa(sev), strings.Join(ext, " ")}, "|")
}

// cefHeader escapes a header field: backslash and pipe are escaped; a line break, which the
// header cannot hold, becomes a space.
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// cefExt escapes an extension value: backslash, equals sign and line breaks.
func cefExt(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(s)
}
