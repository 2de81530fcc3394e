package core

import (
	"sync/atomic"
	"testing"
	"time"
)

// flushProbe is a consumer whose Flush checks that it runs after the
// deliveries it follows and without core locks: it calls back into the
// core, which would deadlock under the queue's or the session's lock.
type flushProbe struct {
	t         *testing.T
	q         *Queue
	delivered atomic.Int64
	flushed   atomic.Int64
	seen      atomic.Int64 // deliveries made when Flush last ran
}

func (p *flushProbe) deliver(Delivery) { p.delivered.Add(1) }

func (p *flushProbe) flush() {
	if p.q != nil {
		p.q.Counts() // takes q.mu
	}
	p.seen.Store(p.delivered.Load())
	p.flushed.Add(1)
}

func withTimeout(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return: Flush ran under a core lock", what)
	}
}

// TestConsumeFlush: a consumer's Flush runs once after each run of
// deliveries, on the delivering goroutine, after the deliveries and
// without locks; for queued messages picked up by a new consumer as for
// messages published to a consumer waiting, and for direct reply-to.
func TestConsumeFlush(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("flush", ConnInfo{})
	q, err := v.DeclareQueue(conn, "q", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r Router
	r.conn.Store(conn)
	for range 5 {
		if _, err := v.Publish(&r, "", &Message{RoutingKey: "q", Body: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := &flushProbe{t: t, q: q}
	s := conn.NewSession()
	withTimeout(t, "Consume", func() {
		if _, err := s.Consume(q, ConsumeOptions{NoAck: true, Deliver: p.deliver, Flush: p.flush}); err != nil {
			t.Error(err)
		}
	})
	if p.delivered.Load() != 5 || p.flushed.Load() != 1 || p.seen.Load() != 5 {
		t.Fatalf("5 queued messages: %d delivered, %d flushes seeing %d; want 5, one flush after all 5",
			p.delivered.Load(), p.flushed.Load(), p.seen.Load())
	}
	for i := range 3 {
		withTimeout(t, "Publish", func() {
			if _, err := v.Publish(&r, "", &Message{RoutingKey: "q", Body: []byte("y")}, nil); err != nil {
				t.Error(err)
			}
		})
		if want := int64(6 + i); p.delivered.Load() != want || p.seen.Load() != want || p.flushed.Load() != int64(2+i) {
			t.Fatalf("after publish %d: %d delivered, %d flushes seeing %d", i, p.delivered.Load(), p.flushed.Load(), p.seen.Load())
		}
	}

	// Direct reply-to.
	rp := &flushProbe{t: t}
	rs := conn.NewSession()
	if _, err := rs.ConsumeReplyTo(ConsumeOptions{NoAck: true, Deliver: rp.deliver, Flush: rp.flush}); err != nil {
		t.Fatal(err)
	}
	props := Properties{ReplyTo: ReplyToQueue}
	if err := rs.ResolveReplyTo(&props); err != nil {
		t.Fatal(err)
	}
	withTimeout(t, "Publish to a reply address", func() {
		if _, err := v.Publish(&r, "", &Message{RoutingKey: props.ReplyTo, Body: []byte("reply")}, nil); err != nil {
			t.Error(err)
		}
	})
	if rp.delivered.Load() != 1 || rp.flushed.Load() != 1 || rp.seen.Load() != 1 {
		t.Fatalf("reply: %d delivered, %d flushes seeing %d; want one of each", rp.delivered.Load(), rp.flushed.Load(), rp.seen.Load())
	}
}

// TestConsumeFlushOncePerConsumer: a run of deliveries that alternates
// between two consumers flushes each of them once, not once per delivery.
func TestConsumeFlushOncePerConsumer(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("flush", ConnInfo{})
	q, err := v.DeclareQueue(conn, "q", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool // both consumers hold deliveries back until set
	probes := []*flushProbe{{t: t}, {t: t}}
	var sess *Session
	for _, p := range probes {
		sess = conn.NewSession()
		if _, err := sess.Consume(q, ConsumeOptions{NoAck: true, Deliver: p.deliver, Flush: p.flush, Ready: ready.Load}); err != nil {
			t.Fatal(err)
		}
	}
	var r Router
	for range 6 {
		if _, err := v.Publish(&r, "", &Message{RoutingKey: "q", Body: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ready.Store(true)
	sess.Kick() // one dispatch run hands the 6 out round-robin
	for i, p := range probes {
		if p.delivered.Load() != 3 || p.flushed.Load() != 1 || p.seen.Load() != 3 {
			t.Fatalf("consumer %d: %d delivered, %d flushes seeing %d; want 3 and one flush after them",
				i, p.delivered.Load(), p.flushed.Load(), p.seen.Load())
		}
	}
}
