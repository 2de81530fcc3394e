package test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
)

// TestDiskAlarmBlocksPublishers: with free disk below the limit, publishers
// get connection.blocked and their messages are held back (TCP
// backpressure) while consumers keep receiving; the limit cannot be
// changed at runtime, so the test checks the blocked side.
func TestDiskAlarmBlocksPublishers(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.DiskFreeLimit = 1 << 62 })
	conn := s.dial(t)
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The publish is written by the client but the server holds it back.
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	// As RabbitMQ: a connection hears it is blocked when it publishes.
	select {
	case b := <-blocked:
		if !b.Active {
			t.Fatalf("got %+v, want an active block", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.blocked although free disk is below the limit")
	}
	time.Sleep(300 * time.Millisecond)
	check, err := s.dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok, err := check.Get(q.Name, true); err == nil && ok {
		t.Fatalf("message %q was routed while publishing is blocked", m.Body)
	}
	// A blocked connection is not read from, so its client cannot close it
	// (as with RabbitMQ); the server's shutdown closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
