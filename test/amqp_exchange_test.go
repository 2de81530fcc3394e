package test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// routeCase is one message published through an exchange and the queues it
// must reach.
type routeCase struct {
	key     string
	headers amqp.Table
	want    []string
}

var routeSeq atomic.Int64

// routedTo publishes one message through the exchange and returns, sorted,
// the queues that received it. The channel must be in confirm mode. Each
// queue must hold at most one copy.
func routedTo(t *testing.T, ch *amqp.Channel, exchange string, rc routeCase, queues []string) []string {
	t.Helper()
	body := fmt.Sprintf("m%d", routeSeq.Add(1))
	publishConfirmed(t, ch, exchange, rc.key, amqp.Publishing{Headers: rc.headers, Body: []byte(body)})
	var got []string
	for _, q := range queues {
		m, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", q, err)
		}
		if !ok {
			continue
		}
		if string(m.Body) != body {
			t.Fatalf("queue %s holds %q, want %q", q, m.Body, body)
		}
		if m.Exchange != exchange || m.RoutingKey != rc.key {
			t.Fatalf("queue %s: delivered with exchange %q key %q, want %q %q", q, m.Exchange, m.RoutingKey, exchange, rc.key)
		}
		if extra, ok, err := ch.Get(q, true); err != nil || ok {
			t.Fatalf("queue %s holds a second copy %q (err %v)", q, extra.Body, err)
		}
		got = append(got, q)
	}
	slices.Sort(got)
	return got
}

// checkRoutes publishes each case through the exchange and compares the
// queues reached. Queue names in the cases are short labels mapped to the
// declared queues by names.
func checkRoutes(t *testing.T, ch *amqp.Channel, exchange string, names map[string]string, cases []routeCase) {
	t.Helper()
	var queues []string
	label := make(map[string]string)
	for l, q := range names {
		queues = append(queues, q)
		label[q] = l
	}
	for _, rc := range cases {
		var got []string
		for _, q := range routedTo(t, ch, exchange, rc, queues) {
			got = append(got, label[q])
		}
		want := slices.Clone(rc.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("key %q headers %v: reached %q, want %q", rc.key, rc.headers, got, want)
		}
	}
}

// declareQueues declares one queue per label.
func declareQueues(t *testing.T, ch *amqp.Channel, labels ...string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, l := range labels {
		m[l] = declareQueue(t, ch, uniq("q."+l))
	}
	return m
}

func TestExchangeDefaultRoutesByQueueName(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	qs := declareQueues(t, ch, "a", "b")
	checkRoutes(t, ch, "", qs, []routeCase{
		{key: qs["a"], want: []string{"a"}},
		{key: qs["b"], want: []string{"b"}},
		{key: "no-such-queue", want: nil},
		{key: "", want: nil},
	})
}

func TestExchangeDirect(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	x := declareExchange(t, ch, "direct")
	qs := declareQueues(t, ch, "info", "both", "empty")
	bindQueue(t, ch, qs["info"], x, "info", nil)
	bindQueue(t, ch, qs["both"], x, "info", nil)
	bindQueue(t, ch, qs["both"], x, "error", nil)
	bindQueue(t, ch, qs["empty"], x, "", nil)
	checkRoutes(t, ch, x, qs, []routeCase{
		{key: "info", want: []string{"info", "both"}},
		{key: "error", want: []string{"both"}},
		{key: "", want: []string{"empty"}},
		{key: "warning", want: nil},
		{key: "INFO", want: nil},
	})
}

func TestExchangeFanout(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	x := declareExchange(t, ch, "fanout")
	qs := declareQueues(t, ch, "a", "b", "c", "twice")
	bindQueue(t, ch, qs["a"], x, "", nil)
	bindQueue(t, ch, qs["b"], x, "ignored", nil)
	bindQueue(t, ch, qs["c"], x, "x.y", nil)
	bindQueue(t, ch, qs["twice"], x, "one", nil)
	bindQueue(t, ch, qs["twice"], x, "two", nil)
	all := []string{"a", "b", "c", "twice"}
	checkRoutes(t, ch, x, qs, []routeCase{
		{key: "", want: all},
		{key: "anything", want: all},
		{key: "x.y", want: all},
	})
}

func TestExchangeTopic(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	x := declareExchange(t, ch, "topic")
	qs := declareQueues(t, ch, "orange", "rabbit", "error", "ab", "all", "exact")
	bindQueue(t, ch, qs["orange"], x, "*.orange.*", nil)
	bindQueue(t, ch, qs["rabbit"], x, "*.*.rabbit", nil)
	bindQueue(t, ch, qs["rabbit"], x, "lazy.#", nil)
	bindQueue(t, ch, qs["error"], x, "#.error", nil)
	bindQueue(t, ch, qs["ab"], x, "a.#.b", nil)
	bindQueue(t, ch, qs["all"], x, "#", nil)
	bindQueue(t, ch, qs["exact"], x, "kern.disk", nil)
	checkRoutes(t, ch, x, qs, []routeCase{
		{key: "quick.orange.rabbit", want: []string{"orange", "rabbit", "all"}},
		{key: "lazy.orange.elephant", want: []string{"orange", "rabbit", "all"}},
		// Both of the queue's patterns match: one copy.
		{key: "lazy.pink.rabbit", want: []string{"rabbit", "all"}},
		// # matches zero words.
		{key: "lazy", want: []string{"rabbit", "all"}},
		{key: "error", want: []string{"error", "all"}},
		{key: "a.b", want: []string{"ab", "all"}},
		// # matches several words.
		{key: "a.x.y.b", want: []string{"ab", "all"}},
		{key: "kern.disk.error", want: []string{"error", "all"}},
		{key: "kern.disk", want: []string{"exact", "all"}},
		// * matches exactly one word.
		{key: "orange", want: []string{"all"}},
		{key: "quick.orange.male.rabbit", want: []string{"all"}},
		{key: "a.b.c", want: []string{"all"}},
	})
}

func TestExchangeHeaders(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	x := declareExchange(t, ch, "headers")
	qs := declareQueues(t, ch, "all", "any", "allx", "anyx", "default", "number")
	bindQueue(t, ch, qs["all"], x, "", amqp.Table{"x-match": "all", "format": "pdf", "type": "report"})
	bindQueue(t, ch, qs["any"], x, "", amqp.Table{"x-match": "any", "format": "pdf", "type": "report"})
	bindQueue(t, ch, qs["allx"], x, "", amqp.Table{"x-match": "all-with-x", "format": "pdf", "x-tag": "t1"})
	bindQueue(t, ch, qs["anyx"], x, "", amqp.Table{"x-match": "any-with-x", "x-tag": "t1"})
	bindQueue(t, ch, qs["default"], x, "", amqp.Table{"format": "zip"})
	bindQueue(t, ch, qs["number"], x, "", amqp.Table{"x-match": "all", "n": int32(7)})
	checkRoutes(t, ch, x, qs, []routeCase{
		{headers: amqp.Table{"format": "pdf", "type": "report"}, want: []string{"all", "any"}},
		{headers: amqp.Table{"format": "pdf", "type": "log"}, want: []string{"any"}},
		{headers: amqp.Table{"type": "report"}, want: []string{"any"}},
		// x- headers count only in the -with-x modes.
		{headers: amqp.Table{"format": "pdf", "x-tag": "t1"}, want: []string{"any", "allx", "anyx"}},
		{headers: amqp.Table{"x-tag": "t1"}, want: []string{"anyx"}},
		{headers: amqp.Table{"format": "pdf", "type": "report", "x-tag": "t1"}, want: []string{"all", "any", "allx", "anyx"}},
		{headers: amqp.Table{"format": "pdf", "x-tag": "t2"}, want: []string{"any"}},
		// No x-match means all.
		{headers: amqp.Table{"format": "zip"}, want: []string{"default"}},
		{headers: amqp.Table{"n": int32(7)}, want: []string{"number"}},
		{headers: amqp.Table{"n": int32(8)}, want: nil},
		{key: "format", headers: nil, want: nil},
	})
}

func TestExchangePredeclared(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	_, ch := s.channel(t)
	for _, x := range []struct{ name, kind string }{
		{"amq.direct", "direct"},
		{"amq.fanout", "fanout"},
		{"amq.topic", "topic"},
		{"amq.headers", "headers"},
		{"amq.match", "headers"},
	} {
		if err := ch.ExchangeDeclarePassive(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("passive exchange.declare %s: %v", x.name, err)
		}
		// A full declaration with the same attributes is allowed too.
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("exchange.declare %s %s durable: %v", x.name, x.kind, err)
		}
	}
}

func TestExchangeDeclareAttributes(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	_, ch := s.channel(t)
	for _, tc := range []struct {
		name                        string
		kind                        string
		durable, autoDelete, intern bool
	}{
		{"durable", "direct", true, false, false},
		{"transient", "fanout", false, false, false},
		{"auto-delete", "topic", false, true, false},
		{"internal", "headers", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniq("x." + tc.name)
			if err := ch.ExchangeDeclare(name, tc.kind, tc.durable, tc.autoDelete, tc.intern, false, nil); err != nil {
				t.Fatalf("exchange.declare: %v", err)
			}
			// Re-declaring with the same attributes is a no-op.
			if err := ch.ExchangeDeclare(name, tc.kind, tc.durable, tc.autoDelete, tc.intern, false, nil); err != nil {
				t.Fatalf("second exchange.declare: %v", err)
			}
			if err := ch.ExchangeDeclarePassive(name, tc.kind, tc.durable, tc.autoDelete, tc.intern, false, nil); err != nil {
				t.Fatalf("passive exchange.declare: %v", err)
			}
			if err := ch.ExchangeDelete(name, false, false); err != nil {
				t.Fatalf("exchange.delete: %v", err)
			}
		})
	}
}

func TestExchangeChannelErrors(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	setup := newChannel(t, conn)
	existing := declareExchange(t, setup, "direct")
	internal := uniq("x.internal")
	if err := setup.ExchangeDeclare(internal, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	bound := declareExchange(t, setup, "fanout")
	bindQueue(t, setup, declareQueue(t, setup, ""), bound, "", nil)

	for _, tc := range []struct {
		name   string
		run    func(ch *amqp.Channel) error
		code   int
		prefix string
	}{
		{"passive declare of a missing exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive("no-such-exchange", "direct", false, false, false, false, nil)
		}, amqp.NotFound, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'"},
		{"re-declare with another type", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(existing, "fanout", false, false, false, false, nil)
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '" + existing + "'"},
		{"re-declare with another durability", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(existing, "direct", true, false, false, false, nil)
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '" + existing + "'"},
		{"declare a new amq. exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("amq.custom", "direct", false, false, false, false, nil)
		}, amqp.AccessRefused, "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'"},
		{"delete the default exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDelete("", false, false)
		}, amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{"delete if-unused of a bound exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDelete(bound, true, false)
		}, amqp.PreconditionFailed, "PRECONDITION_FAILED - exchange '" + bound + "' in vhost '/' in use"},
		{"bind to a missing exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeBind(existing, "", "no-such-exchange", false, nil)
		}, amqp.NotFound, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, conn)
			wantReply(t, tc.run(ch), tc.code, tc.prefix)
			// The channel is closed, not the connection.
			if _, err := ch.QueueDeclare("", false, true, true, false, nil); !errors.Is(err, amqp.ErrClosed) {
				t.Fatalf("channel still usable after the error: %v", err)
			}
		})
	}

	t.Run("publish to an internal exchange", func(t *testing.T) {
		ch := newChannel(t, conn)
		closed := notifyClose(ch)
		publish(t, ch, internal, "", "x")
		closedWith(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange '"+internal+"' in vhost '/'")
	})

	if conn.IsClosed() {
		t.Fatal("channel errors closed the connection")
	}
	if !exists(t, conn, "exchange", bound) {
		t.Fatal("exchange deleted although if-unused failed")
	}
}

func TestExchangeDeclareInvalidType(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, ch := s.channel(t)
	closed := notifyConnClose(conn)
	err := ch.ExchangeDeclare(uniq("x.bad"), "no-such-type", false, false, false, false, nil)
	wantReply(t, err, amqp.CommandInvalid, "COMMAND_INVALID - ")
	// 503 is a connection error.
	closedWith(t, closed, amqp.CommandInvalid, "COMMAND_INVALID - ")
	if !conn.IsClosed() {
		t.Fatal("connection still open")
	}
}

func TestExchangeToExchangeBinding(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	src := declareExchange(t, ch, "direct")
	dst := declareExchange(t, ch, "fanout")
	topic := declareExchange(t, ch, "topic")
	qs := declareQueues(t, ch, "fan", "topic")
	bindQueue(t, ch, qs["fan"], dst, "", nil)
	bindQueue(t, ch, qs["topic"], topic, "logs.*", nil)
	if err := ch.ExchangeBind(dst, "k", src, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	// A second hop, and a cycle back to the source, which must not loop.
	if err := ch.ExchangeBind(topic, "logs.#", dst, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	if err := ch.ExchangeBind(src, "#", topic, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	checkRoutes(t, ch, src, qs, []routeCase{
		{key: "k", want: []string{"fan"}},
		{key: "other", want: nil},
	})
	checkRoutes(t, ch, dst, qs, []routeCase{
		{key: "logs.app", want: []string{"fan", "topic"}},
		{key: "k", want: []string{"fan"}},
	})

	if err := ch.ExchangeUnbind(dst, "k", src, false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	checkRoutes(t, ch, src, qs, []routeCase{{key: "k", want: nil}})
	checkRoutes(t, ch, dst, qs, []routeCase{{key: "logs.app", want: []string{"fan", "topic"}}})
}

func TestExchangeAutoDelete(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	x := uniq("x.auto")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Never bound: it stays.
	if !exists(t, conn, "exchange", x) {
		t.Fatal("auto-delete exchange gone before its first binding")
	}
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, x, "a", nil)
	bindQueue(t, ch, q, x, "b", nil)
	if err := ch.QueueUnbind(q, "a", x, nil); err != nil {
		t.Fatal(err)
	}
	if !exists(t, conn, "exchange", x) {
		t.Fatal("auto-delete exchange gone while a binding is left")
	}
	if err := ch.QueueUnbind(q, "b", x, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the auto-delete exchange is deleted", func() bool { return !exists(t, conn, "exchange", x) })

	// Deleting the bound queue removes the last binding too.
	x2 := uniq("x.auto")
	if err := ch.ExchangeDeclare(x2, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bindQueue(t, ch, q, x2, "", nil)
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the auto-delete exchange is deleted with its queue", func() bool { return !exists(t, conn, "exchange", x2) })
}

func TestExchangeDeleteIfUnused(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	x := declareExchange(t, ch, "topic")
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, x, "#", nil)

	bad := newChannel(t, conn)
	wantReply(t, bad.ExchangeDelete(x, true, false), amqp.PreconditionFailed, "PRECONDITION_FAILED - exchange '"+x+"' in vhost '/' in use")

	if err := ch.QueueUnbind(q, "#", x, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(x, true, false); err != nil {
		t.Fatalf("exchange.delete if-unused of an unbound exchange: %v", err)
	}
	if exists(t, conn, "exchange", x) {
		t.Fatal("exchange still exists after exchange.delete")
	}
}
