package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	vault "github.com/hashicorp/vault/api"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// needBroker returns the broker URL (env overrides def) once its port answers; a broker that is
// not there skips the test, or fails it with CI=true.
func needBroker(t *testing.T, env, def string) string {
	t.Helper()
	raw := def
	if v := os.Getenv(env); v != "" {
		raw = v
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, raw, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		msg := fmt.Sprintf("broker %s (%s) is not reachable: %v", u.Host, env, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: it is required)")
		}
		t.Skip(msg)
	}
	conn.Close()
	return raw
}

// writeRecords puts n secrets at prefix/000… and fails if any request fails: a device whose
// broker is down must not block or fail requests.
func writeRecords(t *testing.T, root *vault.Client, prefix string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := root.KVv2("secret").Put(ctx, fmt.Sprintf("%s/%03d", prefix, i), map[string]any{"n": strconv.Itoa(i)})
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

// collector dedupes broker messages by their id (the record position): the broker sinks are at
// least once, the consumer's view must be exactly once.
type collector struct {
	mu    sync.Mutex
	byID  map[string]auditLine
	dups  int
	total int
}

func newCollector() *collector { return &collector{byID: map[string]auditLine{}} }

func (c *collector) add(t *testing.T, id string, body []byte) {
	var l auditLine
	if err := json.Unmarshal(body, &l); err != nil {
		t.Errorf("message is not an audit entry: %q", body)
		return
	}
	if id == "" {
		t.Errorf("message without an id: %s", body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if _, ok := c.byID[id]; ok {
		c.dups++
		return
	}
	c.byID[id] = l
}

// has reports whether the create request and response of every prefix/i are there, once each
// after deduplication.
func (c *collector) has(prefix string, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]int{}
	for _, l := range c.byID {
		if l.Request.Operation == "create" {
			seen[l.Type+" "+l.Request.Path]++
		}
	}
	for i := range n {
		p := fmt.Sprintf("secret/data/%s/%03d", prefix, i)
		if seen["request "+p] != 1 || seen["response "+p] != 1 {
			return false
		}
	}
	return true
}

func deviceHealthy(t *testing.T, s *testServer, healthy bool) func() bool {
	return func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		list, _ := data["devices"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); m["healthy"] != healthy {
				return false
			}
		}
		return len(list) > 0
	}
}

// TestAuditRabbitMQRestart: a rabbitmq device publishes every record with publisher confirms;
// the real broker is stopped (rabbitmqctl stop_app) while requests go on, started again, and
// every record reaches the durable queue — once each after deduplicating by message-id.
func TestAuditRabbitMQRestart(t *testing.T) {
	raw := needBroker(t, "LEDGER_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
	ctl := hosttools.Need(t, "rabbitmqctl", "rabbitmq-server")
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	exchange, queue, key := "ledger-test-x-"+suffix, "ledger-test-q-"+suffix, "audit."+suffix

	admin := func() (*amqp.Connection, *amqp.Channel) {
		t.Helper()
		var conn *amqp.Connection
		var err error
		eventually(t, 60*time.Second, "rabbitmq accepts connections", func() bool {
			conn, err = amqp.Dial(raw)
			return err == nil
		})
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return conn, ch
	}
	conn, ch := admin()
	if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	t.Cleanup(func() {
		// Leave the broker running, whatever happened, and tidy what the test declared.
		exec.Command(ctl, "start_app").Run()
		if c, err := amqp.Dial(raw); err == nil {
			if ch, err := c.Channel(); err == nil {
				ch.QueueDelete(queue, false, false, false)
				ch.ExchangeDelete(exchange, false, false)
			}
			c.Close()
		}
	})

	// Bad options and an unroutable exchange are refused at enable time.
	err := root.Sys().EnableAuditWithOptions("amqp-bad", &vault.EnableAuditOptions{Type: "rabbitmq", Options: map[string]string{"url": "http://x"}})
	respErr(t, err, 400, "amqp://")
	err = root.Sys().EnableAuditWithOptions("amqp-down", &vault.EnableAuditOptions{Type: "rabbitmq", Options: map[string]string{"url": "amqp://guest:guest@127.0.0.1:1/", "routing_key": "q"}})
	respErr(t, err, 400, "not reachable")

	if err := root.Sys().EnableAuditWithOptions("amqp", &vault.EnableAuditOptions{Type: "rabbitmq", Options: map[string]string{
		"url": raw, "exchange": exchange, "routing_key": key}}); err != nil {
		t.Fatal(err)
	}
	if d, err := root.Sys().ListAudit(); err != nil || d["amqp/"] == nil || d["amqp/"].Options["url"] == raw && raw != redactedURL(raw) {
		t.Fatalf("sys/audit shows the broker password: %+v %v", d["amqp/"], err)
	}
	const before, during, after = 5, 10, 5
	writeRecords(t, root, "mq", 0, before)
	if out, err := exec.Command(ctl, "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app: %v: %s", err, out)
	}
	writeRecords(t, root, "mq", before, before+during)
	eventually(t, 30*time.Second, "the device reports the broker down", deviceHealthy(t, s, false))
	if out, err := exec.Command(ctl, "start_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl start_app: %v: %s", err, out)
	}
	writeRecords(t, root, "mq", before+during, before+during+after)

	col := newCollector()
	conn, ch = admin()
	defer conn.Close()
	eventually(t, 60*time.Second, "every record in the queue", func() bool {
		for {
			m, ok, err := ch.Get(queue, true)
			if err != nil || !ok {
				break
			}
			col.add(t, m.MessageId, m.Body)
		}
		return col.has("mq", before+during+after)
	})
	eventually(t, 30*time.Second, "the device reports it recovered", deviceHealthy(t, s, true))
	t.Logf("rabbitmq: %d messages, %d duplicates removed by message-id", col.total, col.dups)
}

func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}

// mosquitto runs a private Mosquitto broker with persistence on a free loopback port, so the
// test can restart a broker it owns (the system one on 1883 is left alone).
type mosquitto struct {
	bin, conf, addr string
	cmd             *exec.Cmd
}

func startMosquitto(t *testing.T) *mosquitto {
	bin := hosttools.Need(t, "mosquitto", "mosquitto")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// Run as whoever runs the test: started as root, Mosquitto would switch to its own user,
	// which cannot write the persistence file into the test's private directory.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n"
	}
	os.WriteFile(conf, []byte(user+fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nlog_dest stderr\n", port, dir)), 0o644)
	m := &mosquitto{bin: bin, conf: conf, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.start(t)
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	lf, _ := os.OpenFile(m.conf+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	m.cmd.Stderr = lf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	eventually(t, 20*time.Second, "mosquitto listens", func() bool {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop ends the broker it started, by its pid, with SIGTERM (Mosquitto saves its state).
func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Signal(os.Interrupt)
		m.cmd.Wait()
		m.cmd = nil
	}
}

// mqttSubscriber subscribes with QoS 1 and a persistent session, so the broker keeps what
// arrives while it reconnects.
func mqttSubscriber(t *testing.T, broker, topic, id string, col *collector) mqtt.Client {
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			var pos struct {
				Type   string `json:"type"`
				Ledger struct {
					Stream string `json:"stream"`
					Seq    uint64 `json:"seq"`
					Index  uint32 `json:"index"`
				} `json:"ledger"`
			}
			json.Unmarshal(m.Payload(), &pos)
			col.add(t, fmt.Sprintf("%s:%d.%d/%s", pos.Ledger.Stream, pos.Ledger.Seq, pos.Ledger.Index, pos.Type), m.Payload())
		})
	})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestAuditMQTTRestart: an mqtt device publishes QoS 1; the broker is killed and restarted
// while requests go on; every record reaches the subscriber, once each after deduplicating by
// record position (QoS 1 is at least once). The system Mosquitto (127.0.0.1:1883 or
// LEDGER_TEST_MQTT_URL) gets the same records without a restart.
func TestAuditMQTTRestart(t *testing.T) {
	system := needBroker(t, "LEDGER_TEST_MQTT_URL", "tcp://127.0.0.1:1883")
	mb := startMosquitto(t)
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := "ledger/test/" + suffix
	private := "tcp://" + mb.addr

	col, colSystem := newCollector(), newCollector()
	mqttSubscriber(t, private, topic, "ledger-test-sub-"+suffix, col)
	mqttSubscriber(t, system, topic, "ledger-test-sys-"+suffix, colSystem)

	for _, bad := range []map[string]string{{"broker": "http://x", "topic": "t"}, {"broker": private, "topic": "a/+/b"}, {"broker": private}} {
		err := root.Sys().EnableAuditWithOptions("mqtt-bad", &vault.EnableAuditOptions{Type: "mqtt", Options: bad})
		respErr(t, err, 400, "")
	}
	for name, b := range map[string]string{"mqtt": private, "mqtt-system": system} {
		if err := root.Sys().EnableAuditWithOptions(name, &vault.EnableAuditOptions{Type: "mqtt", Options: map[string]string{
			"broker": b, "topic": topic, "client_id": "ledger-" + name + "-" + suffix}}); err != nil {
			t.Fatal(err)
		}
	}
	const before, during, after = 5, 10, 5
	writeRecords(t, root, "mqtt", 0, before)
	eventually(t, 30*time.Second, "records before the outage", func() bool { return col.has("mqtt", before) })
	mb.stop()
	writeRecords(t, root, "mqtt", before, before+during)
	eventually(t, 30*time.Second, "the device reports the broker down", func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		list, _ := data["devices"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); m["path"] == "mqtt/" {
				return m["healthy"] == false
			}
		}
		return false
	})
	mb.start(t)
	writeRecords(t, root, "mqtt", before+during, before+during+after)
	ok := false
	deadline := time.Now().Add(60 * time.Second)
	for !ok && time.Now().Before(deadline) {
		ok = col.has("mqtt", before+during+after)
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		_, data := sysLedger(t, s, s.RootToken, "GET", "devices")
		col.mu.Lock()
		var got []string
		for id, l := range col.byID {
			got = append(got, id+" "+l.Type+" "+l.Request.Path)
		}
		col.mu.Unlock()
		lb, _ := os.ReadFile(mb.conf + ".log")
		t.Fatalf("not every record after the restart; devices %v; got %v\nbroker log:\n%s", data, got, lb)
	}
	eventually(t, 30*time.Second, "every record on the system broker", func() bool { return colSystem.has("mqtt", before+during+after) })
	t.Logf("mqtt: %d messages, %d duplicates removed by position", col.total, col.dups)
}

// TestAuditNATSRestart: a nats device with jetstream=true publishes to a stream on a separate
// in-process NATS server that is shut down and started again on the same port and store;
// JetStream deduplicates by Nats-Msg-Id (the record position), so the stream holds every
// record exactly once. A nats device without url publishes on the node's own server.
func TestAuditNATSRestart(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	port := ns.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { ns.Shutdown() })
	nurl := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nc, err := nats.Connect(nurl)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := nc.JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "AUDIT", Subjects: []string{"siem.audit"}, Duplicates: time.Hour}); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	s := startServer(t)
	root := s.Client(t, s.RootToken)
	respErr(t, root.Sys().EnableAuditWithOptions("nats-bad", &vault.EnableAuditOptions{Type: "nats", Options: map[string]string{"subject": "a.*"}}), 400, "subject")
	if err := root.Sys().EnableAuditWithOptions("nats", &vault.EnableAuditOptions{Type: "nats", Options: map[string]string{
		"url": nurl, "subject": "siem.audit", "jetstream": "true"}}); err != nil {
		t.Fatal(err)
	}
	// The node's own server: a core NATS subscriber on the log's connection sees the records.
	own := s.Log.JetStream().Conn()
	ownCol := newCollector()
	sub, err := own.Subscribe("ledger.audit.test", func(m *nats.Msg) { ownCol.add(t, m.Header.Get(nats.MsgIdHdr), m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := root.Sys().EnableAuditWithOptions("nats-own", &vault.EnableAuditOptions{Type: "nats", Options: map[string]string{"subject": "ledger.audit.test"}}); err != nil {
		t.Fatal(err)
	}

	const before, during, after = 5, 10, 5
	writeRecords(t, root, "nats", 0, before)
	ns.Shutdown()
	ns.WaitForShutdown()
	writeRecords(t, root, "nats", before, before+during)
	opts.Port = port
	ns, err = server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready after restart")
	}
	writeRecords(t, root, "nats", before+during, before+during+after)

	col := newCollector()
	eventually(t, 60*time.Second, "every record in the stream", func() bool {
		nc, err := nats.Connect(nurl)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, _ := nc.JetStream()
		info, err := js.StreamInfo("AUDIT")
		if err != nil {
			return false
		}
		col = newCollector()
		for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
			m, err := js.GetMsg("AUDIT", seq)
			if err != nil {
				continue
			}
			col.add(t, m.Header.Get(nats.MsgIdHdr), m.Data)
		}
		return col.has("nats", before+during+after)
	})
	if col.dups != 0 {
		t.Fatalf("the stream holds %d duplicates: Nats-Msg-Id did not deduplicate", col.dups)
	}
	eventually(t, 30*time.Second, "records on the node's own server", func() bool { return ownCol.has("nats", before+during+after) })
}
