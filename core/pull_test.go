package core

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// jobsQueue returns a vhost, a connection and its queue "jobs" holding
// messages "0" to "n-1".
func jobsQueue(t *testing.T, n int) (*Vhost, *Conn, *Queue) {
	t.Helper()
	v := NewBroker().AddVhost("/")
	conn := v.Open("worker", ConnInfo{})
	q, err := v.DeclareQueue(conn, "jobs", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r Router
	for i := 0; i < n; i++ {
		if _, err := v.Publish(&r, "", &Message{RoutingKey: "jobs", Body: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return v, conn, q
}

func TestPullerBuffersAndSettles(t *testing.T) {
	v, conn, q := jobsQueue(t, 10)
	var r Router
	s := conn.NewSession()
	p, err := s.Pull(q, PullOptions{Buffer: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The buffer holds 3; the other 7 stay ready in the queue.
	if ready, _ := q.Counts(); ready != 7 {
		t.Fatalf("%d ready in the queue with a buffer of 3, want 7", ready)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		d, err := p.Next(ctx)
		if err != nil {
			t.Fatalf("next %d: %v", i, err)
		}
		if string(d.Msg.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, d.Msg.Body)
		}
		if i%2 == 0 {
			if err := p.Ack(d); err != nil {
				t.Fatal(err)
			}
		} else if err := p.Nack(d, false); err != nil {
			t.Fatal(err)
		}
	}
	if q.Unacked() != 0 {
		t.Fatalf("%d unacked after settling all", q.Unacked())
	}
	// Nothing left: Next waits until the context ends.
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := p.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on an empty queue: %v", err)
	}
	// A message published now wakes a waiting Next.
	got := make(chan string, 1)
	go func() {
		d, err := p.Next(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		p.Ack(d)
		got <- string(d.Msg.Body)
	}()
	if _, err := v.Publish(&r, "", &Message{RoutingKey: "jobs", Body: []byte("late")}, nil); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != "late" {
		t.Fatalf("woken Next got %q", b)
	}
}

func TestPullerCloseRequeuesBuffered(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("worker", ConnInfo{})
	q, _ := v.DeclareQueue(conn, "jobs", QueueOptions{})
	var r Router
	for i := 0; i < 4; i++ {
		v.Publish(&r, "", &Message{RoutingKey: "jobs", Body: []byte(fmt.Sprint(i))}, nil)
	}
	s := conn.NewSession()
	p, err := s.Pull(q, PullOptions{Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, _ := p.Next(ctx)
	p.Close()
	if _, err := p.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// The three buffered ones are back; the taken one waits for its ack.
	if ready, _ := q.Counts(); ready != 3 || q.Unacked() != 1 {
		t.Fatalf("after Close: %d ready, %d unacked; want 3 and 1", ready, q.Unacked())
	}
	if err := p.Ack(d); err != nil {
		t.Fatal(err)
	}
	// Deleting the queue ends a puller.
	p2, _ := conn.NewSession().Pull(q, PullOptions{Buffer: 1})
	if _, err := v.DeleteQueue(conn, "jobs", false, false); err != nil {
		t.Fatal(err)
	}
	p2.Next(ctx) // the buffered message, if any
	if _, err := p2.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after the queue was deleted: %v", err)
	}
}

// NextBatch takes what is buffered, up to its limit, in order; a full
// buffer taken makes room for the queue's next deliveries; it waits for
// the first like Next.
func TestPullerNextBatch(t *testing.T) {
	_, conn, q := jobsQueue(t, 10)
	p, err := conn.NewSession().Pull(q, PullOptions{Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	var batches []int
	for len(got) < 10 {
		ds, err := p.NextBatch(ctx, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 || len(ds) > 3 {
			t.Fatalf("a batch of %d with limit 3", len(ds))
		}
		batches = append(batches, len(ds))
		for _, d := range ds {
			got = append(got, string(d.Msg.Body))
			if err := p.Ack(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, b := range got {
		if b != fmt.Sprint(i) {
			t.Fatalf("message %d is %q (batches %v)", i, b, batches)
		}
	}
	if batches[0] != 3 {
		t.Fatalf("first batch %d of a full buffer, want 3", batches[0])
	}
	if ready, _ := q.Counts(); ready != 0 || q.Unacked() != 0 {
		t.Fatalf("after all: %d ready, %d unacked", ready, q.Unacked())
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if ds, err := p.NextBatch(short, nil, 3); !errors.Is(err, context.DeadlineExceeded) || len(ds) != 0 {
		t.Fatalf("NextBatch on an empty queue: %d, %v", len(ds), err)
	}
	p.Close()
	if _, err := p.NextBatch(ctx, nil, 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("NextBatch after Close: %v", err)
	}
}
