package test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeaturePriorityOrder: a queue with x-max-priority delivers the
// highest priority first and equal priorities in publish order; a priority
// above the maximum counts as the maximum; a queue without the argument
// ignores priorities.
func TestFeaturePriorityOrder(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	type pm struct {
		body string
		prio uint8
	}
	cases := []struct {
		name string
		args amqp.Table
		pub  []pm
		want []string
	}{
		{
			name: "max 10",
			args: amqp.Table{"x-max-priority": int32(10)},
			pub: []pm{{"p3a", 3}, {"p7a", 7}, {"p1a", 1}, {"p9a", 9}, {"p7b", 7}, {"p5a", 5}, {"p3b", 3},
				{"p0a", 0}, {"p9b", 9}, {"p2a", 2}, {"p8a", 8}, {"p4a", 4}, {"p6a", 6}, {"p1b", 1}, {"p7c", 7}},
			want: []string{"p9a", "p9b", "p8a", "p7a", "p7b", "p7c", "p6a", "p5a", "p4a", "p3a", "p3b", "p2a", "p1a", "p1b", "p0a"},
		},
		{
			name: "above the maximum",
			args: amqp.Table{"x-max-priority": int32(5)},
			pub:  []pm{{"p1", 1}, {"p5", 5}, {"p200", 200}, {"p3", 3}, {"p6", 6}, {"p5b", 5}},
			want: []string{"p5", "p200", "p6", "p5b", "p3", "p1"},
		},
		{
			name: "no x-max-priority",
			args: nil,
			pub:  []pm{{"a", 1}, {"b", 9}, {"c", 0}, {"d", 5}},
			want: []string{"a", "b", "c", "d"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			q := featQueue(t, conn, "q.prio", tc.args)
			msgs := make([]amqp.Publishing, len(tc.pub))
			for i, p := range tc.pub {
				msgs[i] = featMsg(p.body, p.prio, "")
			}
			featPublishAll(t, confirmChannel(t, conn), q, msgs...)
			ch := newChannel(t, conn)
			featQoS(t, ch, 1)
			d := consume(t, ch, q, false)
			got := make([]amqp.Delivery, 0, len(tc.want))
			for range tc.want {
				m := recv(t, d)
				got = append(got, m)
				if err := m.Ack(false); err != nil {
					t.Fatal(err)
				}
			}
			wantBodies(t, got, tc.want...)
			// The property itself is delivered unchanged.
			for i, m := range got {
				if want := tc.pub[slices.IndexFunc(tc.pub, func(p pm) bool { return p.body == tc.want[i] })].prio; m.Priority != want {
					t.Fatalf("%s delivered with priority %d, want %d", m.Body, m.Priority, want)
				}
			}
		})
	}
}

// TestFeaturePriorityRequeue: a requeued message goes back to its place in
// its priority level, ahead of later messages of the same priority.
func TestFeaturePriorityRequeue(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.prio", amqp.Table{"x-max-priority": int32(10)})
	featPublishAll(t, confirmChannel(t, conn), q, featMsg("low", 1, ""), featMsg("high1", 8, ""), featMsg("high2", 8, ""))
	ch := newChannel(t, conn)
	m, ok, err := ch.Get(q, false)
	if err != nil || !ok || string(m.Body) != "high1" {
		t.Fatalf("basic.get: %q ok %v, %v; want high1", m.Body, ok, err)
	}
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	featWantDrain(t, ch, q, "high1", "high2", "low")
}

// featFillBacklog publishes n priority-0 messages to q with confirms,
// keeping a window of outstanding confirms; body names message i.
func featFillBacklog(tb testing.TB, ch *amqp.Channel, q string, n int, body func(i int) string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const window = 2000
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	wait := func() {
		for _, dc := range pending {
			ok, err := dc.WaitContext(ctx)
			if err != nil || !ok {
				tb.Fatalf("backlog publish confirm: ack %v, %v", ok, err)
			}
		}
		pending = pending[:0]
	}
	for i := 0; i < n; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte(body(i))})
		if err != nil {
			tb.Fatalf("backlog publish %d: %v", i, err)
		}
		pending = append(pending, dc)
		if len(pending) == window {
			wait()
		}
	}
	wait()
}

// TestFeaturePriorityOvertakesBacklog: one priority-9 message published
// after 10,000 priority-0 messages is the first a new consumer receives;
// the backlog follows in publish order.
func TestFeaturePriorityOvertakesBacklog(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.prio.backlog", amqp.Table{"x-max-priority": int32(10)})
	pub := confirmChannel(t, conn)
	const n = 10000
	featFillBacklog(t, pub, q, n, func(i int) string { return fmt.Sprintf("m%05d", i) })
	publishConfirmed(t, pub, "", q, amqp.Publishing{Body: []byte("urgent"), Priority: 9})

	ch := newChannel(t, conn)
	featQoS(t, ch, 500)
	d := consume(t, ch, q, false)
	first := recv(t, d)
	if string(first.Body) != "urgent" {
		t.Fatalf("first delivery %q (priority %d), want the priority-9 message", first.Body, first.Priority)
	}
	if err := first.Ack(false); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case m := <-d:
			if want := fmt.Sprintf("m%05d", i); string(m.Body) != want {
				t.Fatalf("delivery %d is %q, want %q", i+1, m.Body, want)
			}
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("only %d of %d backlog messages arrived", i, n)
		}
	}
}

// BenchmarkPriorityOvertakesBacklog measures how long after basic.consume
// a priority-9 message arrives when it was published behind 100,000
// priority-0 messages in an x-max-priority 10 queue; it must be the first
// delivery. Each iteration publishes one urgent message and consumes it
// on a new channel (prefetch 10), whose closing requeues what else it got,
// so the backlog stays. Only basic.consume up to the first delivery is
// timed. Run it with, for example,
//
//	go test -run '^$' -bench PriorityOvertakesBacklog -benchtime 100x ./test/
func BenchmarkPriorityOvertakesBacklog(b *testing.B) {
	var s *server
	if u := os.Getenv("UMS_TEST_AMQP_URL"); u != "" {
		s = &server{URL: u}
	} else {
		s = startServer(b)
	}
	conn := s.dial(b)
	q := featQueue(b, conn, "q.prio.bench", amqp.Table{"x-max-priority": int32(10)})
	pub := confirmChannel(b, conn)
	backlog := 100000
	if testing.Short() {
		backlog = 1000
		b.Logf("-short: a backlog of %d messages instead of 100,000", backlog)
	}
	featFillBacklog(b, pub, q, backlog, func(int) string { return "backlog" })
	if n, _ := messageCount(b, conn, q); n != backlog {
		b.Fatalf("backlog of %d messages, want %d", n, backlog)
	}

	var total time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf("urgent-%d", i)
		publishConfirmed(b, pub, "", q, amqp.Publishing{Body: []byte(body), Priority: 9})
		ch := newChannel(b, conn)
		featQoS(b, ch, 10)

		b.StartTimer()
		start := time.Now()
		d := consume(b, ch, q, false)
		m := recv(b, d)
		took := time.Since(start)
		b.StopTimer()

		if string(m.Body) != body {
			b.Fatalf("first delivery %q (priority %d), want %q", m.Body, m.Priority, body)
		}
		if err := m.Ack(false); err != nil {
			b.Fatal(err)
		}
		if err := ch.Close(); err != nil {
			b.Fatal(err)
		}
		total += took
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "p9-latency-ns")
}
