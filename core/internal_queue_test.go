package core

import (
	"errors"
	"maps"
	"sync"
	"testing"
)

// mapMeta is a MetaStore in a map.
type mapMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapMeta) Put(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *mapMeta) Delete(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *mapMeta) All() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// An internal queue cannot be found, listed, purged, deleted, bound or
// published to by name; its owner reaches it through InternalQueue,
// PublishInternal and DeleteInternalQueue, and it comes back internal
// after a restart.
func TestInternalQueue(t *testing.T) {
	meta := &mapMeta{m: map[string][]byte{}}
	b := NewBrokerWith(Options{Meta: meta})
	v, _ := b.Vhost("/")
	conn := v.Open("test", ConnInfo{})
	q, err := v.DeclareQueue(conn, "state", QueueOptions{Durable: true, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.PublishInternal(q, &Message{Body: []byte("m")}, nil); err != nil {
		t.Fatal(err)
	}
	hidden := func(v *Vhost) {
		t.Helper()
		if v.HasQueue("state") {
			t.Fatal("HasQueue finds an internal queue")
		}
		if _, err := v.Queue(nil, "state"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Queue: %v, want not found", err)
		}
		if _, err := v.Purge(nil, "state"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Purge: %v, want not found", err)
		}
		if err := v.Bind(nil, "state", "amq.direct", "k", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Bind: %v, want not found", err)
		}
		if _, err := v.DeclareQueue(nil, "state", QueueOptions{Durable: true}); !errors.Is(err, ErrAccessRefused) {
			t.Fatalf("DeclareQueue of the name: %v, want access refused", err)
		}
		if n, err := v.DeleteQueue(nil, "state", false, false); err != nil || n != 0 {
			t.Fatalf("DeleteQueue: %d %v", n, err)
		}
		var r Router
		if res, err := v.Publish(&r, "", &Message{RoutingKey: "state", Body: []byte("injected")}, nil); err != nil || res.Queues != 0 {
			t.Fatalf("default exchange routed to the internal queue: %+v %v", res, err)
		}
		for _, q := range v.Queues() {
			if q.Name == "state" {
				t.Fatal("internal queue listed")
			}
		}
		q, err := v.InternalQueue("state")
		if err != nil || !q.Internal || q.Deleted() {
			t.Fatalf("InternalQueue: %v %v", q, err)
		}
		if ready, _ := q.Counts(); ready != 1 {
			t.Fatalf("%d messages, want the 1 published internally", ready)
		}
	}
	hidden(v)

	// After a restart (definitions only: the message is not stored here).
	b2 := NewBrokerWith(Options{Meta: meta})
	if _, err := b2.Recover(nil); err != nil {
		t.Fatal(err)
	}
	v2, _ := b2.Vhost("/")
	q2, err := v2.InternalQueue("state")
	if err != nil || !q2.Internal {
		t.Fatalf("after restart: %v %v, want the internal queue", q2, err)
	}
	if _, err := v2.Queue(nil, "state"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after restart, Queue: %v, want not found", err)
	}

	if _, err := v.DeleteInternalQueue("state"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.InternalQueue("state"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DeleteInternalQueue: %v", err)
	}
	if len(meta.All()) != 0 {
		t.Fatalf("definitions left: %v", meta.All())
	}
}

// Bindings lists no binding of an internal queue, not even the default
// exchange's implicit one.
func TestInternalQueueBindingsHidden(t *testing.T) {
	v := NewBroker().AddVhost("/")
	if _, err := v.DeclareQueue(nil, "secret", QueueOptions{Internal: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareQueue(nil, "visible", QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range v.Bindings() {
		if b.Destination == "secret" {
			t.Fatalf("binding of an internal queue listed: %+v", b)
		}
	}
	if n := len(v.Bindings()); n != 1 {
		t.Fatalf("%d bindings listed, want the visible queue's default one", n)
	}
}
