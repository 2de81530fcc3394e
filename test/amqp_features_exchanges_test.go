package test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureAlternateExchange: messages an exchange cannot route go to its
// alternate-exchange; a mandatory message the alternate exchange routes is
// not returned; one that the alternate cannot route either is returned.
func TestFeatureAlternateExchange(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ae := featExchange(t, conn, "fanout", nil)
	x := featExchange(t, conn, "direct", amqp.Table{"alternate-exchange": ae})
	routed := featQueue(t, conn, "q.routed", nil)
	unrouted := featQueue(t, conn, "q.unrouted", nil)
	ch := newChannel(t, conn)
	bindQueue(t, ch, routed, x, "known", nil)
	bindQueue(t, ch, unrouted, ae, "", nil)

	pub := confirmChannel(t, conn)
	returns := pub.NotifyReturn(make(chan amqp.Return, 4))
	publishConfirmed(t, pub, x, "known", amqp.Publishing{Body: []byte("a")})
	unknown := amqp.Publishing{Body: []byte("b")}
	dc, err := pub.PublishWithDeferredConfirm(x, "unknown", true, false, unknown)
	if err != nil {
		t.Fatal(err)
	}
	if !dc.Wait() {
		t.Fatal("publish routed by the alternate exchange was nacked")
	}
	featWantDrain(t, ch, routed, "a")
	m := get(t, ch, unrouted)
	if string(m.Body) != "b" || m.Exchange != x || m.RoutingKey != "unknown" {
		t.Fatalf("alternate exchange delivered %q from %q with %q; want b from %q with \"unknown\"", m.Body, m.Exchange, m.RoutingKey, x)
	}
	select {
	case r := <-returns:
		t.Fatalf("message routed by the alternate exchange was returned: %d %s", r.ReplyCode, r.ReplyText)
	case <-time.After(100 * time.Millisecond):
	}

	// An alternate exchange with nowhere to go: the message comes back.
	empty := featExchange(t, conn, "fanout", nil)
	x2 := featExchange(t, conn, "direct", amqp.Table{"alternate-exchange": empty})
	publishMsg(t, pub, x2, "nowhere", true, amqp.Publishing{Body: []byte("c")})
	select {
	case r := <-returns:
		if string(r.Body) != "c" || r.ReplyCode != amqp.NoRoute || r.Exchange != x2 || r.RoutingKey != "nowhere" {
			t.Fatalf("return %d %s of %q from %q with %q", r.ReplyCode, r.ReplyText, r.Body, r.Exchange, r.RoutingKey)
		}
	case <-time.After(waitFor):
		t.Fatal("unroutable mandatory message not returned")
	}
}

// TestFeatureInternalExchange: an internal exchange refuses direct
// publishes with 403 but routes what reaches it through an
// exchange-to-exchange binding.
func TestFeatureInternalExchange(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	internal := uniq("x.internal")
	if err := ch.ExchangeDeclare(internal, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := conn.Channel(); err == nil {
			c.ExchangeDelete(internal, false, false)
		}
	})
	front := featExchange(t, conn, "direct", nil)
	q := featQueue(t, conn, "q.internal", nil)
	bindQueue(t, ch, q, internal, "", nil)
	if err := ch.ExchangeBind(internal, "in", front, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}
	pub := confirmChannel(t, conn)
	publishConfirmed(t, pub, front, "in", amqp.Publishing{Body: []byte("via binding")})
	featWantDrain(t, ch, q, "via binding")

	closed := notifyClose(pub)
	publishMsg(t, pub, internal, "", false, amqp.Publishing{Body: []byte("direct")})
	closedWith(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange")
	featWantDrain(t, newChannel(t, conn), q)
}

// TestFeatureAutoDeleteExchange: an auto-delete exchange goes away when its
// last binding goes, whether the binding is removed by unbind, by the
// deletion of the bound queue or by an exchange unbind.
func TestFeatureAutoDeleteExchange(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	declareAuto := func() string {
		name := uniq("x.autodelete")
		if err := ch.ExchangeDeclare(name, "direct", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		return name
	}

	t.Run("unbind", func(t *testing.T) {
		x := declareAuto()
		q := featQueue(t, conn, "q.ad", nil)
		bindQueue(t, ch, q, x, "a", nil)
		bindQueue(t, ch, q, x, "b", nil)
		if err := ch.QueueUnbind(q, "a", x, nil); err != nil {
			t.Fatal(err)
		}
		if !exists(t, conn, "exchange", x) {
			t.Fatal("deleted while a binding is left")
		}
		if err := ch.QueueUnbind(q, "b", x, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the exchange is deleted", func() bool { return !exists(t, conn, "exchange", x) })
	})
	t.Run("queue deleted", func(t *testing.T) {
		x := declareAuto()
		q := featQueue(t, conn, "q.ad", nil)
		bindQueue(t, ch, q, x, "a", nil)
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the exchange is deleted", func() bool { return !exists(t, conn, "exchange", x) })
	})
	t.Run("exchange unbind", func(t *testing.T) {
		x := declareAuto()
		dst := featExchange(t, conn, "fanout", nil)
		if err := ch.ExchangeBind(dst, "k", x, false, nil); err != nil {
			t.Fatal(err)
		}
		if !exists(t, conn, "exchange", x) {
			t.Fatal("deleted while bound")
		}
		if err := ch.ExchangeUnbind(dst, "k", x, false, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the exchange is deleted", func() bool { return !exists(t, conn, "exchange", x) })
		if !exists(t, conn, "exchange", dst) {
			t.Fatal("the destination exchange went too")
		}
	})
}
