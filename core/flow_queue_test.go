package core

import "testing"

// A reject-publish queue with a consumer asks its publishers to wait at
// nine tenths of its limit and lets them go on at eight tenths; without a
// consumer, or with drop-head, it never asks.
func TestQueueFlowControl(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("test", ConnInfo{})
	s := conn.NewSession()
	q, err := v.DeclareQueue(conn, "slow", QueueOptions{Args: Table{"x-max-length": int64(10), "x-overflow": OverflowRejectPublish}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := v.Exchange("")
	if err != nil {
		t.Fatal(err)
	}
	var r Router
	publish := func() PublishResult {
		t.Helper()
		res, err := v.PublishTo(&r, x, &Message{RoutingKey: "slow", Body: []byte("m")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// No consumer: nobody drains the queue, so publishers are refused at
	// the limit rather than made to wait.
	for i := 0; i < 10; i++ {
		if res := publish(); res.Flow != nil {
			t.Fatalf("publish %d: flow control without a consumer", i+1)
		}
	}
	if res := publish(); res.Rejected != 1 || res.Flow != nil {
		t.Fatalf("11th publish: %+v, want rejected without flow", res)
	}
	if _, err := v.Purge(conn, "slow"); err != nil {
		t.Fatal(err)
	}

	// A consumer that acknowledges nothing and takes one message at a time.
	s.SetPrefetch(1, false)
	var tags []uint64
	if _, err := s.Consume(q, ConsumeOptions{Deliver: func(d Delivery) { tags = append(tags, d.Tag) }}); err != nil {
		t.Fatal(err)
	}
	publish() // delivered, unacknowledged: not ready
	for i := 1; i <= 8; i++ {
		if res := publish(); res.Flow != nil {
			t.Fatalf("%d ready: flow control below nine tenths of the limit", i)
		}
	}
	res := publish() // 9 ready
	if res.Flow == nil || res.Full != q {
		t.Fatalf("9 ready of 10: %+v, want flow control on the queue", res)
	}
	flow := res.Flow
	if again := publish(); again.Flow != flow || again.Queues != 1 {
		t.Fatalf("10 ready: %+v, want the same flow channel and the message queued", again)
	}
	// Draining to 8 ready (two acks, two more deliveries) lets publishers go on.
	for i := 0; i < 2; i++ {
		select {
		case <-flow:
			t.Fatalf("flow released with %d ready", 10-i)
		default:
		}
		if err := s.Ack(tags[len(tags)-1], false); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-flow:
	default:
		n, _ := q.Counts()
		t.Fatalf("flow not released with %d ready", n)
	}

	// Losing its last consumer releases waiting publishers too.
	for publish().Flow == nil {
	}
	flow = publish().Flow
	s.Close()
	select {
	case <-flow:
	default:
		t.Fatal("flow not released when the consumer went away")
	}
}

// A drop-head queue with a consumer asks its publishers to wait only with
// HoldPublishers (MQTT's QoS 0 queues); either way it drops its oldest at
// the limit, never refuses.
func TestQueueFlowControlDropHead(t *testing.T) {
	for _, hold := range []bool{false, true} {
		v := NewBroker().AddVhost("/")
		conn := v.Open("test", ConnInfo{})
		s := conn.NewSession()
		q, err := v.DeclareQueue(conn, "q0", QueueOptions{Exclusive: true, HoldPublishers: hold,
			Args: Table{"x-max-length": int64(10), "x-overflow": OverflowDropHead}})
		if err != nil {
			t.Fatal(err)
		}
		x, _ := v.Exchange("")
		var r Router
		s.SetPrefetch(1, false)
		if _, err := s.Consume(q, ConsumeOptions{Deliver: func(Delivery) {}}); err != nil {
			t.Fatal(err)
		}
		var flowAt int
		for i := 1; i <= 15; i++ {
			res, err := v.PublishTo(&r, x, &Message{RoutingKey: "q0", Body: []byte("m")}, nil)
			if err != nil || res.Rejected != 0 || res.Queues != 1 {
				t.Fatalf("hold %v, publish %d: %+v, %v; want queued", hold, i, res, err)
			}
			if res.Flow != nil && flowAt == 0 {
				flowAt = i
			}
		}
		if ready, _ := q.Counts(); ready != 10 {
			t.Fatalf("hold %v: %d ready after 14 past the consumer's one, want the limit, 10", hold, ready)
		}
		switch {
		case !hold && flowAt != 0:
			t.Fatalf("drop-head without HoldPublishers asked for flow control at publish %d", flowAt)
		case hold && flowAt != 10: // one delivered, nine ready
			t.Fatalf("HoldPublishers: flow control from publish %d, want 10 (nine ready of ten)", flowAt)
		}
	}
}
