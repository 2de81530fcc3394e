package core

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A consumer fed through a Pump gets every message in order while the core
// holds back what does not fit (Ready), and resumes when the writer drains
// (Kick); nothing is lost or duplicated, and Close stops the writer.
func TestPumpFlowControl(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("u", ConnInfo{})
	q, err := v.DeclareQueue(conn, "q", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := conn.NewSession()
	var mu sync.Mutex
	var got []string
	release := make(chan struct{})
	p := &Pump[Delivery]{Max: 4, Kick: s.Kick}
	p.Write = func(batch []Delivery) {
		<-release // a slow socket
		mu.Lock()
		for _, d := range batch {
			got = append(got, string(d.Msg.Body))
		}
		mu.Unlock()
	}
	if _, err := s.Consume(q, ConsumeOptions{NoAck: true, Ready: p.Ready, Deliver: func(d Delivery) { p.Put(d) }}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	var r Router
	for i := 0; i < n; i++ {
		if _, err := v.Publish(&r, "", &Message{RoutingKey: "q", Body: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The writer is blocked: at most Max wait in the pump, plus the batch
	// it holds; the rest stays ready in the queue.
	if ready, _ := q.Counts(); ready < n-2*4 {
		t.Fatalf("%d ready in the queue while the writer is stuck: the pump took more than its bound", ready)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d delivered after the writer resumed", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	for i, b := range got {
		if b != fmt.Sprint(i) {
			t.Fatalf("item %d is %q", i, b)
		}
	}
	p.Close()
	if p.Put(Delivery{}) {
		t.Fatal("Put after Close accepted an item")
	}
}

// Idle says no while an item waits or the writer is writing one, so a
// write made outside the pump cannot overtake it; yes once it is done.
func TestPumpIdle(t *testing.T) {
	entered, release, wrote := make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	p := &Pump[int]{}
	p.Write = func([]int) {
		entered <- struct{}{}
		<-release
		wrote <- struct{}{}
	}
	if !p.Idle() {
		t.Fatal("a new pump is not idle")
	}
	p.Put(1)
	if p.Idle() {
		t.Fatal("idle with an item put")
	}
	<-entered
	if p.Idle() {
		t.Fatal("idle while the writer writes")
	}
	close(release)
	<-wrote
	deadline := time.Now().Add(5 * time.Second)
	for !p.Idle() {
		if time.Now().After(deadline) {
			t.Fatal("not idle after the writer finished")
		}
		time.Sleep(time.Millisecond)
	}
	p.Close()
	if p.Idle() {
		t.Fatal("a closed pump is idle: a direct write would go to a closed connection")
	}
}
