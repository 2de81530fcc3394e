package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// waitFor is how long the AMQP tests wait for anything that should happen.
const waitFor = 5 * time.Second

// amqpServer returns the broker an AMQP test talks to: a new in-process UMS,
// or the broker at UMS_TEST_AMQP_URL (a RabbitMQ, say) when that is set, so
// that the same expectations can be checked against a reference broker.
// Tests that configure or stop the broker call startServer instead.
func amqpServer(t *testing.T) *server {
	t.Helper()
	if u := os.Getenv("UMS_TEST_AMQP_URL"); u != "" {
		return &server{URL: u}
	}
	return startServer(t)
}

// uniq returns prefix with a random suffix, so that names do not collide
// on a broker shared between tests.
func uniq(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "." + hex.EncodeToString(b[:])
}

// urlWith returns the server's URL with another user, password and vhost.
func (s *server) urlWith(t testing.TB, user, pass, vhost string) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	u.Path = "/" + vhost
	u.RawPath = "/" + url.PathEscape(vhost)
	return u.String()
}

// hostPort returns the server's AMQP address.
func (s *server) hostPort(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5672")
	}
	return u.Host
}

// newChannel opens another channel on conn.
func newChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// confirmChannel opens a channel in publisher confirm mode.
func confirmChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch := newChannel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	return ch
}

// declareQueue declares a non-durable, non-exclusive queue that is not
// auto-deleted; an empty name asks the server for one.
func declareQueue(t testing.TB, ch *amqp.Channel, name string) string {
	t.Helper()
	q, err := ch.QueueDeclare(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue.declare %q: %v", name, err)
	}
	return q.Name
}

// declareExchange declares a non-durable exchange of the kind.
func declareExchange(t testing.TB, ch *amqp.Channel, kind string) string {
	t.Helper()
	name := uniq("x." + kind)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, nil); err != nil {
		t.Fatalf("exchange.declare %s %s: %v", kind, name, err)
	}
	return name
}

// bindQueue binds a queue to an exchange.
func bindQueue(t testing.TB, ch *amqp.Channel, queue, exchange, key string, args amqp.Table) {
	t.Helper()
	if err := ch.QueueBind(queue, key, exchange, false, args); err != nil {
		t.Fatalf("queue.bind %s to %s with %q: %v", queue, exchange, key, err)
	}
}

// consume starts a consumer with a client-chosen tag.
func consume(t testing.TB, ch *amqp.Channel, queue string, autoAck bool) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", autoAck, false, false, false, nil)
	if err != nil {
		t.Fatalf("basic.consume %s: %v", queue, err)
	}
	return d
}

// publish sends a message with the body and no other properties.
func publish(t testing.TB, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	publishMsg(t, ch, exchange, key, false, amqp.Publishing{Body: []byte(body)})
}

// publishMsg sends a message.
func publishMsg(t testing.TB, ch *amqp.Channel, exchange, key string, mandatory bool, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := ch.PublishWithContext(ctx, exchange, key, mandatory, false, msg); err != nil {
		t.Fatalf("basic.publish to %q with %q: %v", exchange, key, err)
	}
}

// publishConfirmed publishes on a channel in confirm mode and waits until
// the broker acknowledges the message, so it has been routed.
func publishConfirmed(t testing.TB, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg)
	if err != nil {
		t.Fatalf("basic.publish to %q with %q: %v", exchange, key, err)
	}
	if dc == nil {
		t.Fatal("publishConfirmed needs a channel in confirm mode")
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		t.Fatalf("waiting for the confirm of a publish to %q with %q: %v", exchange, key, err)
	}
	if !acked {
		t.Fatalf("publish to %q with %q was nacked", exchange, key)
	}
}

// publishBodies publishes one confirmed message per body to a queue through
// the default exchange.
func publishBodies(t testing.TB, ch *amqp.Channel, queue string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		publishConfirmed(t, ch, "", queue, amqp.Publishing{Body: []byte(b)})
	}
}

// recvN waits for n deliveries.
func recvN(t testing.TB, d <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, 0, n)
	deadline := time.After(waitFor)
	for len(out) < n {
		select {
		case m, ok := <-d:
			if !ok {
				t.Fatalf("delivery channel closed after %d of %d deliveries", len(out), n)
			}
			out = append(out, m)
		case <-deadline:
			t.Fatalf("timed out after %d of %d deliveries: %q", len(out), n, bodies(out))
		}
	}
	return out
}

// bodies returns the bodies of deliveries as strings.
func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// wantBodies checks the bodies of deliveries, in order.
func wantBodies(t testing.TB, ds []amqp.Delivery, want ...string) {
	t.Helper()
	if got := bodies(ds); !slices.Equal(got, want) {
		t.Fatalf("got bodies %q, want %q", got, want)
	}
}

// get takes one message with basic.get and auto-ack, failing if there is none.
func get(t testing.TB, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	m, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("basic.get %s: %v", queue, err)
	}
	if !ok {
		t.Fatalf("basic.get %s: queue is empty", queue)
	}
	return m
}

// wantEmpty checks with basic.get that the queue has no ready message.
func wantEmpty(t testing.TB, ch *amqp.Channel, queue string) {
	t.Helper()
	m, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("basic.get %s: %v", queue, err)
	}
	if ok {
		t.Fatalf("basic.get %s: want empty, got %q", queue, m.Body)
	}
}

// messageCount returns a queue's ready message and consumer counts from a
// passive declare on a channel of its own.
func messageCount(t testing.TB, conn *amqp.Connection, queue string) (messages, consumers int) {
	t.Helper()
	ch := newChannel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %s: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// exists reports whether a passive declare of the queue (or exchange) on a
// channel of its own succeeds; other errors than 404 fail the test.
func exists(t testing.TB, conn *amqp.Connection, kind, name string) bool {
	t.Helper()
	ch := newChannel(t, conn)
	var err error
	if kind == "queue" {
		_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
	} else {
		err = ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
	}
	if err == nil {
		ch.Close()
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return false
	}
	t.Fatalf("passive declare of %s %s: %v", kind, name, err)
	return false
}

// eventually polls cond until it holds or the wait ends. It is for state
// the broker changes after it has answered, such as the deletion of an
// exclusive queue once the owner's connection is gone.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notifyClose registers for the channel's close error.
func notifyClose(ch *amqp.Channel) <-chan *amqp.Error {
	return ch.NotifyClose(make(chan *amqp.Error, 1))
}

// notifyConnClose registers for the connection's close error.
func notifyConnClose(conn *amqp.Connection) <-chan *amqp.Error {
	return conn.NotifyClose(make(chan *amqp.Error, 1))
}

// closedWith waits for a close error with the code and a reply text that
// starts with prefix.
func closedWith(t testing.TB, c <-chan *amqp.Error, code int, prefix string) *amqp.Error {
	t.Helper()
	select {
	case e, ok := <-c:
		if !ok || e == nil {
			t.Fatalf("closed without an error, want %d %s", code, prefix)
		}
		wantReply(t, e, code, prefix)
		return e
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for close %d %s", code, prefix)
	}
	return nil
}

// wantReply checks the code and the start of the reply text of an error.
func wantReply(t testing.TB, err error, code int, prefix string) *amqp.Error {
	t.Helper()
	ae := amqpErr(t, err, code)
	if !strings.HasPrefix(ae.Reason, prefix) {
		t.Fatalf("reply text %q does not start with %q", ae.Reason, prefix)
	}
	if !ae.Server {
		t.Fatalf("error %v was not sent by the server", ae)
	}
	return ae
}

// rawConn is an AMQP connection driven frame by frame, for what a client
// library will not send.
type rawConn struct {
	t   testing.TB
	nc  net.Conn
	r   *wire.Reader
	dec wire.MethodDecoder
}

// dialRaw opens a TCP connection to the server; every read and write must
// finish within the test wait.
func dialRaw(t testing.TB, s *server) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.hostPort(t), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(2 * waitFor))
	return &rawConn{t: t, nc: nc, r: wire.NewReader(nc)}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) sendMethod(channel uint16, m wire.Method) {
	c.t.Helper()
	c.write(wire.AppendMethodFrame(nil, channel, m))
}

// readMethod reads the next method frame, skipping heartbeats. The method
// is valid until the next read.
func (c *rawConn) readMethod() (uint16, wire.Method) {
	c.t.Helper()
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if f.Type == wire.FrameHeartbeat {
			continue
		}
		if f.Type != wire.FrameMethod {
			c.t.Fatalf("got frame type %d, want a method", f.Type)
		}
		m, err := c.dec.Decode(f.Payload)
		if err != nil {
			c.t.Fatalf("decode method: %v", err)
		}
		return f.Channel, m
	}
}

// handshake opens the connection as guest to vhost "/" with PLAIN,
// accepting the server's tuning but no heartbeats.
func (c *rawConn) handshake() {
	c.t.Helper()
	c.handshakeHeartbeat(0)
}

// handshakeHeartbeat is handshake asking for heartbeats every hb seconds.
func (c *rawConn) handshakeHeartbeat(hb uint16) {
	c.t.Helper()
	c.write(wire.ProtocolHeader[:])
	if _, m := c.readMethod(); m.Name() != "connection.start" {
		c.t.Fatalf("got %s, want connection.start", m.Name())
	}
	c.sendMethod(0, &wire.ConnectionStartOk{Mechanism: "PLAIN", Response: []byte("\x00guest\x00guest"), Locale: "en_US"})
	_, m := c.readMethod()
	tune, ok := m.(*wire.ConnectionTune)
	if !ok {
		c.t.Fatalf("got %s, want connection.tune", m.Name())
	}
	c.sendMethod(0, &wire.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax, Heartbeat: hb})
	c.r.SetFrameMax(tune.FrameMax)
	c.sendMethod(0, &wire.ConnectionOpen{VirtualHost: "/"})
	if _, m := c.readMethod(); m.Name() != "connection.open-ok" {
		c.t.Fatalf("got %s, want connection.open-ok", m.Name())
	}
}

// expectEOF checks that the server closes the socket within d.
func (c *rawConn) expectEOF(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	start := time.Now()
	n, err := c.nc.Read(b[:])
	switch {
	case n > 0:
		c.t.Fatalf("got byte %#x, want the socket closed", b[0])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		c.t.Fatalf("socket still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}
