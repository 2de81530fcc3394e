package test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

// server is a real UMS broker listening on loopback ports chosen by the OS.
type server struct {
	*broker.Broker
	URL string
}

// startServer runs a broker with AMQP on a loopback port and a temporary
// data dir, its configuration changed by tweak; it stops with the test.
func startServer(t testing.TB, tweak ...func(*config.Config)) *server {
	t.Helper()
	opts := []testutil.Option{testutil.WithProtocols(testutil.AMQP)}
	for _, f := range tweak {
		opts = append(opts, testutil.WithConfig(f))
	}
	return newServer(testutil.StartBroker(t, opts...))
}

// newServer wraps a broker started by testutil.StartBroker.
func newServer(b *testutil.Broker) *server { return &server{Broker: b.Broker, URL: b.AMQPURL} }

// dial connects with amqp091-go and closes the connection with the test.
func (s *server) dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(s.URL)
	if err != nil {
		t.Fatalf("dial %s: %v", s.URL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// channel opens a channel on a new connection.
func (s *server) channel(t testing.TB) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn := s.dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return conn, ch
}

// recv waits for one delivery.
func recv(t testing.TB, d <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a delivery")
	}
	return amqp.Delivery{}
}

// noRecv asserts nothing arrives within a short while.
func noRecv(t testing.TB, d <-chan amqp.Delivery) {
	t.Helper()
	select {
	case m, ok := <-d:
		if ok {
			t.Fatalf("unexpected delivery %q", m.Body)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// amqpErr asserts err is an AMQP error with the code.
func amqpErr(t testing.TB, err error, code int) *amqp.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want AMQP error %d, got success", code)
	}
	ae, ok := err.(*amqp.Error)
	if !ok {
		t.Fatalf("want *amqp.Error %d, got %T: %v", code, err, err)
	}
	if ae.Code != code {
		t.Fatalf("want code %d, got %d: %s", code, ae.Code, ae.Reason)
	}
	return ae
}
