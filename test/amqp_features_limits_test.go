package test

import (
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureMaxLengthDropHead: at x-max-length the default overflow
// (drop-head) drops the oldest messages and dead-letters them with reason
// maxlen.
func TestFeatureMaxLengthDropHead(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.maxlen", amqp.Table{"x-max-length": int32(3), "x-dead-letter-exchange": dlx})
	pub := confirmChannel(t, conn)
	acks := featPublishAll(t, pub, q, featMsg("1", 0, ""), featMsg("2", 0, ""), featMsg("3", 0, ""), featMsg("4", 0, ""), featMsg("5", 0, ""))
	for i, ack := range acks {
		if !ack {
			t.Fatalf("publish %d nacked under drop-head", i+1)
		}
	}
	if n, _ := messageCount(t, conn, q); n != 3 {
		t.Fatalf("queue holds %d messages, want 3", n)
	}
	ch := newChannel(t, conn)
	dead := recvN(t, consume(t, ch, dlq, true), 2)
	wantBodies(t, dead, "1", "2")
	wantDeaths(t, dead[0], death{count: 1, reason: "maxlen", queue: q, exchange: "", routingKeys: []string{q}})
	wantDeathSummary(t, dead[1], [3]string{"maxlen", q, ""}, [3]string{"maxlen", q, ""})
	featWantDrain(t, ch, q, "3", "4", "5")
}

// TestFeatureMaxLengthBytes: x-max-length-bytes limits the total body size
// of the ready messages; the oldest go first.
func TestFeatureMaxLengthBytes(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	dlx, dlq := featDLQ(t, conn)
	q := featQueue(t, conn, "q.maxbytes", amqp.Table{"x-max-length-bytes": int32(10), "x-dead-letter-exchange": dlx})
	pub := confirmChannel(t, conn)
	featBodies(t, pub, q, "aaaa", "bbbb", "cccc", "dd")
	ch := newChannel(t, conn)
	// 4+4+4+2 = 14 bytes: "aaaa" goes, 10 bytes stay.
	featWantDrain(t, ch, q, "bbbb", "cccc", "dd")
	// Exactly at the limit is allowed.
	featBodies(t, pub, q, "eeeeeeeeee")
	featWantDrain(t, ch, q, "eeeeeeeeee")
	// A message larger than the limit on its own cannot stay.
	featBodies(t, pub, q, "fffffffffff")
	featWantDrain(t, ch, q)
	m := featGetWait(t, ch, dlq)
	if string(m.Body) != "aaaa" {
		t.Fatalf("first dead letter %q, want \"aaaa\"", m.Body)
	}
	wantDeaths(t, m, death{count: 1, reason: "maxlen", queue: q, exchange: "", routingKeys: []string{q}})
	if m := featGetWait(t, ch, dlq); string(m.Body) != "fffffffffff" {
		t.Fatalf("second dead letter %q, want the oversized message", m.Body)
	}
}

// TestFeatureOverflowRejectPublish: with x-overflow reject-publish a full
// queue refuses new messages: a publisher in confirm mode gets basic.nack
// and the message is not enqueued; reject-publish-dlx also dead-letters the
// refused message (reason maxlen). Once there is room again publishes are
// acked.
func TestFeatureOverflowRejectPublish(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	for _, overflow := range []string{"reject-publish", "reject-publish-dlx"} {
		t.Run(overflow, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			dlx, dlq := featDLQ(t, conn)
			q := featQueue(t, conn, "q.overflow", amqp.Table{
				"x-max-length": int32(2), "x-overflow": overflow, "x-dead-letter-exchange": dlx})
			pub := confirmChannel(t, conn)
			acks := featPublishAll(t, pub, q, featMsg("1", 0, ""), featMsg("2", 0, ""), featMsg("3", 0, ""), featMsg("4", 0, ""))
			if want := []bool{true, true, false, false}; !slices.Equal(acks, want) {
				t.Fatalf("confirms %v, want %v", acks, want)
			}
			ch := newChannel(t, conn)
			if n, _ := messageCount(t, conn, q); n != 2 {
				t.Fatalf("queue holds %d messages, want 2", n)
			}
			if overflow == "reject-publish-dlx" {
				dead := recvN(t, consume(t, ch, dlq, true), 2)
				wantBodies(t, dead, "3", "4")
				wantDeaths(t, dead[0], death{count: 1, reason: "maxlen", queue: q, exchange: "", routingKeys: []string{q}})
			} else {
				wantEmpty(t, ch, dlq)
			}
			// Make room: the next publish is accepted.
			get(t, ch, q)
			if acks := featPublishAll(t, pub, q, featMsg("5", 0, ""), featMsg("6", 0, "")); !slices.Equal(acks, []bool{true, false}) {
				t.Fatalf("confirms after making room %v, want [true false]", acks)
			}
			featWantDrain(t, ch, q, "2", "5")
		})
	}
}

// TestFeatureOverflowMandatoryNotReturned: a mandatory message refused by a
// full reject-publish queue was routed, so it is nacked but not returned.
func TestFeatureOverflowMandatoryNotReturned(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.overflow", amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	pub := confirmChannel(t, conn)
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	dc, err := pub.PublishWithDeferredConfirm("", q, true, false, amqp.Publishing{Body: []byte("full")})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Wait() {
		t.Fatal("publish to a full reject-publish queue was acked")
	}
	select {
	case r := <-returns:
		t.Fatalf("routed message returned: %d %s", r.ReplyCode, r.ReplyText)
	default:
	}
}

// TestFeatureMaxLengthCountsReadyOnly: delivered but unacknowledged
// messages do not count towards x-max-length.
func TestFeatureMaxLengthCountsReadyOnly(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.maxlen", amqp.Table{"x-max-length": int32(2)})
	pub := confirmChannel(t, conn)
	featBodies(t, pub, q, "1", "2")
	holder := newChannel(t, conn)
	held := recvN(t, consume(t, holder, q, false), 2)
	if err := holder.Cancel(held[0].ConsumerTag, false); err != nil {
		t.Fatal(err)
	}
	featBodies(t, pub, q, "3", "4")
	featWantDrain(t, newChannel(t, conn), q, "3", "4")
}
