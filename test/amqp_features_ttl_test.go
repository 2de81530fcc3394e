package test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureTTLExpiredNeverDelivered: a message whose time to live has
// passed is gone for basic.get and for a consumer attached afterwards,
// whether the TTL comes from the queue (x-message-ttl), from the message
// (expiration) or from both (the lower one applies).
func TestFeatureTTLExpiredNeverDelivered(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	cases := []struct {
		name       string
		queueTTL   any // nil: none
		expiration string
	}{
		{"queue", int32(100), ""},
		{"message", nil, "100"},
		{"message below queue", int64(60000), "100"},
		{"queue below message", int32(100), "60000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			args := amqp.Table{}
			if tc.queueTTL != nil {
				args["x-message-ttl"] = tc.queueTTL
			}
			q := featQueue(t, conn, "q.ttl", args)
			pub := confirmChannel(t, conn)
			featPublishAll(t, pub, q, featMsg("a", 0, tc.expiration), featMsg("b", 0, tc.expiration))
			time.Sleep(300 * time.Millisecond)
			ch := newChannel(t, conn)
			wantEmpty(t, ch, q)
			if n, _ := messageCount(t, conn, q); n != 0 {
				t.Fatalf("passive declare counts %d messages after they expired", n)
			}
			noRecv(t, consume(t, ch, q, false))
		})
	}
}

// TestFeatureTTLUnexpiredDelivered: messages within their TTL are delivered
// normally, and the expiration property travels with them.
func TestFeatureTTLUnexpiredDelivered(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.ttl", amqp.Table{"x-message-ttl": int32(60000)})
	pub := confirmChannel(t, conn)
	featPublishAll(t, pub, q, featMsg("a", 0, ""), featMsg("b", 0, "60000"))
	ch := newChannel(t, conn)
	ms := recvN(t, consume(t, ch, q, true), 2)
	wantBodies(t, ms, "a", "b")
	if ms[0].Expiration != "" || ms[1].Expiration != "60000" {
		t.Fatalf("expiration properties %q, %q; want \"\", \"60000\"", ms[0].Expiration, ms[1].Expiration)
	}
}

// TestFeatureTTLBehindHead: a message with a short per-message TTL queued
// behind a message without TTL is dead-lettered when it expires, although
// it is not at the head of the queue; the head message stays.
func TestFeatureTTLBehindHead(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.ttl.behind", amqp.Table{"x-dead-letter-exchange": dlx})
	watch := newChannel(t, conn)
	dead := consume(t, watch, dlq, true)

	pub := confirmChannel(t, conn)
	const ttl = 300 * time.Millisecond
	start := time.Now()
	featPublishAll(t, pub, q, featMsg("head", 0, ""), featMsg("short", 0, "300"))
	m := featRecvWithin(t, dead, time.Until(start.Add(ttl+time.Second)), "the expired message behind the head")
	if string(m.Body) != "short" {
		t.Fatalf("dead-lettered %q, want \"short\"", m.Body)
	}
	if waited := time.Since(start); waited < ttl {
		t.Fatalf("dead-lettered after %v, before its TTL of %v", waited, ttl)
	}
	wantDeaths(t, m, death{count: 1, reason: "expired", queue: q, exchange: "", routingKeys: []string{q}, origExpiration: "300"})
	// The head message was there all along.
	featWantDrain(t, newChannel(t, conn), q, "head")
}

// TestFeatureTTLDeadLetterExpired: expired messages go to the queue's
// dead-letter exchange with reason expired; the copy has no expiration
// property, and x-death keeps the original one.
func TestFeatureTTLDeadLetterExpired(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	cases := []struct {
		name       string
		args       amqp.Table
		expiration string
	}{
		{"queue TTL", amqp.Table{"x-message-ttl": int32(50)}, ""},
		{"message TTL", amqp.Table{}, "50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			dlx, dlq := featDLQ(t, conn)
			src := featExchange(t, conn, "direct", nil)
			tc.args["x-dead-letter-exchange"] = dlx
			q := featQueue(t, conn, "q.ttl.dlx", tc.args)
			ch := newChannel(t, conn)
			bindQueue(t, ch, q, src, "rk", nil)
			dead := consume(t, ch, dlq, true)

			pub := confirmChannel(t, conn)
			publishConfirmed(t, pub, src, "rk", amqp.Publishing{
				Body: []byte("old"), Expiration: tc.expiration, Headers: amqp.Table{"app": "kept"}})
			m := recv(t, dead)
			if string(m.Body) != "old" {
				t.Fatalf("dead-lettered %q", m.Body)
			}
			if m.Expiration != "" {
				t.Fatalf("dead-lettered copy has expiration %q, want none", m.Expiration)
			}
			if m.Exchange != dlx || m.RoutingKey != "rk" {
				t.Fatalf("dead-lettered through %q with key %q, want %q with the original key \"rk\"", m.Exchange, m.RoutingKey, dlx)
			}
			wantHeader(t, m, "app", "kept")
			wantDeaths(t, m, death{count: 1, reason: "expired", queue: q, exchange: src, routingKeys: []string{"rk"}, origExpiration: tc.expiration})
			wantDeathSummary(t, m, [3]string{"expired", q, src}, [3]string{"expired", q, src})
			wantEmpty(t, ch, q)
		})
	}
}

// featGone polls with passive declares, spaced further apart than the
// queue's x-expires so that a broker counting a passive declare as use
// still lets the queue expire, until the queue is gone.
func featGone(t *testing.T, conn *amqp.Connection, q string, every time.Duration) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		time.Sleep(every)
		if !exists(t, conn, "queue", q) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still exists after %v", q, waitFor)
		}
	}
}

// TestFeatureQueueExpires: x-expires deletes a queue that went unused for
// the period, but not while it has a consumer; the period starts again
// when the last consumer goes.
func TestFeatureQueueExpires(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	t.Run("unused", func(t *testing.T) {
		t.Parallel()
		conn := s.dial(t)
		q := featQueue(t, conn, "q.expires", amqp.Table{"x-expires": int32(300)})
		if !exists(t, conn, "queue", q) {
			t.Fatal("queue gone at once")
		}
		featGone(t, conn, q, 450*time.Millisecond)
	})
	t.Run("consumed", func(t *testing.T) {
		t.Parallel()
		conn := s.dial(t)
		q := featQueue(t, conn, "q.expires", amqp.Table{"x-expires": int32(200)})
		ch := newChannel(t, conn)
		d, err := ch.Consume(q, "c1", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond)
		if !exists(t, conn, "queue", q) {
			t.Fatal("queue with a consumer expired")
		}
		// It still works.
		publish(t, ch, "", q, "alive")
		if m := recv(t, d); string(m.Body) != "alive" {
			t.Fatalf("got %q", m.Body)
		}
		if err := ch.Cancel("c1", false); err != nil {
			t.Fatal(err)
		}
		featGone(t, conn, q, 300*time.Millisecond)
	})
}

// TestFeatureTTLZero: a message with expiration 0 is delivered only if a
// consumer can take it at once; otherwise it expires straight away.
func TestFeatureTTLZero(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.ttl0", amqp.Table{"x-dead-letter-exchange": dlx})
	pub := confirmChannel(t, conn)
	featPublishAll(t, pub, q, featMsg("nobody", 0, "0"))
	ch := newChannel(t, conn)
	if m := featGetWait(t, ch, dlq); string(m.Body) != "nobody" {
		t.Fatalf("dead-lettered %q, want \"nobody\"", m.Body)
	}
	wantEmpty(t, ch, q)

	d := consume(t, ch, q, true)
	featPublishAll(t, pub, q, featMsg("taken", 0, "0"))
	if m := recv(t, d); string(m.Body) != "taken" {
		t.Fatalf("consumer got %q, want \"taken\"", m.Body)
	}
	wantEmpty(t, ch, dlq)
}

// TestFeatureTTLUnackedThenRequeued: a delivered, unacknowledged message
// does not expire while a consumer holds it, but once requeued after its
// TTL has passed it expires instead of being redelivered.
func TestFeatureTTLUnackedThenRequeued(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.ttl.requeue", amqp.Table{"x-message-ttl": int32(200), "x-dead-letter-exchange": dlx})
	featBodies(t, confirmChannel(t, conn), q, "held")
	ch := newChannel(t, conn)
	d := consume(t, ch, q, false)
	m := recv(t, d)
	time.Sleep(400 * time.Millisecond)
	wantEmpty(t, newChannel(t, conn), dlq)
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	dead := featGetWait(t, newChannel(t, conn), dlq)
	if string(dead.Body) != "held" {
		t.Fatalf("dead-lettered %q", dead.Body)
	}
	wantDeaths(t, dead, death{count: 1, reason: "expired", queue: q, exchange: "", routingKeys: []string{q}})
	noRecv(t, d)
}

// TestFeatureQueueExpiresRenewed: basic.get and a re-declaration count as
// use and keep a queue with x-expires alive.
func TestFeatureQueueExpiresRenewed(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	args := amqp.Table{"x-expires": int32(400)}
	q := featQueue(t, conn, "q.expires", args)
	ch := newChannel(t, conn)
	for i := 0; i < 6; i++ {
		time.Sleep(200 * time.Millisecond)
		if i%2 == 0 {
			if _, _, err := ch.Get(q, true); err != nil {
				t.Fatalf("basic.get at %d: %v", i, err)
			}
		} else if _, err := ch.QueueDeclare(q, false, false, false, false, args); err != nil {
			t.Fatalf("re-declaration at %d: %v", i, err)
		}
	}
	if !exists(t, conn, "queue", q) {
		t.Fatal("queue in use expired")
	}
	featGone(t, conn, q, 600*time.Millisecond)
}
