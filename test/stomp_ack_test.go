package test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// client-individual acks settle one message each; what is left is
// redelivered (redelivered:true) after the connection ends.
func TestStompAckClientIndividual(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/queue/ci", stomp.AckClientIndividual)
	for _, body := range []string{"a", "b", "c"} {
		stompSend(t, c, "/queue/ci", body)
	}
	ms := []*stomp.Message{stompRecv(t, s), stompRecv(t, s), stompRecv(t, s)}
	if ms[0].Header.Get("ack") == "" || ms[0].Header.Get("ack") != ms[0].Header.Get("message-id") {
		t.Fatalf("STOMP 1.2 ack header %q message-id %q", ms[0].Header.Get("ack"), ms[0].Header.Get("message-id"))
	}
	if err := c.Ack(ms[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	c2 := stompDial(t, b.STOMPAddr)
	s2 := stompSubscribe(t, c2, "/queue/ci", stomp.AckAuto)
	m1, m2 := stompRecv(t, s2), stompRecv(t, s2)
	if string(m1.Body)+string(m2.Body) != "ac" || m1.Header.Get("redelivered") != "true" {
		t.Fatalf("redelivered %q %q (%v)", m1.Body, m2.Body, m1.Header)
	}
	stompNone(t, s2, 100*time.Millisecond)
}

// client acks are cumulative within their subscription only.
func TestStompAckClientCumulative(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr, stomp.ConnOpt.AcceptVersion(stomp.V11))
	s := stompSubscribe(t, c, "/queue/cum", stomp.AckClient)
	other := stompSubscribe(t, c, "/queue/cum-other", stomp.AckClient)
	stompSend(t, c, "/queue/cum-other", "other")
	for _, body := range []string{"a", "b", "c"} {
		stompSend(t, c, "/queue/cum", body)
	}
	o := stompRecv(t, other)
	_, m2, _ := stompRecv(t, s), stompRecv(t, s), stompRecv(t, s)
	if err := c.Ack(m2); err != nil { // a and b
		t.Fatal(err)
	}
	stompSync(t, c)
	_ = o
	_, ch := newServer(b).channel(t)
	if q, err := ch.QueueDeclarePassive("cum", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Fatalf("cum: %+v %v", q, err)
	}
	unacked := func(name string) int {
		for _, q := range b.Core.Vhosts()[0].Queues() {
			if q.Name == name {
				return q.Unacked()
			}
		}
		return -1
	}
	if n := unacked("cum"); n != 1 {
		t.Fatalf("cum: %d unacked, want 1 (c)", n)
	}
	if n := unacked("cum-other"); n != 1 {
		t.Fatalf("cum-other: %d unacked, want 1: another subscription's ack covered it", n)
	}
}

// NACK requeues by default; requeue:false drops the message, which a
// dead-letter exchange set by x- headers then receives.
func TestStompNack(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	dead := stompSubscribe(t, c, "/queue/dead", stomp.AckAuto)
	s := stompSubscribe(t, c, "/queue/work", stomp.AckClientIndividual,
		stomp.SubscribeOpt.Header("x-dead-letter-exchange", ""), stomp.SubscribeOpt.Header("x-dead-letter-routing-key", "dead"))
	stompSend(t, c, "/queue/work", "job")
	m := stompRecv(t, s)
	if err := c.Nack(m); err != nil {
		t.Fatal(err)
	}
	m = stompRecv(t, s)
	if string(m.Body) != "job" || m.Header.Get("redelivered") != "true" {
		t.Fatalf("after NACK: %q %v", m.Body, m.Header)
	}
	// go-stomp's NACK has no requeue header: the raw client sends it.
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SUBSCRIBE\nid:w\ndestination:/queue/work\nack:client-individual\nx-dead-letter-exchange:\nx-dead-letter-routing-key:dead\n\n\x00")
	if err := c.Disconnect(); err != nil { // m goes back to the queue, to r
		t.Fatal(err)
	}
	rm := r.expect("MESSAGE")
	r.write("NACK\nid:" + rm.Header.Get("ack") + "\nrequeue:false\nreceipt:n\n\n\x00")
	r.expect("RECEIPT")
	r.write("SUBSCRIBE\nid:d\ndestination:/queue/dead\n\n\x00")
	if d := r.expect("MESSAGE"); string(d.Body) != "job" || d.Header.Get("x-death") == "" && !strings.Contains(strings.Join(headers(d), " "), "x-death") {
		t.Fatalf("dead letter %v %q", headers(d), d.Body)
	}
	_ = dead
}

// prefetch-count bounds the unacknowledged messages of a subscription.
func TestStompPrefetch(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/queue/pf", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "2"))
	for i := range 5 {
		stompSend(t, c, "/queue/pf", itoa(i))
	}
	a, bm := stompRecv(t, s), stompRecv(t, s)
	stompNone(t, s, 200*time.Millisecond)
	if err := c.Ack(a); err != nil {
		t.Fatal(err)
	}
	if m := stompRecv(t, s); string(m.Body) != "2" {
		t.Fatalf("after one ack: %q", m.Body)
	}
	stompNone(t, s, 100*time.Millisecond)
	_ = bm
}

// SEND, ACK and NACK in a transaction take effect at COMMIT, not at all
// after ABORT.
func TestStompTransactions(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/queue/tx", stomp.AckClientIndividual)
	tx := c.Begin()
	if err := tx.Send("/queue/tx", "text/plain", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Send("/queue/tx", "text/plain", []byte("two")); err != nil {
		t.Fatal(err)
	}
	stompNone(t, s, 100*time.Millisecond)
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatal(err)
	}
	m1, m2 := stompRecv(t, s), stompRecv(t, s)
	if string(m1.Body)+string(m2.Body) != "onetwo" {
		t.Fatalf("%q %q", m1.Body, m2.Body)
	}
	tx = c.Begin()
	if err := tx.Send("/queue/tx", "text/plain", []byte("aborted")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Ack(m1); err != nil {
		t.Fatal(err)
	}
	if err := tx.AbortWithReceipt(); err != nil {
		t.Fatal(err)
	}
	stompNone(t, s, 100*time.Millisecond)
	// m1's ACK was aborted: it can still be acknowledged, in a
	// transaction that commits.
	tx = c.Begin()
	if err := tx.Ack(m1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Ack(m2); err != nil {
		t.Fatal(err)
	}
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	_, ch := newServer(b).channel(t)
	if q, err := ch.QueueDeclarePassive("tx", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Fatalf("tx queue after commit: %+v %v", q, err)
	}

	// A frame in a transaction that was never begun is an ERROR.
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SEND\ndestination:/queue/tx\ntransaction:nope\n\nx\x00")
	r.expectError("Bad transaction")
}
