package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The broker sinks publish each line as one message. Like every device they are durable
// consumers of the log and LEDGER_AUDIT: a broker that is down only makes the device lag, and
// its records are published once it is back. Each sink counts a line as written only when the
// broker has taken responsibility for it (a NATS flush or JetStream ack, a RabbitMQ publisher
// confirm, an MQTT PUBACK), so nothing is dropped silently. A confirm lost with the connection
// makes the device publish that line again: delivery is at least once, and every message
// carries the record's position as its id (Nats-Msg-Id, AMQP message-id, and "ledger" in the
// line itself) to deduplicate on.

// natsSink publishes to a NATS subject, on the node's own connection (the embedded server or
// the cluster it uses) or on a server of its own.
type natsSink struct {
	s    Settings
	own  *nats.Conn // the node's connection; never closed here
	mu   sync.Mutex
	conn *nats.Conn // dialled for s.NATSURL
}

func (n *natsSink) connLocked() (*nats.Conn, error) {
	if n.s.NATSURL == "" {
		if n.own == nil {
			return nil, errors.New("nats: no connection to the node's server")
		}
		return n.own, nil
	}
	if n.conn != nil && !n.conn.IsClosed() {
		return n.conn, nil
	}
	c, err := nats.Connect(n.s.NATSURL, nats.Name("ledger audit device"), nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", redactURL(n.s.NATSURL), err)
	}
	n.conn = c
	return c, nil
}

func (n *natsSink) Write(ctx context.Context, lines [][]byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.connLocked()
	if err != nil {
		return 0, err
	}
	if !c.IsConnected() {
		return 0, fmt.Errorf("nats: not connected (%s)", c.Status())
	}
	if n.s.NATSJetStream {
		for i, l := range lines {
			m := nats.NewMsg(n.s.Subject)
			m.Data = l
			if id := lineID(l); id != "" {
				m.Header.Set(nats.MsgIdHdr, id)
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := jsPublish(actx, c, m)
			cancel()
			if err != nil {
				return i, fmt.Errorf("nats jetstream publish to %s: %w", n.s.Subject, err)
			}
		}
		return len(lines), nil
	}
	for i, l := range lines {
		m := nats.NewMsg(n.s.Subject)
		m.Data = l
		if id := lineID(l); id != "" {
			m.Header.Set(nats.MsgIdHdr, id)
		}
		if err := c.PublishMsg(m); err != nil {
			return i, fmt.Errorf("nats publish to %s: %w", n.s.Subject, err)
		}
	}
	// The server has them once the flush's PONG comes back.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.FlushWithContext(fctx); err != nil {
		return 0, fmt.Errorf("nats flush: %w", err)
	}
	return len(lines), nil
}

func jsPublish(ctx context.Context, c *nats.Conn, m *nats.Msg) (*nats.PubAck, error) {
	js, err := c.JetStream()
	if err != nil {
		return nil, err
	}
	return js.PublishMsg(m, nats.Context(ctx))
}

func (n *natsSink) Reopen() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}

func (n *natsSink) Close() error {
	n.Reopen()
	return nil
}

// amqpSink publishes to a RabbitMQ exchange with publisher confirms, persistent and
// mandatory: a message no queue takes comes back and counts as a failure, not a delivery.
type amqpSink struct {
	s       Settings
	mu      sync.Mutex
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

func (a *amqpSink) openLocked() error {
	if a.ch != nil && !a.ch.IsClosed() && !a.conn.IsClosed() {
		return nil
	}
	a.closeLocked()
	conn, err := amqp.DialConfig(a.s.URL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "ledger audit device"}})
	if err != nil {
		return fmt.Errorf("amqp %s: %s", redactURL(a.s.URL), describe(err))
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return fmt.Errorf("amqp channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return fmt.Errorf("amqp confirm mode: %w", err)
	}
	a.conn, a.ch = conn, ch
	a.returns = ch.NotifyReturn(make(chan amqp.Return, 1024))
	return nil
}

func (a *amqpSink) Write(ctx context.Context, lines [][]byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.openLocked(); err != nil {
		return 0, err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(lines))
	var perr error
	for _, l := range lines {
		dc, err := a.ch.PublishWithDeferredConfirmWithContext(ctx, a.s.Exchange, a.s.RoutingKey, true, false, amqp.Publishing{
			ContentType: contentType(l), DeliveryMode: amqp.Persistent, MessageId: lineID(l), Timestamp: time.Now(), Body: l,
		})
		if err != nil {
			perr = fmt.Errorf("amqp publish: %w", err)
			break
		}
		confirms = append(confirms, dc)
	}
	done := 0
	for _, dc := range confirms {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ok, err := dc.WaitContext(wctx)
		cancel()
		if err != nil || !ok {
			a.closeLocked()
			if err == nil {
				err = errors.New("the broker refused the message (nack)")
			}
			return done, fmt.Errorf("amqp confirm: %w", err)
		}
		done++
	}
	// A returned message was routed nowhere; the confirm still came (acks follow returns).
	select {
	case r := <-a.returns:
		a.closeLocked()
		return 0, fmt.Errorf("amqp: exchange %q routed the message with key %q to no queue (%s); bind a queue, the records wait until then", a.s.Exchange, a.s.RoutingKey, r.ReplyText)
	default:
	}
	if perr != nil {
		a.closeLocked()
		return done, perr
	}
	return done, nil
}

func (a *amqpSink) closeLocked() {
	if a.ch != nil {
		a.ch.Close()
	}
	if a.conn != nil {
		a.conn.Close()
	}
	a.ch, a.conn = nil, nil
}

func (a *amqpSink) Reopen() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closeLocked()
}

func (a *amqpSink) Close() error {
	a.Reopen()
	return nil
}

// mqttSink publishes to an MQTT topic with QoS 1: a publish counts once the broker's PUBACK
// came back. The client reconnects on its own; while it is down the device retries.
type mqttSink struct {
	s      Settings
	mu     sync.Mutex
	client mqtt.Client
}

func (m *mqttSink) clientLocked() (mqtt.Client, error) {
	if m.client != nil && m.client.IsConnectionOpen() {
		return m.client, nil
	}
	if m.client != nil {
		m.client.Disconnect(0)
		m.client = nil
	}
	o := mqtt.NewClientOptions().AddBroker(m.s.Broker).SetClientID(m.s.ClientID).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetCleanSession(true).
		SetOrderMatters(true).SetWriteTimeout(10 * time.Second)
	if m.s.Username != "" {
		o.SetUsername(m.s.Username).SetPassword(m.s.Password)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		err := tok.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return nil, fmt.Errorf("mqtt connect %s: %w", redactURL(m.s.Broker), err)
	}
	m.client = c
	return c, nil
}

func (m *mqttSink) Write(ctx context.Context, lines [][]byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.clientLocked()
	if err != nil {
		return 0, err
	}
	toks := make([]mqtt.Token, 0, len(lines))
	for _, l := range lines {
		toks = append(toks, c.Publish(m.s.Topic, 1, false, l))
	}
	for i, tok := range toks {
		deadline := time.Now().Add(30 * time.Second)
		for !tok.WaitTimeout(100 * time.Millisecond) {
			if ctx.Err() != nil || time.Now().After(deadline) || !c.IsConnectionOpen() {
				m.dropLocked()
				return i, fmt.Errorf("mqtt publish to %s: no PUBACK (connection lost or timed out)", m.s.Topic)
			}
		}
		if err := tok.Error(); err != nil {
			m.dropLocked()
			return i, fmt.Errorf("mqtt publish to %s: %w", m.s.Topic, err)
		}
	}
	return len(lines), nil
}

func (m *mqttSink) dropLocked() {
	if m.client != nil {
		m.client.Disconnect(0)
		m.client = nil
	}
}

func (m *mqttSink) Reopen() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked()
}

func (m *mqttSink) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil {
		m.client.Disconnect(250)
		m.client = nil
	}
	return nil
}

// lineID is the position a line carries, as a message id ("LEDGER:12.3" or, for Vault's JSON,
// with the entry type: "LEDGER:12.3/response"), or "" when it carries none.
func lineID(l []byte) string {
	pos, part, ok := linePosition(l)
	if !ok {
		return ""
	}
	id := pos.String()
	if part == 1 {
		id += "/response"
	}
	return id
}

func contentType(l []byte) string {
	if len(l) > 0 && l[0] == '{' {
		return "application/json"
	}
	return "text/plain"
}

// probeTCP dials host:port of a broker URL (nats://, amqp://, amqps://, tcp://, ssl://, mqtt://).
func probeTCP(ctx context.Context, raw string, defPort string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL with a host", redactURL(raw))
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defPort
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("%s is not reachable: %s", redactURL(raw), describe(err))
	}
	return conn.Close()
}

func schemeIn(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			return true
		}
	}
	return false
}
