package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
)

// TestPagedMessagesComeBackInOrder: with only 10 messages kept in memory
// per queue, a backlog of persistent messages is read back from the store
// as it drains, in order and intact, also after a restart; transient
// messages in the same queue stay in memory and keep their place.
func TestPagedMessagesComeBackInOrder(t *testing.T) {
	dir := t.TempDir()
	tweak := func(c *config.Config) { c.QueuePageAfter = 10; c.DataDir = dir }
	s := startServer(t, tweak)
	conn, ch := s.channel(t)
	if _, err := ch.QueueDeclare("paged", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := 0; i < n; i++ {
		mode := amqp.Persistent
		if i%50 == 0 {
			mode = amqp.Transient
		}
		dc, err := ch.PublishWithDeferredConfirm("", "paged", false, false, amqp.Publishing{
			DeliveryMode: mode, MessageId: fmt.Sprint(i), Body: []byte(fmt.Sprintf("body-%d-%0100d", i, i))})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("publish %d not confirmed: %v", i, err)
		}
	}
	drain := func(ch *amqp.Channel, want func(i int) bool) {
		t.Helper()
		for i := 0; i < n; i++ {
			if !want(i) {
				continue
			}
			m, ok, err := ch.Get("paged", false)
			if err != nil || !ok {
				t.Fatalf("get %d: ok %v err %v", i, ok, err)
			}
			if m.MessageId != fmt.Sprint(i) || string(m.Body) != fmt.Sprintf("body-%d-%0100d", i, i) {
				t.Fatalf("message %d: got id %s body %q", i, m.MessageId, m.Body)
			}
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
			if i == n/2 {
				return
			}
		}
	}
	// Take the first half, then restart: the rest (persistent only) come back from disk.
	drain(ch, func(int) bool { return true })
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, tweak)
	_, ch2 := s2.channel(t)
	for i := n/2 + 1; i < n; i++ {
		if i%50 == 0 {
			continue // transient: gone with the restart
		}
		m, ok, err := ch2.Get("paged", false)
		if err != nil || !ok {
			t.Fatalf("after restart, get %d: ok %v err %v", i, ok, err)
		}
		if m.MessageId != fmt.Sprint(i) || string(m.Body) != fmt.Sprintf("body-%d-%0100d", i, i) {
			t.Fatalf("after restart, message %d: got id %s body %q", i, m.MessageId, m.Body)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := ch2.Get("paged", false); ok {
		t.Fatal("queue not empty after draining")
	}
}
