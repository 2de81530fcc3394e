package core

import "testing"

// HasQueue finds the queues Queue finds, and no other.
func TestHasQueue(t *testing.T) {
	v := NewBroker().AddVhost("/")
	if v.HasQueue("q") {
		t.Fatal("HasQueue finds a queue never declared")
	}
	if _, err := v.DeclareQueue(nil, "q", QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if !v.HasQueue("q") {
		t.Fatal("HasQueue misses a declared queue")
	}
}
