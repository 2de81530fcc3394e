package core

import (
	"errors"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

func TestAdmitCountsConnectionsPerUser(t *testing.T) {
	b := NewBrokerWith(Options{MaxConnectionsPerUser: 2})
	v, _ := b.Vhost("/")
	a1, err := b.Admit("alice")
	if err != nil {
		t.Fatal(err)
	}
	c1 := v.Open("alice", ConnInfo{Admission: a1})
	a2, err := b.Admit("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit("alice"); !errors.Is(err, ErrLimitReached) || !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("third connection: err = %v, want ErrLimitReached and ErrNotAllowed", err)
	}
	if _, err := b.Admit("bob"); err != nil {
		t.Fatalf("another user is refused: %v", err)
	}
	a2.Release()
	a2.Release() // idempotent
	if got := b.UserConnections("alice"); got != 1 {
		t.Fatalf("after a release: %d connections, want 1", got)
	}
	c1.Close()
	if got := b.UserConnections("alice"); got != 0 {
		t.Fatalf("after Close: %d connections, want 0", got)
	}
	for range 2 {
		if _, err := b.Admit("alice"); err != nil {
			t.Fatalf("admission after release: %v", err)
		}
	}
}

func TestConsumerLimitPerQueue(t *testing.T) {
	b := NewBrokerWith(Options{MaxConsumersPerQueue: 1})
	v, _ := b.Vhost("/")
	adm, err := b.Admit("guest")
	if err != nil {
		t.Fatal(err)
	}
	client := v.Open("guest", ConnInfo{Admission: adm})
	q, err := client.DeclareQueue("q", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := client.NewSession()
	opts := ConsumeOptions{Deliver: func(Delivery) {}}
	first, err := s.Consume(q, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Consume(q, ConsumeOptions{Tag: "second", Deliver: opts.Deliver})
	var ce *Error
	if !errors.Is(err, ErrLimitReached) || !errors.As(err, &ce) || ce.Msg != "reached maximum (1) of consumers on queue 'q' in vhost '/'" {
		t.Fatalf("second consumer: err = %v", err)
	}
	if s.HasConsumer("second") {
		t.Fatal("refused consumer kept")
	}
	// The server's own connections are not limited.
	internal := v.Open("ums-internal", ConnInfo{})
	if _, err := internal.NewSession().Consume(q, opts); err != nil {
		t.Fatalf("internal consumer refused: %v", err)
	}
	if !s.Cancel(first.Tag) {
		t.Fatal("cancel failed")
	}
	// Still one consumer (the internal one): a client stays refused.
	if _, err := s.Consume(q, opts); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("consumer beyond the limit: err = %v", err)
	}
	internal.Close()
	if _, err := s.Consume(q, opts); err != nil {
		t.Fatalf("consumer after the others left: %v", err)
	}
}

func TestLoginFailedWaitsForTheClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	b := NewBrokerWith(Options{Clock: clk, LoginFailureDelay: time.Second})
	ch := b.LoginFailed()
	select {
	case <-ch:
		t.Fatal("answered before the delay")
	default:
	}
	clk.Advance(999 * time.Millisecond)
	select {
	case <-ch:
		t.Fatal("answered before the delay")
	default:
	}
	clk.Advance(time.Millisecond)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("not answered after the delay")
	}
	select {
	case <-NewBroker().LoginFailed():
	default:
		t.Fatal("no delay configured, yet the answer waits")
	}
}
