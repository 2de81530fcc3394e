package test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The helpers of the queue feature tests (TTL, dead-lettering, limits,
// priorities, consumer features, exchanges, transactions, direct reply-to).
// They build on the AMQP helpers in amqp_helpers_test.go.

// featQueue declares a non-durable queue with a unique name made from prefix
// and the arguments; it is deleted again when the test ends, so that a
// shared reference broker does not fill up.
func featQueue(t testing.TB, conn *amqp.Connection, prefix string, args amqp.Table) string {
	t.Helper()
	ch := newChannel(t, conn)
	defer ch.Close()
	name := uniq(prefix)
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatalf("queue.declare %s %v: %v", name, args, err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			c.QueueDelete(name, false, false, false)
			c.Close()
		}
	})
	return name
}

// featExchange declares a non-durable exchange with a unique name; it is
// deleted again when the test ends.
func featExchange(t testing.TB, conn *amqp.Connection, kind string, args amqp.Table) string {
	t.Helper()
	ch := newChannel(t, conn)
	defer ch.Close()
	name := uniq("x." + kind)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, args); err != nil {
		t.Fatalf("exchange.declare %s %s: %v", kind, name, err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			c.ExchangeDelete(name, false, false)
			c.Close()
		}
	})
	return name
}

// featDLQ declares a fanout exchange and a queue bound to it: the usual
// target of dead letters in these tests. It returns both names.
func featDLQ(t testing.TB, conn *amqp.Connection) (exchange, queue string) {
	t.Helper()
	exchange = featExchange(t, conn, "fanout", nil)
	queue = featQueue(t, conn, "q.dead", nil)
	ch := newChannel(t, conn)
	defer ch.Close()
	bindQueue(t, ch, queue, exchange, "", nil)
	return exchange, queue
}

// featConsume starts a consumer with arguments (x-priority and the like).
func featConsume(t testing.TB, ch *amqp.Channel, queue string, autoAck bool, args amqp.Table) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", autoAck, false, false, false, args)
	if err != nil {
		t.Fatalf("basic.consume %s %v: %v", queue, args, err)
	}
	return d
}

// featQoS sets a per-consumer prefetch count on ch.
func featQoS(t testing.TB, ch *amqp.Channel, n int) {
	t.Helper()
	if err := ch.Qos(n, 0, false); err != nil {
		t.Fatalf("basic.qos %d: %v", n, err)
	}
}

// featPublishAll publishes msgs to a queue through the default exchange on
// a channel in confirm mode and waits until every one is confirmed. It
// returns the acks, in publish order (false for a nack).
func featPublishAll(t testing.TB, ch *amqp.Channel, queue string, msgs ...amqp.Publishing) []bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dcs := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, m)
		if err != nil {
			t.Fatalf("basic.publish %d to %s: %v", i, queue, err)
		}
		if dc == nil {
			t.Fatal("featPublishAll needs a channel in confirm mode")
		}
		dcs[i] = dc
	}
	acks := make([]bool, len(msgs))
	for i, dc := range dcs {
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			t.Fatalf("waiting for the confirm of publish %d to %s: %v", i, queue, err)
		}
		acks[i] = ack
	}
	return acks
}

// featMsg is a message with a body and, optionally, a priority or an
// expiration.
func featMsg(body string, priority uint8, expiration string) amqp.Publishing {
	return amqp.Publishing{Body: []byte(body), Priority: priority, Expiration: expiration}
}

// featBodies publishes one confirmed message per body.
func featBodies(t testing.TB, ch *amqp.Channel, queue string, bodies ...string) {
	t.Helper()
	msgs := make([]amqp.Publishing, len(bodies))
	for i, b := range bodies {
		msgs[i] = amqp.Publishing{Body: []byte(b)}
	}
	for i, ack := range featPublishAll(t, ch, queue, msgs...) {
		if !ack {
			t.Fatalf("publish of %q to %s was nacked", bodies[i], queue)
		}
	}
}

// featDrain takes every ready message of the queue with basic.get and
// returns the bodies in order.
func featDrain(t testing.TB, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var out []string
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, string(m.Body))
	}
}

// featGetWait takes one message with basic.get and auto-ack, retrying
// while the queue is empty: dead letters may arrive a little after the
// operation that caused them.
func featGetWait(t testing.TB, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", queue, err)
		}
		if ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("basic.get %s: still empty after %v", queue, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// featWantDrain checks the ready messages of the queue, in order.
func featWantDrain(t testing.TB, ch *amqp.Channel, queue string, want ...string) {
	t.Helper()
	if got := featDrain(t, ch, queue); !slices.Equal(got, want) {
		t.Fatalf("queue %s holds %q, want %q", queue, got, want)
	}
}

// featRecvWithin waits up to d for one delivery.
func featRecvWithin(t testing.TB, d <-chan amqp.Delivery, within time.Duration, what string) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatalf("delivery channel closed while waiting for %s", what)
		}
		return m
	case <-time.After(within):
		t.Fatalf("%s did not arrive within %v", what, within)
	}
	return amqp.Delivery{}
}

// death is the part of an x-death entry a test expects. Time is checked to
// be a timestamp near the test's run time.
type death struct {
	count       int64
	reason      string
	queue       string
	exchange    string
	routingKeys []string
	// origExpiration is the original-expiration field; "" means absent.
	origExpiration string
}

func (d death) String() string {
	return fmt.Sprintf("{count %d, reason %s, queue %s, exchange %q, routing-keys %q, original-expiration %q}",
		d.count, d.reason, d.queue, d.exchange, d.routingKeys, d.origExpiration)
}

// featDeaths decodes the x-death header of m, failing on anything that
// is not laid out as RabbitMQ writes it.
func featDeaths(t testing.TB, m amqp.Delivery) []death {
	t.Helper()
	raw, ok := m.Headers["x-death"]
	if !ok {
		t.Fatalf("message %q has no x-death header; headers %v", m.Body, m.Headers)
	}
	arr, ok := raw.([]interface{})
	if !ok {
		t.Fatalf("x-death is %T, want an array ([]interface{})", raw)
	}
	out := make([]death, 0, len(arr))
	for i, e := range arr {
		tab, ok := e.(amqp.Table)
		if !ok {
			t.Fatalf("x-death[%d] is %T, want a table", i, e)
		}
		var d death
		str := func(key string) string {
			v, ok := tab[key].(string)
			if !ok {
				t.Fatalf("x-death[%d][%s] is %T (%v), want a string", i, key, tab[key], tab[key])
			}
			return v
		}
		if d.count, ok = tab["count"].(int64); !ok {
			t.Fatalf("x-death[%d][count] is %T (%v), want int64", i, tab["count"], tab["count"])
		}
		d.reason, d.queue, d.exchange = str("reason"), str("queue"), str("exchange")
		ts, ok := tab["time"].(time.Time)
		if !ok {
			t.Fatalf("x-death[%d][time] is %T (%v), want a timestamp", i, tab["time"], tab["time"])
		}
		if age := time.Since(ts); age < -2*time.Second || age > time.Minute {
			t.Fatalf("x-death[%d][time] is %v, %v away from now", i, ts, age)
		}
		keys, ok := tab["routing-keys"].([]interface{})
		if !ok {
			t.Fatalf("x-death[%d][routing-keys] is %T (%v), want an array", i, tab["routing-keys"], tab["routing-keys"])
		}
		for _, k := range keys {
			s, ok := k.(string)
			if !ok {
				t.Fatalf("x-death[%d][routing-keys] holds %T, want strings", i, k)
			}
			d.routingKeys = append(d.routingKeys, s)
		}
		if v, has := tab["original-expiration"]; has {
			s, ok := v.(string)
			if !ok {
				t.Fatalf("x-death[%d][original-expiration] is %T, want a string", i, v)
			}
			d.origExpiration = s
		}
		out = append(out, d)
	}
	return out
}

// wantDeaths checks the x-death header of m entry by entry.
func wantDeaths(t testing.TB, m amqp.Delivery, want ...death) {
	t.Helper()
	got := featDeaths(t, m)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.count == w.count && g.reason == w.reason && g.queue == w.queue && g.exchange == w.exchange &&
			slices.Equal(g.routingKeys, w.routingKeys) && g.origExpiration == w.origExpiration
	}
	if !same {
		t.Fatalf("x-death of %q:\n got %v\nwant %v", m.Body, got, want)
	}
}

// wantHeader checks one string header of m.
func wantHeader(t testing.TB, m amqp.Delivery, key, want string) {
	t.Helper()
	got, ok := m.Headers[key]
	if !ok {
		t.Fatalf("message %q has no %s header; headers %v", m.Body, key, m.Headers)
	}
	if s, isStr := got.(string); !isStr || s != want {
		t.Fatalf("header %s of %q is %T %v, want %q", key, m.Body, got, got, want)
	}
}

// wantDeathSummary checks the x-first-death-* and x-last-death-* headers.
func wantDeathSummary(t testing.TB, m amqp.Delivery, first, last [3]string) {
	t.Helper()
	for i, k := range []string{"reason", "queue", "exchange"} {
		wantHeader(t, m, "x-first-death-"+k, first[i])
		wantHeader(t, m, "x-last-death-"+k, last[i])
	}
}
