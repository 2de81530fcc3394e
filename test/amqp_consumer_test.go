package test

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// numbered returns the bodies "<prefix>1" … "<prefix>n".
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

func TestConsumerRoundRobin(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	ch1, ch2 := newChannel(t, conn), newChannel(t, conn)
	d1, d2 := consume(t, ch1, q, true), consume(t, ch2, q, true)
	sent := numbered("m", 10)
	publishBodies(t, pub, q, sent...)

	var got1, got2 []string
	deadline := time.After(waitFor)
	for len(got1)+len(got2) < len(sent) {
		select {
		case m := <-d1:
			got1 = append(got1, string(m.Body))
		case m := <-d2:
			got2 = append(got2, string(m.Body))
		case <-deadline:
			t.Fatalf("timed out: consumer 1 got %q, consumer 2 got %q", got1, got2)
		}
	}
	if len(got1) != 5 || len(got2) != 5 {
		t.Fatalf("uneven split: consumer 1 got %q, consumer 2 got %q", got1, got2)
	}
	// Alternating: one consumer gets the odd messages, the other the even ones.
	odd, even := []string{"m1", "m3", "m5", "m7", "m9"}, []string{"m2", "m4", "m6", "m8", "m10"}
	if !(slices.Equal(got1, odd) && slices.Equal(got2, even)) && !(slices.Equal(got1, even) && slices.Equal(got2, odd)) {
		t.Fatalf("not round-robin: consumer 1 got %q, consumer 2 got %q", got1, got2)
	}
	noRecv(t, d1)
	noRecv(t, d2)
}

func TestConsumerNoAck(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, "a", "b", "c")
	ch := newChannel(t, conn)
	ds := recvN(t, consume(t, ch, q, true), 3)
	wantBodies(t, ds, "a", "b", "c")
	for i, d := range ds {
		if d.DeliveryTag != uint64(i+1) || d.Redelivered {
			t.Fatalf("delivery %d: tag %d redelivered %v", i, d.DeliveryTag, d.Redelivered)
		}
	}
	// Nothing waits for an ack: closing the channel requeues nothing.
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := messageCount(t, conn, q); msgs != 0 {
		t.Fatalf("%d messages back in the queue", msgs)
	}
}

func TestConsumerManualAck(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, "a", "b")
	ch := newChannel(t, conn)
	ds := recvN(t, consume(t, ch, q, false), 2)
	wantBodies(t, ds, "a", "b")
	if err := ds[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	// Only the unacked message comes back, marked as redelivered.
	m := get(t, pub, q)
	if string(m.Body) != "b" || !m.Redelivered {
		t.Fatalf("got %q redelivered=%v, want b redelivered", m.Body, m.Redelivered)
	}
	wantEmpty(t, pub, q)
}

func TestConsumerExclusive(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "")
	if _, err := ch.Consume(q, "only", true, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	inUse := "ACCESS_REFUSED - queue '" + q + "' in vhost '/' in exclusive use"
	_, err := newChannel(t, conn).Consume(q, "second", true, false, false, false, nil)
	wantReply(t, err, amqp.AccessRefused, inUse)
	_, other := s.channel(t)
	_, err = other.Consume(q, "third", true, true, false, false, nil)
	wantReply(t, err, amqp.AccessRefused, inUse)

	// Once the exclusive consumer is gone, others may consume again; and an
	// exclusive consumer is refused while another consumer exists.
	if err := ch.Cancel("only", false); err != nil {
		t.Fatal(err)
	}
	if _, err := newChannel(t, conn).Consume(q, "shared", true, false, false, false, nil); err != nil {
		t.Fatalf("consume after the exclusive consumer was cancelled: %v", err)
	}
	_, err = newChannel(t, conn).Consume(q, "greedy", true, true, false, false, nil)
	wantReply(t, err, amqp.AccessRefused, inUse)
}

func TestConsumerPrefetch(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, numbered("m", 5)...)
	ch := newChannel(t, conn)
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	d := consume(t, ch, q, false)
	first := recvN(t, d, 2)
	wantBodies(t, first, "m1", "m2")
	noRecv(t, d)

	if err := first[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	m3 := recv(t, d)
	if string(m3.Body) != "m3" {
		t.Fatalf("got %q, want m3", m3.Body)
	}
	noRecv(t, d)

	// Acking both outstanding deliveries at once makes room for two.
	if err := m3.Ack(true); err != nil {
		t.Fatal(err)
	}
	wantBodies(t, recvN(t, d, 2), "m4", "m5")
	noRecv(t, d)

	// The limit applies to each consumer on its own.
	q2 := declareQueue(t, pub, "")
	publishBodies(t, pub, q2, numbered("n", 6)...)
	d1, d2 := consume(t, ch, q2, false), consume(t, ch, q2, false)
	recvN(t, d1, 2)
	recvN(t, d2, 2)
	noRecv(t, d1)
	noRecv(t, d2)
	if msgs, _ := messageCount(t, conn, q2); msgs != 2 {
		t.Fatalf("%d messages left ready, want 2", msgs)
	}
}

func TestConsumerPrefetchGlobal(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q1, q2 := declareQueue(t, pub, ""), declareQueue(t, pub, "")
	publishBodies(t, pub, q1, numbered("a", 5)...)
	publishBodies(t, pub, q2, numbered("b", 5)...)

	ch := newChannel(t, conn)
	if err := ch.Qos(3, 0, true); err != nil {
		t.Fatal(err)
	}
	d1, d2 := consume(t, ch, q1, false), consume(t, ch, q2, false)
	var held []amqp.Delivery
	collect := func(want int) {
		t.Helper()
		deadline := time.After(waitFor)
		for len(held) < want {
			select {
			case m := <-d1:
				held = append(held, m)
			case m := <-d2:
				held = append(held, m)
			case <-deadline:
				t.Fatalf("timed out with %d of %d deliveries: %q", len(held), want, bodies(held))
			}
		}
		// No more than the channel's limit.
		select {
		case m := <-d1:
			t.Fatalf("delivery %q beyond the channel prefetch of 3 (holding %q)", m.Body, bodies(held))
		case m := <-d2:
			t.Fatalf("delivery %q beyond the channel prefetch of 3 (holding %q)", m.Body, bodies(held))
		case <-time.After(200 * time.Millisecond):
		}
	}
	collect(3)
	if err := held[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	held = held[1:]
	collect(3)
	// Acking everything releases the rest, three at a time.
	for total := 4; total < 10; {
		var last uint64
		for _, m := range held {
			last = max(last, m.DeliveryTag)
		}
		if err := ch.Ack(last, true); err != nil {
			t.Fatal(err)
		}
		held = held[:0]
		want := min(3, 10-total)
		collect(want)
		total += want
	}
}

func TestConsumerAckMultiple(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, uniq("q.ackmulti"))
	publishBodies(t, pub, q, numbered("m", 5)...)
	ch := newChannel(t, conn)
	ds := recvN(t, consume(t, ch, q, false), 5)
	wantBodies(t, ds, numbered("m", 5)...)
	// Acks m1…m4.
	if err := ds[3].Ack(true); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	m := get(t, pub, q)
	if string(m.Body) != "m5" || !m.Redelivered {
		t.Fatalf("got %q redelivered=%v, want m5 redelivered", m.Body, m.Redelivered)
	}
	wantEmpty(t, pub, q)
}

func TestConsumerNackRequeue(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, "a", "b", "c")
	ch := newChannel(t, conn)
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d := consume(t, ch, q, false)
	a := recv(t, d)
	if string(a.Body) != "a" || a.Redelivered {
		t.Fatalf("got %q redelivered=%v, want a", a.Body, a.Redelivered)
	}
	if err := a.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	// The requeued message keeps its place ahead of b and c.
	again := recv(t, d)
	if string(again.Body) != "a" || !again.Redelivered {
		t.Fatalf("got %q redelivered=%v, want a redelivered", again.Body, again.Redelivered)
	}
	if again.DeliveryTag == a.DeliveryTag {
		t.Fatalf("redelivery reused delivery tag %d", a.DeliveryTag)
	}
	if err := again.Ack(false); err != nil {
		t.Fatal(err)
	}
	b := recv(t, d)
	if string(b.Body) != "b" || b.Redelivered {
		t.Fatalf("got %q redelivered=%v, want b", b.Body, b.Redelivered)
	}
	// Nack with multiple and requeue of a single delivery, then reject.
	if err := b.Nack(true, true); err != nil {
		t.Fatal(err)
	}
	b = recv(t, d)
	if string(b.Body) != "b" || !b.Redelivered {
		t.Fatalf("got %q redelivered=%v, want b redelivered", b.Body, b.Redelivered)
	}
	if err := b.Reject(true); err != nil {
		t.Fatal(err)
	}
	b = recv(t, d)
	if string(b.Body) != "b" || !b.Redelivered {
		t.Fatalf("got %q redelivered=%v, want b redelivered", b.Body, b.Redelivered)
	}
	if err := b.Ack(false); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, d); string(c.Body) != "c" {
		t.Fatalf("got %q, want c", c.Body)
	}

	// Several requeued messages go back to their original places, in
	// queue order whatever the order of the nacks, ahead of newer ones.
	q2 := declareQueue(t, pub, "")
	publishBodies(t, pub, q2, "1", "2", "3")
	g := newChannel(t, conn)
	var held []amqp.Delivery
	for range 2 {
		m, ok, err := g.Get(q2, false)
		if err != nil || !ok {
			t.Fatalf("basic.get: ok=%v err=%v", ok, err)
		}
		held = append(held, m)
	}
	wantBodies(t, held, "1", "2")
	publishBodies(t, pub, q2, "4")
	if err := held[1].Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if err := held[0].Nack(false, true); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"1", "2", "3", "4"} {
		m := get(t, g, q2)
		if string(m.Body) != want || m.Redelivered != (i < 2) {
			t.Fatalf("get %d: %q redelivered=%v, want %q redelivered=%v", i, m.Body, m.Redelivered, want, i < 2)
		}
	}
}

func TestConsumerRejectDrops(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, "a", "b", "c")
	ch := newChannel(t, conn)
	d := consume(t, ch, q, false)
	ds := recvN(t, d, 3)
	wantBodies(t, ds, "a", "b", "c")
	if err := ds[0].Reject(false); err != nil {
		t.Fatal(err)
	}
	if err := ds[2].Nack(true, false); err != nil { // b and c
		t.Fatal(err)
	}
	noRecv(t, d)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, pub, q)
}

func TestConsumerRequeueOnClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		close func(conn *amqp.Connection, ch *amqp.Channel, sock net.Conn) error
	}{
		{"channel", func(_ *amqp.Connection, ch *amqp.Channel, _ net.Conn) error { return ch.Close() }},
		{"connection", func(conn *amqp.Connection, _ *amqp.Channel, _ net.Conn) error { return conn.Close() }},
		// The client vanishes without connection.close.
		{"socket dropped", func(_ *amqp.Connection, _ *amqp.Channel, sock net.Conn) error { return sock.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := amqpServer(t)
			q := uniq("q.requeue")
			conn := s.dial(t)
			pub := confirmChannel(t, conn)
			declareQueue(t, pub, q)
			publishBodies(t, pub, q, "a", "b", "c")

			var sock net.Conn
			first, err := amqp.DialConfig(s.URL, amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
				nc, err := net.DialTimeout(network, addr, waitFor)
				sock = nc
				return nc, err
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			ch := newChannel(t, first)
			ds := recvN(t, consume(t, ch, q, false), 3)
			wantBodies(t, ds, "a", "b", "c")
			if err := ds[1].Ack(false); err != nil {
				t.Fatal(err)
			}
			if err := tc.close(first, ch, sock); err != nil {
				t.Fatal(err)
			}

			again := recvN(t, consume(t, newChannel(t, conn), q, false), 2)
			wantBodies(t, again, "a", "c")
			for _, m := range again {
				if !m.Redelivered {
					t.Fatalf("%q not marked redelivered", m.Body)
				}
			}
		})
	}
}

func TestConsumerCancel(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	ch := newChannel(t, conn)
	d, err := ch.Consume(q, "tag", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishBodies(t, pub, q, "before")
	if m := recv(t, d); string(m.Body) != "before" || m.ConsumerTag != "tag" {
		t.Fatalf("got %q for %q", m.Body, m.ConsumerTag)
	}
	if err := ch.Cancel("tag", false); err != nil {
		t.Fatal(err)
	}
	select {
	case m, ok := <-d:
		if ok {
			t.Fatalf("delivery %q after basic.cancel", m.Body)
		}
	case <-time.After(waitFor):
		t.Fatal("delivery channel not closed after basic.cancel")
	}
	publishBodies(t, pub, q, "after")
	if m := get(t, pub, q); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
	if _, consumers := messageCount(t, conn, q); consumers != 0 {
		t.Fatalf("%d consumers after cancel", consumers)
	}
	// The tag can be used again.
	if _, err := ch.Consume(q, "tag", true, false, false, false, nil); err != nil {
		t.Fatalf("consume with the cancelled tag: %v", err)
	}
}

func TestConsumerCancelNotify(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, uniq("q.doomed"))
	cancels := ch.NotifyCancel(make(chan string, 1))
	d, err := ch.Consume(q, "watcher", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q, "unacked")
	held := recv(t, d)
	if _, err := newChannel(t, conn).QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Fatalf("basic.cancel for %q, want watcher", tag)
		}
	case <-time.After(waitFor):
		t.Fatal("no basic.cancel from the server after the queue was deleted")
	}
	select {
	case _, ok := <-d:
		if ok {
			t.Fatal("delivery after the cancel")
		}
	case <-time.After(waitFor):
		t.Fatal("delivery channel not closed after the cancel")
	}
	// A delivery from the deleted queue can still be acked, and the
	// channel stays open.
	if err := held.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("channel unusable after the cancel: %v", err)
	}
}

func TestConsumerAckUnknownTag(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	for _, tc := range []struct {
		name   string
		settle func(ch *amqp.Channel) error
	}{
		{"ack", func(ch *amqp.Channel) error { return ch.Ack(42, false) }},
		{"ack multiple", func(ch *amqp.Channel) error { return ch.Ack(42, true) }},
		{"nack", func(ch *amqp.Channel) error { return ch.Nack(42, false, true) }},
		{"reject", func(ch *amqp.Channel) error { return ch.Reject(42, false) }},
		{"ack twice", func(ch *amqp.Channel) error {
			// Tags 1…41 go to auto-acked gets; 42 is acked twice.
			q := declareQueue(t, ch, "")
			for range 41 {
				publish(t, ch, "", q, "filler")
			}
			for range 41 {
				get(t, ch, q)
			}
			publish(t, ch, "", q, "twice")
			m, ok, err := ch.Get(q, false)
			if err != nil || !ok || m.DeliveryTag != 42 {
				t.Fatalf("basic.get: tag %d ok=%v err=%v, want tag 42", m.DeliveryTag, ok, err)
			}
			if err := m.Ack(false); err != nil {
				return err
			}
			return m.Ack(false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, conn)
			closed := notifyClose(ch)
			if err := tc.settle(ch); err != nil {
				t.Fatal(err)
			}
			closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - unknown delivery tag 42")

			// The connection carries on.
			if conn.IsClosed() {
				t.Fatal("connection closed by a channel error")
			}
			fresh := confirmChannel(t, conn)
			q := declareQueue(t, fresh, "")
			publishBodies(t, fresh, q, "still here")
			if m := get(t, fresh, q); string(m.Body) != "still here" {
				t.Fatalf("got %q", m.Body)
			}
		})
	}
}

func TestConsumerDuplicateTag(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, ch := s.channel(t)
	closed := notifyConnClose(conn)
	q := declareQueue(t, ch, "")
	if _, err := ch.Consume(q, "dup", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Consume(q, "dup", true, false, false, false, nil)
	wantReply(t, err, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
	closedWith(t, closed, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
	if !conn.IsClosed() {
		t.Fatal("connection still open")
	}
}

func TestConsumerGet(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	if _, ok, err := ch.Get(q, true); err != nil || ok {
		t.Fatalf("basic.get of an empty queue: ok=%v err=%v, want get-empty", ok, err)
	}
	publishBodies(t, ch, q, "a", "b", "c")

	m, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("basic.get: ok=%v err=%v", ok, err)
	}
	if string(m.Body) != "a" || m.MessageCount != 2 || m.Redelivered || m.RoutingKey != q || m.Exchange != "" {
		t.Fatalf("get-ok: body %q count %d redelivered %v exchange %q key %q; want a, 2 left",
			m.Body, m.MessageCount, m.Redelivered, m.Exchange, m.RoutingKey)
	}
	// Unacked, then requeued: it comes back first.
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	m, ok, err = ch.Get(q, false)
	if err != nil || !ok || string(m.Body) != "a" || !m.Redelivered || m.MessageCount != 2 {
		t.Fatalf("get after requeue: %q redelivered=%v count=%d ok=%v err=%v", m.Body, m.Redelivered, m.MessageCount, ok, err)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	m = get(t, ch, q)
	if string(m.Body) != "b" || m.MessageCount != 1 {
		t.Fatalf("got %q with count %d, want b with 1", m.Body, m.MessageCount)
	}
	m = get(t, ch, q)
	if string(m.Body) != "c" || m.MessageCount != 0 {
		t.Fatalf("got %q with count %d, want c with 0", m.Body, m.MessageCount)
	}
	wantEmpty(t, ch, q)

	_, _, err = newChannel(t, conn).Get("no-such-queue", true)
	wantReply(t, err, amqp.NotFound, "NOT_FOUND - no queue 'no-such-queue' in vhost '/'")
}

func TestConsumerRecover(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, "")
	publishBodies(t, pub, q, "a", "b", "c")
	ch := newChannel(t, conn)
	d := consume(t, ch, q, false)
	ds := recvN(t, d, 3)
	wantBodies(t, ds, "a", "b", "c")
	if err := ds[1].Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	again := recvN(t, d, 2)
	wantBodies(t, again, "a", "c")
	for _, m := range again {
		if !m.Redelivered {
			t.Fatalf("%q not marked redelivered", m.Body)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	noRecv(t, d)
}
