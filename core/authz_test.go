package core

import (
	"errors"
	"testing"

	"github.com/unifiedms/ums/core/auth"
)

// authzConn opens a connection of user on vhost "/" of a fresh broker,
// checked by users.
func authzConn(t *testing.T, users *auth.Store, user string) (*Conn, *Vhost) {
	t.Helper()
	v := NewBroker().AddVhost("/")
	return v.Open(user, ConnInfo{Authz: users}), v
}

func wantRefusal(t *testing.T, err error, msg string) {
	t.Helper()
	if !errors.Is(err, ErrAccessRefused) || err.Error() != msg {
		t.Fatalf("refusal = %v, want access refused %q", err, msg)
	}
}

func TestAllowTopic(t *testing.T) {
	users := auth.NewStore()
	users.PutUser("u", "p", nil)
	if err := users.SetTopicPermission("u", "/", auth.TopicPermission{Exchange: "amq.topic", Write: `^sensors\.`, Read: `^{username}\.`}); err != nil {
		t.Fatal(err)
	}
	if err := users.SetTopicPermission("u", "/", auth.TopicPermission{Exchange: "amq.direct", Write: "^$", Read: "^$"}); err != nil {
		t.Fatal(err)
	}
	c, v := authzConn(t, users, "u")
	topic := v.lookupExchange("amq.topic")
	if err := c.AllowTopic(auth.Write, topic, "sensors.a"); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, c.AllowTopic(auth.Write, topic, "a.b"),
		"write access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'u'")
	if err := c.allowTopicOn(auth.Read, "amq.topic", "u.#"); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, c.allowTopicOn(auth.Read, "amq.topic", "other.#"),
		"read access to topic 'other.#' in exchange 'amq.topic' in vhost '/' refused for user 'u'")
	// Only topic exchanges are checked, and a missing exchange is left to
	// the binding to report.
	if err := c.allowTopicOn(auth.Read, "amq.direct", "x"); err != nil {
		t.Fatalf("direct exchange checked: %v", err)
	}
	if err := c.allowTopicOn(auth.Read, "missing", "x"); err != nil {
		t.Fatalf("missing exchange: %v", err)
	}
}

// The publish path's topic check allocates nothing when it allows.
func TestAllowTopicZeroAllocs(t *testing.T) {
	users := auth.NewStore()
	users.PutUser("u", "p", nil)
	users.PutUser("r", "p", nil)
	c, v := authzConn(t, users, "u")
	topic := v.lookupExchange("amq.topic")
	run := func(name string) {
		t.Helper()
		n := testing.AllocsPerRun(1000, func() {
			if err := c.AllowTopic(auth.Write, topic, "sensors.a"); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per check, want 0", name, n)
		}
	}
	run("no topic permissions")
	if err := users.SetTopicPermission("r", "/", auth.TopicPermission{Exchange: "amq.topic", Write: "^$", Read: "^$"}); err != nil {
		t.Fatal(err)
	}
	run("another user's topic permissions")
	if err := users.SetTopicPermission("u", "/", auth.TopicPermission{Exchange: "amq.topic", Write: `^sensors\.`, Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	run("allowed by the user's expression")
}

// Every operation of a checked connection is refused without the
// permission RabbitMQ requires for it, and allowed with it; unchecked
// connections and internal queues are not checked.
func TestConnPermissions(t *testing.T) {
	users := auth.NewStore()
	users.PutUser("u", "p", nil)
	set := func(configure, write, read string) {
		t.Helper()
		if err := users.SetPermission("u", "/", auth.Permission{Configure: configure, Write: write, Read: read}); err != nil {
			t.Fatal(err)
		}
	}
	set(".*", ".*", ".*")
	c, v := authzConn(t, users, "u")
	if _, err := c.DeclareQueue("q", QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeclareExchange("x", KindDirect, ExchangeOptions{}); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrAccessRefused) {
			t.Fatalf("%s: %v, want access refused", what, err)
		}
	}
	set("^$", ".*", ".*")
	_, err := c.DeclareQueue("q2", QueueOptions{})
	refused("declare queue without configure", err)
	_, err = c.DeclareExchange("x2", KindDirect, ExchangeOptions{})
	refused("declare exchange without configure", err)
	_, err = c.DeleteQueue("q", false, false)
	refused("delete queue without configure", err)
	refused("delete exchange without configure", c.DeleteExchange("x", false))
	if _, err := c.DeclareQueue("", QueueOptions{}); err != nil {
		t.Fatalf("server-named queue needs no configure permission: %v", err)
	}
	set(".*", "^$", ".*")
	refused("bind without write on the queue", c.Bind("q", "x", "k", nil))
	refused("exchange bind without write on the destination", c.BindExchange("x", "amq.direct", "k", nil))
	_, err = c.PublishExchange("x")
	refused("publish without write", err)
	set(".*", ".*", "^$")
	refused("bind without read on the exchange", c.Bind("q", "x", "k", nil))
	_, err = c.Purge("q")
	refused("purge without read", err)
	_, err = c.ReadQueue("q")
	refused("consume without read", err)
	q, _ := v.Queue(c, "q")
	_, err = c.NewSession().Consume(q, ConsumeOptions{Deliver: func(Delivery) {}})
	refused("Session.Consume without read", err)
	_, _, _, err = c.NewSession().Get(q, true)
	refused("Session.Get without read", err)
	// Internal queues belong to their adapter.
	iq, err := v.DeclareQueue(nil, "internal", QueueOptions{Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.NewSession().Get(iq, true); err != nil {
		t.Fatalf("internal queue checked: %v", err)
	}
	set(".*", ".*", ".*")
	if err := c.Bind("q", "x", "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishExchange("x"); err != nil {
		t.Fatal(err)
	}
	// A connection without an Authorizer is not checked.
	set("^$", "^$", "^$")
	free := v.Open("u", ConnInfo{})
	if _, err := free.DeclareQueue("q3", QueueOptions{}); err != nil {
		t.Fatalf("unchecked connection refused: %v", err)
	}
}
