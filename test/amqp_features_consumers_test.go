package test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureConsumerPriority: with x-priority on basic.consume and a
// prefetch of 1 each, the high-priority consumer gets every message while
// it has room; the low-priority one only when the high one is full. Equal
// priorities would share round-robin; the low one's registration order
// does not matter.
func TestFeatureConsumerPriority(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.cprio", nil)
	lowCh, highCh := newChannel(t, conn), newChannel(t, conn)
	featQoS(t, lowCh, 1)
	featQoS(t, highCh, 1)
	// The low-priority consumer registers first.
	low := featConsume(t, lowCh, q, false, amqp.Table{"x-priority": int32(1)})
	high := featConsume(t, highCh, q, false, amqp.Table{"x-priority": int32(10)})
	pub := confirmChannel(t, conn)

	// Both have room: the high one gets each message as long as it acks.
	for _, body := range []string{"1", "2", "3"} {
		featBodies(t, pub, q, body)
		m := recv(t, high)
		if string(m.Body) != body {
			t.Fatalf("high-priority consumer got %q, want %q", m.Body, body)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	noRecv(t, low)

	// The high one is full (one unacked): the next goes to the low one.
	featBodies(t, pub, q, "4", "5")
	h := recv(t, high)
	l := recv(t, low)
	if string(h.Body) != "4" || string(l.Body) != "5" {
		t.Fatalf("high got %q, low got %q; want 4 and 5", h.Body, l.Body)
	}
	// Both full: the next waits for whoever acks first.
	featBodies(t, pub, q, "6")
	noRecv(t, high)
	noRecv(t, low)
	if err := h.Ack(false); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, high); string(m.Body) != "6" {
		t.Fatalf("high got %q, want 6", m.Body)
	}
	noRecv(t, low)
}

// TestFeatureConsumerPriorityDefault: a consumer without x-priority has
// priority 0, below a positive and above a negative one.
func TestFeatureConsumerPriorityDefault(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.cprio", nil)
	negCh, defCh := newChannel(t, conn), newChannel(t, conn)
	neg := featConsume(t, negCh, q, true, amqp.Table{"x-priority": int32(-5)})
	def := featConsume(t, defCh, q, true, nil)
	featBodies(t, confirmChannel(t, conn), q, "a", "b", "c")
	wantBodies(t, recvN(t, def, 3), "a", "b", "c")
	noRecv(t, neg)
}

// TestFeatureSingleActiveConsumer: with x-single-active-consumer only the
// first consumer receives, even when it is at its prefetch limit; after it
// cancels, the next consumer gets the rest.
func TestFeatureSingleActiveConsumer(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.sac", amqp.Table{"x-single-active-consumer": true})
	firstCh, secondCh := newChannel(t, conn), newChannel(t, conn)
	featQoS(t, firstCh, 1)
	featQoS(t, secondCh, 1)
	first, err := firstCh.Consume(q, "first", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := consume(t, secondCh, q, false)
	featBodies(t, confirmChannel(t, conn), q, "1", "2", "3", "4")

	for _, want := range []string{"1", "2"} {
		m := recv(t, first)
		if string(m.Body) != want {
			t.Fatalf("active consumer got %q, want %q", m.Body, want)
		}
		// Full, yet the other consumer gets nothing.
		noRecv(t, second)
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// Acking "2" let the broker send "3" to the active consumer already.
	m3 := recv(t, first)
	if string(m3.Body) != "3" {
		t.Fatalf("active consumer got %q, want 3", m3.Body)
	}
	if err := firstCh.Cancel("first", false); err != nil {
		t.Fatal(err)
	}
	m := recv(t, second)
	if string(m.Body) != "4" {
		t.Fatalf("next consumer got %q, want 4", m.Body)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	// The cancelled consumer's unacked message comes back when its channel
	// closes, and goes to the consumer now active.
	if err := firstCh.Close(); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, second); string(m.Body) != "3" || !m.Redelivered {
		t.Fatalf("next consumer got %q redelivered=%v, want 3 redelivered", m.Body, m.Redelivered)
	}
}

// TestFeatureDeliveryLimit: with x-delivery-limit 2 a message requeued more
// than twice is dead-lettered with reason delivery_limit; redeliveries carry
// x-delivery-count.
func TestFeatureDeliveryLimit(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.dlimit", amqp.Table{"x-delivery-limit": int32(2), "x-dead-letter-exchange": dlx})
	featBodies(t, confirmChannel(t, conn), q, "poison", "fine")
	ch := newChannel(t, conn)
	featQoS(t, ch, 1)
	d := consume(t, ch, q, false)

	for i := 0; i <= 2; i++ {
		m := recv(t, d)
		if string(m.Body) != "poison" {
			t.Fatalf("delivery %d: %q, want poison", i+1, m.Body)
		}
		count, has := m.Headers["x-delivery-count"]
		switch {
		case i == 0 && (has || m.Redelivered):
			t.Fatalf("first delivery: redelivered %v, x-delivery-count %v", m.Redelivered, count)
		case i > 0 && (!m.Redelivered || !has):
			t.Fatalf("delivery %d: redelivered %v, headers %v; want redelivered with x-delivery-count", i+1, m.Redelivered, m.Headers)
		case i > 0:
			if n, ok := count.(int64); !ok || n != int64(i) {
				t.Fatalf("delivery %d: x-delivery-count %T %v, want %d", i+1, count, count, i)
			}
		}
		var err error
		if i%2 == 0 {
			err = m.Nack(false, true)
		} else {
			err = m.Reject(true)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The third requeue is over the limit.
	m := recv(t, d)
	if string(m.Body) != "fine" {
		t.Fatalf("after the limit got %q, want fine", m.Body)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	dead := featGetWait(t, ch, dlq)
	if string(dead.Body) != "poison" {
		t.Fatalf("dead letter %q", dead.Body)
	}
	wantDeaths(t, dead, death{count: 1, reason: "delivery_limit", queue: q, exchange: "", routingKeys: []string{q}})
	wantEmpty(t, ch, q)
}
