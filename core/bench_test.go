package core

import (
	"fmt"
	"testing"
)

// setupDirect builds a vhost with a direct exchange bound to n queues, each
// with a no-ack consumer that drops what it gets.
func setupDirect(tb testing.TB, kind string, n int) (*Vhost, *Exchange, *int) {
	tb.Helper()
	v := NewBroker().AddVhost("/")
	x, err := v.DeclareExchange("bench", kind, ExchangeOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	conn := v.Open("bench", ConnInfo{})
	s := conn.NewSession()
	delivered := new(int)
	for i := 0; i < n; i++ {
		q, err := v.DeclareQueue(conn, fmt.Sprintf("q%d", i), QueueOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		if err := v.Bind(conn, q.Name, x.Name, "key", nil); err != nil {
			tb.Fatal(err)
		}
		if _, err := s.Consume(q, ConsumeOptions{NoAck: true, Deliver: func(Delivery) { *delivered++ }}); err != nil {
			tb.Fatal(err)
		}
	}
	return v, x, delivered
}

// Routing a message through a direct exchange to a consumer allocates nothing:
// the message and its body are the publisher's only allocations.
func TestPublishDirectZeroAllocs(t *testing.T) {
	v, x, delivered := setupDirect(t, KindDirect, 1)
	var r Router
	msg := &Message{Exchange: "bench", RoutingKey: "key", Body: []byte("0123456789abcdef")}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := v.PublishTo(&r, x, msg, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("publish through a direct exchange allocated %.1f times per message", allocs)
	}
	if *delivered < 1000 {
		t.Fatalf("only %d deliveries", *delivered)
	}
}

func benchPublish(b *testing.B, kind string, queues int) {
	v, x, delivered := setupDirect(b, kind, queues)
	var r Router
	msg := &Message{Exchange: "bench", RoutingKey: "key", Body: make([]byte, 16)}
	b.ReportAllocs()
	b.SetBytes(16)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.PublishTo(&r, x, msg, nil); err != nil {
			b.Fatal(err)
		}
	}
	if *delivered != b.N*queues {
		b.Fatalf("delivered %d, want %d", *delivered, b.N*queues)
	}
}

// BenchmarkPublishDeliver measures publish → route → enqueue → deliver
// through the core for one consumer.
func BenchmarkPublishDeliver(b *testing.B) { benchPublish(b, KindDirect, 1) }

// BenchmarkFanout10 delivers each message to ten queues sharing one body.
func BenchmarkFanout10(b *testing.B) { benchPublish(b, KindFanout, 10) }

// BenchmarkPublishAckParallel measures publish and manual ack with prefetch
// from parallel publishers on separate queues.
func BenchmarkPublishAckParallel(b *testing.B) {
	v := NewBroker().AddVhost("/")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		conn := v.Open("bench", ConnInfo{})
		s := conn.NewSession()
		q, err := v.DeclareQueue(conn, "", QueueOptions{})
		if err != nil {
			b.Error(err)
			return
		}
		var last uint64
		if _, err := s.Consume(q, ConsumeOptions{Deliver: func(d Delivery) { last = d.Tag }}); err != nil {
			b.Error(err)
			return
		}
		var r Router
		msg := &Message{RoutingKey: q.Name, Body: make([]byte, 16)}
		for pb.Next() {
			if _, err := v.Publish(&r, "", msg, nil); err != nil {
				b.Error(err)
				return
			}
			if err := s.Ack(last, false); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
