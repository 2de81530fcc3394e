package core

import (
	"reflect"
	"slices"
	"testing"
)

// A queue declared with ReportBindings says, with each delivery, which of
// its binding keys match the message's routing key; bindings removed stop
// being reported, and queues without the option report nothing.
func TestReportBindings(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("u", ConnInfo{})
	q, err := v.DeclareQueue(conn, "subs", QueueOptions{ReportBindings: true})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := v.DeclareQueue(conn, "plain", QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a.*", "a.#", "b.c", "#.c"} {
		if err := v.Bind(conn, "subs", "amq.topic", k, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The same key from another exchange is one key; removing one of the
	// two bindings keeps it.
	if err := v.Bind(conn, "subs", "amq.direct", "b.c", nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(conn, "plain", "amq.topic", "#", nil); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	s := conn.NewSession()
	for _, qq := range []*Queue{q, plain} {
		if _, err := s.Consume(qq, ConsumeOptions{NoAck: true, Deliver: func(d Delivery) {
			b := slices.Clone(d.Bindings)
			slices.Sort(b)
			got = append(got, b)
		}}); err != nil {
			t.Fatal(err)
		}
	}
	var r Router
	publish := func(key string) [][]string {
		t.Helper()
		got = nil
		if _, err := v.Publish(&r, "amq.topic", &Message{RoutingKey: key, Body: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(key string, want ...[]string) {
		t.Helper()
		if g := publish(key); !reflect.DeepEqual(g, want) {
			t.Fatalf("publish %q: bindings reported %q, want %q", key, g, want)
		}
	}
	check("a.x", []string{"a.#", "a.*"}, nil)
	check("a", []string{"a.#"}, nil)
	check("b.c", []string{"#.c", "b.c"}, nil)
	if err := v.Unbind(conn, "subs", "amq.topic", "a.*", nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Unbind(conn, "subs", "amq.topic", "b.c", nil); err != nil {
		t.Fatal(err)
	}
	check("a.x", []string{"a.#"}, nil)
	check("b.c", []string{"#.c", "b.c"}, nil) // still bound from amq.direct
}
