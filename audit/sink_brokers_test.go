package audit

import (
	"strings"
	"testing"
)

func TestBrokerSinkOptions(t *testing.T) {
	bad := []struct {
		typ  string
		opts map[string]string
		msg  string
	}{
		{"nats", map[string]string{}, "subject"},
		{"nats", map[string]string{"subject": "a.>"}, "subject"},
		{"nats", map[string]string{"subject": "a..b"}, "subject"},
		{"nats", map[string]string{"subject": "a", "url": "http://x"}, "nats://"},
		{"nats", map[string]string{"subject": "a", "jetstream": "maybe"}, "jetstream"},
		{"rabbitmq", map[string]string{"url": "amqp://h/"}, "routing_key"},
		{"rabbitmq", map[string]string{"url": "http://h/", "routing_key": "q"}, "amqp://"},
		{"rabbitmq", map[string]string{"url": "amqp://h/", "routing_key": strings.Repeat("k", 256)}, "255"},
		{"mqtt", map[string]string{"broker": "tcp://h:1883"}, "topic"},
		{"mqtt", map[string]string{"broker": "tcp://h:1883", "topic": "a/#"}, "wildcards"},
		{"mqtt", map[string]string{"broker": "h:1883", "topic": "a"}, "tcp://"},
		{"mqtt", map[string]string{"broker": "tcp://h", "topic": "a", "qos": "0"}, "unknown option"},
		{"kafka", map[string]string{}, "nats, rabbitmq or mqtt"},
	}
	for _, tc := range bad {
		if _, err := ParseSettings(tc.typ, tc.opts); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %v: %v, want an error saying %q", tc.typ, tc.opts, err, tc.msg)
		}
	}
	s, err := ParseSettings("mqtt", map[string]string{"broker": "tcp://h:1883", "topic": "ledger/audit"})
	if err != nil || s.ClientID != "ledger-audit" {
		t.Fatalf("mqtt defaults: %+v %v", s, err)
	}
	d := Device{Options: map[string]string{"url": "amqp://guest:hunter2@h:5672/", "password": "hunter2", "broker": "tcp://u:hunter2@h:1883"}}
	for k, v := range d.Redacted() {
		if strings.Contains(v, "hunter2") {
			t.Errorf("%s shows the password: %s", k, v)
		}
	}
}
