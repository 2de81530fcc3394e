package test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
)

// server is a real UMS broker listening on loopback ports chosen by the OS.
type server struct {
	*broker.Broker
	URL string
}

// startServer runs a broker with a temporary data dir; it stops with the test.
func startServer(t testing.TB, tweak ...func(*config.Config)) *server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AMQPListen = "127.0.0.1:0"
	cfg.MQTTListen, cfg.MQTTWSListen = config.Off, config.Off
	cfg.STOMPListen, cfg.STOMPWSListen = config.Off, config.Off
	cfg.HTTPListen = config.Off
	for _, f := range tweak {
		f(cfg)
	}
	var out io.Writer = io.Discard
	if os.Getenv("UMS_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := broker.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &server{Broker: b, URL: "amqp://guest:guest@" + b.Addr("amqp").String() + "/"}
}

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
