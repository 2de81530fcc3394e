package test

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestQueueServerNamed(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	_, ch := s.channel(t)
	seen := make(map[string]bool)
	for range 3 {
		q, err := ch.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(q.Name, "amq.gen-") || len(q.Name) <= len("amq.gen-") {
			t.Fatalf("server-named queue %q, want amq.gen-…", q.Name)
		}
		if seen[q.Name] {
			t.Fatalf("name %q given twice", q.Name)
		}
		seen[q.Name] = true
		if q.Messages != 0 || q.Consumers != 0 {
			t.Fatalf("new queue has %d messages, %d consumers", q.Messages, q.Consumers)
		}
		// The name works for publishing through the default exchange.
		publish(t, ch, "", q.Name, "hi")
		d := consume(t, ch, q.Name, true)
		if m := recv(t, d); string(m.Body) != "hi" {
			t.Fatalf("got %q", m.Body)
		}
	}
}

func TestQueueDeclareCounts(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	pub := confirmChannel(t, conn)
	q := declareQueue(t, pub, uniq("q.counts"))
	publishBodies(t, pub, q, "1", "2", "3")

	ch := newChannel(t, conn)
	info, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != q || info.Messages != 3 || info.Consumers != 0 {
		t.Fatalf("passive declare-ok: %+v, want 3 messages, 0 consumers", info)
	}
	// A full re-declaration reports the same counts.
	info, err = ch.QueueDeclare(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 3 || info.Consumers != 0 {
		t.Fatalf("declare-ok: %+v, want 3 messages, 0 consumers", info)
	}

	// One message delivered and unacked: it no longer counts as ready.
	cons := newChannel(t, conn)
	if err := cons.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	m := recv(t, consume(t, cons, q, false))
	if string(m.Body) != "1" {
		t.Fatalf("got %q", m.Body)
	}
	if msgs, consumers := messageCount(t, conn, q); msgs != 2 || consumers != 1 {
		t.Fatalf("with one consumer holding one message: %d messages, %d consumers; want 2, 1", msgs, consumers)
	}

	missing := newChannel(t, conn)
	_, err = missing.QueueDeclarePassive("no-such-queue", false, false, false, false, nil)
	wantReply(t, err, amqp.NotFound, "NOT_FOUND - no queue 'no-such-queue' in vhost '/'")
}

func TestQueueExclusive(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	owner, och := s.channel(t)
	q := uniq("q.exclusive")
	if _, err := och.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	// The owner can use it from any of its channels.
	other := newChannel(t, owner)
	publish(t, other, "", q, "mine")
	if m := recv(t, consume(t, other, q, true)); string(m.Body) != "mine" {
		t.Fatalf("got %q", m.Body)
	}

	stranger := s.dial(t)
	locked := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q + "' in vhost '/'"
	for _, tc := range []struct {
		name string
		run  func(ch *amqp.Channel) error
	}{
		{"declare", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(q, false, false, false, false, nil)
			return err
		}},
		{"declare exclusive", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(q, false, false, true, false, nil)
			return err
		}},
		{"passive declare", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, false, false, true, false, nil)
			return err
		}},
		{"consume", func(ch *amqp.Channel) error {
			_, err := ch.Consume(q, "", true, false, false, false, nil)
			return err
		}},
		{"get", func(ch *amqp.Channel) error {
			_, _, err := ch.Get(q, true)
			return err
		}},
		{"bind", func(ch *amqp.Channel) error {
			return ch.QueueBind(q, "k", "amq.direct", false, nil)
		}},
		{"purge", func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge(q, false)
			return err
		}},
		{"delete", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReply(t, tc.run(newChannel(t, stranger)), amqp.ResourceLocked, locked)
		})
	}

	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the exclusive queue is deleted with its connection", func() bool { return !exists(t, stranger, "queue", q) })
}

func TestQueueAutoDelete(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, ch := s.channel(t)
	q := uniq("q.auto")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Without ever having had a consumer it stays.
	if !exists(t, conn, "queue", q) {
		t.Fatal("auto-delete queue gone before its first consumer")
	}
	for _, tag := range []string{"c1", "c2"} {
		if _, err := ch.Consume(q, tag, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	if !exists(t, conn, "queue", q) {
		t.Fatal("auto-delete queue gone while it has a consumer")
	}
	if err := ch.Cancel("c2", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the auto-delete queue is deleted after its last consumer", func() bool { return !exists(t, conn, "queue", q) })

	// Closing the consumer's channel cancels it as well.
	q2 := uniq("q.auto")
	if _, err := ch.QueueDeclare(q2, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cons := newChannel(t, conn)
	consume(t, cons, q2, false)
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the auto-delete queue is deleted with its consumer's channel", func() bool { return !exists(t, conn, "queue", q2) })
}

func TestQueuePurge(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	publishBodies(t, ch, q, "1", "2", "3", "4", "5")
	n, err := ch.QueuePurge(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("purge-ok message count %d, want 5", n)
	}
	wantEmpty(t, ch, q)
	if n, err = ch.QueuePurge(q, false); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v; want 0", n, err)
	}
	publishBodies(t, ch, q, "after")
	if m := get(t, ch, q); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
}

func TestQueueDelete(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)

	t.Run("if-unused with a consumer", func(t *testing.T) {
		q := declareQueue(t, ch, uniq("q.used"))
		cons := newChannel(t, conn)
		consume(t, cons, q, false)
		bad := newChannel(t, conn)
		_, err := bad.QueueDelete(q, true, false, false)
		wantReply(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' in use")
		if !exists(t, conn, "queue", q) {
			t.Fatal("queue deleted although if-unused failed")
		}
	})

	t.Run("if-empty with messages", func(t *testing.T) {
		q := declareQueue(t, ch, uniq("q.full"))
		publishBodies(t, ch, q, "x")
		bad := newChannel(t, conn)
		_, err := bad.QueueDelete(q, false, true, false)
		// RabbitMQ says "… in vhost '/' not empty".
		wantReply(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/'")
		if m := get(t, ch, q); string(m.Body) != "x" {
			t.Fatalf("got %q", m.Body)
		}
	})

	t.Run("returns the message count", func(t *testing.T) {
		q := declareQueue(t, ch, uniq("q.count"))
		publishBodies(t, ch, q, "1", "2", "3")
		n, err := ch.QueueDelete(q, false, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Fatalf("delete-ok message count %d, want 3", n)
		}
		if exists(t, conn, "queue", q) {
			t.Fatal("queue still exists")
		}
	})

	t.Run("if-unused and if-empty when both hold", func(t *testing.T) {
		q := declareQueue(t, ch, uniq("q.idle"))
		n, err := ch.QueueDelete(q, true, true, false)
		if err != nil || n != 0 {
			t.Fatalf("delete: %d, %v", n, err)
		}
		if exists(t, conn, "queue", q) {
			t.Fatal("queue still exists")
		}
	})
}

func TestQueueBindUnbind(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "amq.direct", "k1", nil)
	bindQueue(t, ch, q, "amq.direct", "k2", nil)
	// Binding twice is idempotent: still one copy.
	bindQueue(t, ch, q, "amq.direct", "k1", nil)
	qs := map[string]string{"q": q}
	checkRoutes(t, ch, "amq.direct", qs, []routeCase{
		{key: "k1", want: []string{"q"}},
		{key: "k2", want: []string{"q"}},
		{key: "k3", want: nil},
	})
	if err := ch.QueueUnbind(q, "k1", "amq.direct", nil); err != nil {
		t.Fatal(err)
	}
	checkRoutes(t, ch, "amq.direct", qs, []routeCase{
		{key: "k1", want: nil},
		{key: "k2", want: []string{"q"}},
	})

	for _, tc := range []struct {
		name   string
		run    func(ch *amqp.Channel) error
		code   int
		prefix string
	}{
		{"bind to a missing exchange", func(ch *amqp.Channel) error {
			return ch.QueueBind(q, "k", "no-such-exchange", false, nil)
		}, amqp.NotFound, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'"},
		{"bind a missing queue", func(ch *amqp.Channel) error {
			return ch.QueueBind("no-such-queue", "k", "amq.direct", false, nil)
		}, amqp.NotFound, "NOT_FOUND - no queue 'no-such-queue' in vhost '/'"},
		{"bind to the default exchange", func(ch *amqp.Channel) error {
			return ch.QueueBind(q, "k", "", false, nil)
		}, amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{"bind with an invalid x-match", func(ch *amqp.Channel) error {
			return ch.QueueBind(q, "", "amq.headers", false, amqp.Table{"x-match": "some"})
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - Invalid x-match field value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReply(t, tc.run(newChannel(t, conn)), tc.code, tc.prefix)
		})
	}
}

func TestQueueDeclareErrors(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	setup := newChannel(t, conn)
	transient := declareQueue(t, setup, uniq("q.transient"))
	durable := uniq("q.durable")
	if _, err := setup.QueueDeclare(durable, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(durable, false, false, false)
		}
	})

	for _, tc := range []struct {
		name   string
		run    func(ch *amqp.Channel) error
		code   int
		prefix string
	}{
		{"re-declare transient as durable", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(transient, true, false, false, false, nil)
			return err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + transient + "' in vhost '/'"},
		{"re-declare durable as transient", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(durable, false, false, false, false, nil)
			return err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + durable + "' in vhost '/'"},
		{"re-declare with auto-delete", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(transient, false, true, false, false, nil)
			return err
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '" + transient + "' in vhost '/'"},
		{"amq. prefix", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("amq.mine", false, false, false, false, nil)
			return err
		}, amqp.AccessRefused, "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReply(t, tc.run(newChannel(t, conn)), tc.code, tc.prefix)
		})
	}
	if conn.IsClosed() {
		t.Fatal("channel errors closed the connection")
	}
}
