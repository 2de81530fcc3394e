package core

import "testing"

// Routes says whether a message published to an exchange now with a key
// would go somewhere, following bindings to queues and to exchanges as
// they come and go (two bindings sharing a matcher entry count until both
// are gone).
func TestExchangeRoutes(t *testing.T) {
	v := NewBroker().AddVhost("/")
	conn := v.Open("u", ConnInfo{})
	x, err := v.DeclareExchange("events", KindTopic, ExchangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want bool) {
		t.Helper()
		if got := x.Routes("a.b"); got != !want {
			t.Fatalf("%s: Routes(a.b) = %v, want %v", when, got, !want)
		}
	}
	check("new", true)
	_, err = v.DeclareQueue(conn, "q", QueueOptions{})
	must(err)
	must(v.Bind(conn, "q", "events", "a.#", nil))
	check("bound to a queue", false)
	if x.Routes("b.a") {
		t.Fatal("Routes(b.a) with only a.# bound")
	}
	must(v.Bind(conn, "q", "events", "a.#", Table{"x": "y"})) // same key and queue: one matcher entry
	must(v.Unbind(conn, "q", "events", "a.#", nil))
	check("one of two equal bindings left", false)
	must(v.Unbind(conn, "q", "events", "a.#", Table{"x": "y"}))
	check("unbound again", true)

	_, err = v.DeclareExchange("downstream", KindFanout, ExchangeOptions{})
	must(err)
	must(v.BindExchange("downstream", "events", "#", nil))
	check("bound to an exchange", false)
	must(v.UnbindExchange("downstream", "events", "#", nil))
	check("exchange binding removed", true)

	alt, err := v.DeclareExchange("with-alt", KindDirect, ExchangeOptions{Args: Table{"alternate-exchange": "downstream"}})
	must(err)
	if !alt.Routes("k") {
		t.Fatal("an exchange with an alternate exchange does not route")
	}
	def, err := v.Exchange("")
	must(err)
	if !def.Routes("q") {
		t.Fatal("the default exchange does not route")
	}
	d, err := v.DeclareExchange("delayed", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: KindFanout}})
	must(err)
	if !d.Routes("k") {
		t.Fatal("a delayed exchange does not route: its messages wait there")
	}
}
