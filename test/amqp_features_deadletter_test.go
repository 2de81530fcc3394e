package test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureDeadLetterRejected: basic.reject and basic.nack with
// requeue=false dead-letter the message with reason rejected and the
// x-death, x-first-death-* and x-last-death-* headers RabbitMQ writes;
// other headers and properties are kept.
func TestFeatureDeadLetterRejected(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	cases := []struct {
		name   string
		refuse func(amqp.Delivery) error
	}{
		{"reject", func(m amqp.Delivery) error { return m.Reject(false) }},
		{"nack", func(m amqp.Delivery) error { return m.Nack(false, false) }},
		{"nack multiple", func(m amqp.Delivery) error { return m.Nack(true, false) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			dlx, dlq := featDLQ(t, conn)
			src := featExchange(t, conn, "direct", nil)
			q := featQueue(t, conn, "q.reject", amqp.Table{"x-dead-letter-exchange": dlx})
			ch := newChannel(t, conn)
			bindQueue(t, ch, q, src, "orders", nil)
			pub := confirmChannel(t, conn)
			publishConfirmed(t, pub, src, "orders", amqp.Publishing{
				Body: []byte("job"), CorrelationId: "c-1", ContentType: "text/plain", Headers: amqp.Table{"app": "kept"}})

			d := consume(t, ch, q, false)
			if err := tc.refuse(recv(t, d)); err != nil {
				t.Fatal(err)
			}
			m := featGetWait(t, ch, dlq)
			if string(m.Body) != "job" || m.CorrelationId != "c-1" || m.ContentType != "text/plain" {
				t.Fatalf("dead letter %q, correlation id %q, content type %q", m.Body, m.CorrelationId, m.ContentType)
			}
			if m.Exchange != dlx || m.RoutingKey != "orders" {
				t.Fatalf("dead-lettered through %q with key %q, want %q with \"orders\"", m.Exchange, m.RoutingKey, dlx)
			}
			wantHeader(t, m, "app", "kept")
			wantDeaths(t, m, death{count: 1, reason: "rejected", queue: q, exchange: src, routingKeys: []string{"orders"}})
			wantDeathSummary(t, m, [3]string{"rejected", q, src}, [3]string{"rejected", q, src})
			noRecv(t, d)
			wantEmpty(t, ch, q)
		})
	}
}

// TestFeatureDeadLetterRoutingKey: x-dead-letter-routing-key replaces the
// routing key of dead letters; x-death keeps the original keys.
func TestFeatureDeadLetterRoutingKey(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx := featExchange(t, conn, "direct", nil)
	hit := featQueue(t, conn, "q.dl.hit", nil)
	miss := featQueue(t, conn, "q.dl.miss", nil)
	ch := newChannel(t, conn)
	bindQueue(t, ch, hit, dlx, "dead.key", nil)
	bindQueue(t, ch, miss, dlx, "work", nil)
	q := featQueue(t, conn, "q.dlrk", amqp.Table{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead.key"})
	bindQueue(t, ch, q, "amq.direct", "work", nil)
	pub := confirmChannel(t, conn)
	publishConfirmed(t, pub, "amq.direct", "work", amqp.Publishing{Body: []byte("job")})

	m, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("basic.get: ok %v, %v", ok, err)
	}
	if err := m.Reject(false); err != nil {
		t.Fatal(err)
	}
	dead := featGetWait(t, ch, hit)
	if dead.RoutingKey != "dead.key" || dead.Exchange != dlx {
		t.Fatalf("dead letter came through %q with key %q, want %q with \"dead.key\"", dead.Exchange, dead.RoutingKey, dlx)
	}
	wantDeaths(t, dead, death{count: 1, reason: "rejected", queue: q, exchange: "amq.direct", routingKeys: []string{"work"}})
	wantEmpty(t, ch, miss)
	wantEmpty(t, ch, q)
}

// TestFeatureDeadLetterNoExchange: without x-dead-letter-exchange a
// rejected message is dropped; with a dead-letter exchange that does not
// exist it is dropped too, and nothing fails.
func TestFeatureDeadLetterNoExchange(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	for _, args := range []amqp.Table{nil, {"x-dead-letter-exchange": uniq("x.missing")}} {
		q := featQueue(t, conn, "q.nodlx", args)
		ch := newChannel(t, conn)
		featBodies(t, confirmChannel(t, conn), q, "a")
		m, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("basic.get: ok %v, %v", ok, err)
		}
		if err := m.Nack(false, false); err != nil {
			t.Fatal(err)
		}
		wantEmpty(t, ch, q)
		if err := ch.Close(); err != nil {
			t.Fatalf("channel failed after dead-lettering with %v: %v", args, err)
		}
	}
}

// TestFeatureDeadLetterCycleDropped: a message that would expire in a
// circle of queues (a queue dead-lettering to itself, or A to B to A)
// without a rejection on the way is dropped instead of looping. Fanout
// dead-letter exchanges with a watch queue each count the dead letters.
func TestFeatureDeadLetterCycleDropped(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	t.Run("self", func(t *testing.T) {
		t.Parallel()
		conn := s.dial(t)
		dlx, watch := featDLQ(t, conn)
		a := featQueue(t, conn, "q.cycle.self", amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": dlx})
		ch := newChannel(t, conn)
		bindQueue(t, ch, a, dlx, "", nil)
		featBodies(t, confirmChannel(t, conn), a, "loop")

		// One expiry reaches the watch queue; the copy for a itself is dropped.
		time.Sleep(600 * time.Millisecond)
		got := featDrain(t, ch, watch)
		if len(got) != 1 {
			t.Fatalf("watch queue got %d dead letters %q, want 1: the message loops", len(got), got)
		}
		featWantDrain(t, ch, a)
		time.Sleep(200 * time.Millisecond)
		featWantDrain(t, ch, watch)
	})
	t.Run("A to B to A", func(t *testing.T) {
		t.Parallel()
		conn := s.dial(t)
		toB, watchB := featDLQ(t, conn)
		toA, watchA := featDLQ(t, conn)
		a := featQueue(t, conn, "q.cycle.a", amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": toB})
		b := featQueue(t, conn, "q.cycle.b", amqp.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": toA})
		ch := newChannel(t, conn)
		bindQueue(t, ch, b, toB, "", nil)
		bindQueue(t, ch, a, toA, "", nil)
		featBodies(t, confirmChannel(t, conn), a, "loop")

		time.Sleep(800 * time.Millisecond)
		featWantDrain(t, ch, a)
		featWantDrain(t, ch, b)
		gotB, gotA := featDrain(t, ch, watchB), featDrain(t, ch, watchA)
		if len(gotB) != 1 || len(gotA) != 1 {
			t.Fatalf("dead letters A→B %d, B→A %d; want 1 each: the message loops", len(gotB), len(gotA))
		}
	})
}

// TestFeatureDeadLetterRetryCycle: a cycle with a rejection in it is the
// retry pattern and is allowed: the work queue rejects to a retry queue
// whose TTL dead-letters the message back, and every round trip raises the
// counts in x-death instead of adding entries.
func TestFeatureDeadLetterRetryCycle(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	in := featExchange(t, conn, "direct", nil)
	retryX := featExchange(t, conn, "direct", nil)
	work := uniq("q.work")
	retry := featQueue(t, conn, "q.retry", amqp.Table{
		"x-message-ttl": int32(50), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work})
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare(work, false, false, false, false, amqp.Table{
		"x-dead-letter-exchange": retryX, "x-dead-letter-routing-key": "later"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			c.QueueDelete(work, false, false, false)
		}
	})
	bindQueue(t, ch, work, in, "job", nil)
	bindQueue(t, ch, retry, retryX, "later", nil)
	publishConfirmed(t, confirmChannel(t, conn), in, "job", amqp.Publishing{Body: []byte("task")})

	d := consume(t, ch, work, false)
	const rounds = 3
	for round := 0; round <= rounds; round++ {
		m := recv(t, d)
		if string(m.Body) != "task" {
			t.Fatalf("round %d: got %q", round, m.Body)
		}
		if round == 0 {
			if _, ok := m.Headers["x-death"]; ok {
				t.Fatalf("first delivery has x-death %v", m.Headers["x-death"])
			}
		} else {
			n := int64(round)
			wantDeaths(t, m,
				death{count: n, reason: "expired", queue: retry, exchange: retryX, routingKeys: []string{"later"}},
				death{count: n, reason: "rejected", queue: work, exchange: in, routingKeys: []string{"job"}})
			wantDeathSummary(t, m, [3]string{"rejected", work, in}, [3]string{"expired", retry, retryX})
			if m.Exchange != "" || m.RoutingKey != work {
				t.Fatalf("round %d came back through %q with %q, want the default exchange with %q", round, m.Exchange, m.RoutingKey, work)
			}
		}
		if round == rounds {
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := m.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	noRecv(t, d)
	wantEmpty(t, ch, retry)
}
