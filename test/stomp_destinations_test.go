package test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/internal/testutil"
)

// /queue/q declares a durable queue q on first use (SEND or SUBSCRIBE),
// reached through the default exchange, with x- headers as arguments.
func TestStompQueueDestination(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	stompSend(t, c, "/queue/orders", "first", stomp.SendOpt.Receipt, stomp.SendOpt.Header("x-max-priority", "5"))

	conn, ch := newServer(b).channel(t)
	_ = conn
	q, err := ch.QueueDeclarePassive("orders", true, false, false, false, nil)
	if err != nil || q.Messages != 1 {
		t.Fatalf("queue orders: %+v %v", q, err)
	}
	// The arguments were those of the SEND: an equal declaration passes.
	if _, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-max-priority": int32(5)}); err != nil {
		t.Fatalf("redeclare with x-max-priority 5: %v", err)
	}
	s := stompSubscribe(t, c, "/queue/orders", stomp.AckAuto)
	m := stompRecv(t, s)
	if string(m.Body) != "first" || m.Destination != "/queue/orders" || m.Header.Get("subscription") != s.Id() ||
		m.Header.Get("message-id") == "" || m.Header.Get("redelivered") != "false" {
		t.Fatalf("message %q headers %v", m.Body, m.Header)
	}
	// Competing consumers share /queue/ destinations.
	s2 := stompSubscribe(t, stompDial(t, b.STOMPAddr), "/queue/orders", stomp.AckAuto)
	for i := range 4 {
		stompSend(t, c, "/queue/orders", "m"+itoa(i))
	}
	got := 0
	for got < 4 {
		select {
		case <-s.C:
			got++
		case <-s2.C:
			got++
		case <-time.After(waitFor):
			t.Fatalf("%d of 4 messages", got)
		}
	}
}

// /topic/k publishes to amq.topic with key k; each subscription has a
// queue of its own bound with its pattern.
func TestStompTopicDestination(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	all := stompSubscribe(t, c, "/topic/stock.#", stomp.AckAuto)
	one := stompSubscribe(t, c, "/topic/stock.ibm", stomp.AckAuto)
	other := stompSubscribe(t, stompDial(t, b.STOMPAddr), "/topic/stock.*", stomp.AckAuto)
	stompSend(t, c, "/topic/stock.ibm", "ibm", stomp.SendOpt.Receipt)
	stompSend(t, c, "/topic/stock.sap", "sap", stomp.SendOpt.Receipt)
	if got := strings.Join(stompBodies(t, all, 2), ","); got != "ibm,sap" {
		t.Fatalf("stock.#: %s", got)
	}
	if m := stompRecv(t, one); string(m.Body) != "ibm" || m.Destination != "/topic/stock.ibm" {
		t.Fatalf("stock.ibm: %q %q", m.Body, m.Destination)
	}
	if got := strings.Join(stompBodies(t, other, 2), ","); got != "ibm,sap" {
		t.Fatalf("stock.*: %s", got)
	}
	stompNone(t, one, 100*time.Millisecond)
	// An unsubscribed topic subscription's queue goes away.
	before := len(b.Core.Vhosts()[0].Queues())
	if err := one.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscription's queue is deleted", func() bool { return len(b.Core.Vhosts()[0].Queues()) == before-1 })
}

// /exchange/e/k publishes to e with key k; SUBSCRIBE binds a queue of its
// own with pattern k. A missing exchange is an ERROR.
func TestStompExchangeDestination(t *testing.T) {
	b := startStomp(t)
	_, ch := newServer(b).channel(t)
	if err := ch.ExchangeDeclare("logs", "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c := stompDial(t, b.STOMPAddr)
	errs := stompSubscribe(t, c, "/exchange/logs/error", stomp.AckAuto)
	stompSend(t, c, "/exchange/logs/info", "i", stomp.SendOpt.Receipt)
	stompSend(t, c, "/exchange/logs/error", "e", stomp.SendOpt.Receipt)
	if m := stompRecv(t, errs); string(m.Body) != "e" || m.Destination != "/exchange/logs/error" {
		t.Fatalf("%q %q", m.Body, m.Destination)
	}
	stompNone(t, errs, 100*time.Millisecond)

	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SUBSCRIBE\nid:1\ndestination:/exchange/nope/k\n\n\x00")
	if f := r.expectError("not_found"); !strings.Contains(string(f.Body), "nope") {
		t.Fatalf("body %q", f.Body)
	}
}

// /amq/queue/q is an existing queue, never declared.
func TestStompAmqQueueDestination(t *testing.T) {
	b := startStomp(t)
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SUBSCRIBE\nid:1\ndestination:/amq/queue/made-elsewhere\n\n\x00")
	r.expectError("not_found")

	_, ch := newServer(b).channel(t)
	declareQueue(t, ch, "made-elsewhere")
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/amq/queue/made-elsewhere", stomp.AckClientIndividual)
	stompSend(t, c, "/amq/queue/made-elsewhere", "hello", stomp.SendOpt.Receipt)
	m := stompRecv(t, s)
	if string(m.Body) != "hello" {
		t.Fatalf("%q", m.Body)
	}
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
	// SEND to a missing /amq/queue/ is unroutable, not declared.
	stompSend(t, c, "/amq/queue/missing", "x", stomp.SendOpt.Receipt)
	if exists(t, newServer(b).dial(t), "queue", "missing") {
		t.Fatal("/amq/queue/missing was declared")
	}
}

// A durable topic subscription (durable:true with an id) keeps its queue
// and messages across disconnects and broker restarts; UNSUBSCRIBE with
// durable:true deletes it.
func TestStompDurableTopicSubscription(t *testing.T) {
	dir := t.TempDir()
	b := startStomp(t, testutil.WithDataDir(dir))
	c := stompDial(t, b.STOMPAddr, stomp.ConnOpt.Header("client-id", "app-1"))
	s := stompSubscribe(t, c, "/topic/audit.#", stomp.AckClient, stomp.SubscribeOpt.Id("audit"),
		stomp.SubscribeOpt.Header("durable", "true"), stomp.SubscribeOpt.Header("auto-delete", "false"))
	_ = s
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	p := stompDial(t, b.STOMPAddr)
	stompSend(t, p, "/topic/audit.login", "while away", stomp.SendOpt.Receipt, stomp.SendOpt.Header("persistent", "true"))
	b.Stop()

	b = startStomp(t, testutil.WithDataDir(dir))
	c = stompDial(t, b.STOMPAddr)
	s = stompSubscribe(t, c, "/topic/audit.#", stomp.AckClient, stomp.SubscribeOpt.Id("audit"),
		stomp.SubscribeOpt.Header("durable", "true"), stomp.SubscribeOpt.Header("auto-delete", "false"))
	m := stompRecv(t, s)
	if string(m.Body) != "while away" || m.Header.Get("persistent") != "true" {
		t.Fatalf("%q %v", m.Body, m.Header)
	}
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
	queues := func() int { return len(b.Core.Vhosts()[0].Queues()) }
	n := queues()
	if err := s.Unsubscribe(stomp.SubscribeOpt.Header("durable", "true")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the durable subscription's queue is deleted", func() bool { return queues() == n-1 })
}

// reply-to /temp-queue/x makes a private queue subscribed as /temp-queue/x
// and rewrites reply-to to its /reply-queue/ name, where replies go.
func TestStompTempQueueReplyTo(t *testing.T) {
	b := startStomp(t)
	server := stompDial(t, b.STOMPAddr)
	reqs := stompSubscribe(t, server, "/queue/rpc", stomp.AckAuto)

	// go-stomp drops MESSAGE frames of subscriptions it did not make, so
	// the requester is a raw client.
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/answers\nreceipt:r1\n\nquestion\x00")
	r.expect("RECEIPT")
	req := stompRecv(t, reqs)
	replyTo := req.Header.Get("reply-to")
	if !strings.HasPrefix(replyTo, "/reply-queue/") {
		t.Fatalf("reply-to %q", replyTo)
	}
	stompSend(t, server, replyTo, "answer", stomp.SendOpt.Receipt)
	m := r.expect("MESSAGE")
	if m.Header.Get("subscription") != "/temp-queue/answers" || string(m.Body) != "answer" {
		t.Fatalf("reply %v %q", headers(m), m.Body)
	}
	// A second request reuses the same temp queue.
	r.write("SEND\ndestination:/queue/rpc\nreply-to:/temp-queue/answers\n\nagain\x00")
	if got := stompRecv(t, reqs).Header.Get("reply-to"); got != replyTo {
		t.Fatalf("reply-to %q, then %q", replyTo, got)
	}
	// Temp queues are for reply-to only.
	r.write("SEND\ndestination:/temp-queue/answers\n\nx\x00")
	r.expectError("Invalid destination")
}
