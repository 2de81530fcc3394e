package amqp

import (
	"testing"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// topicChannel returns a channel of user on vhost "/" of a fresh core, for
// calling the permission helpers without a socket.
func topicChannel(t *testing.T, users *auth.Store, user string) (*channel, *core.Vhost) {
	t.Helper()
	v := core.NewBroker().AddVhost("/")
	return &channel{c: &conn{srv: &Server{Users: users}, user: user, vhost: v}}, v
}

func exchange(t *testing.T, v *core.Vhost, name string) *core.Exchange {
	t.Helper()
	x, err := v.Exchange(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestNeedTopic(t *testing.T) {
	users := auth.NewStore()
	users.PutUser("u", "p", nil)
	if err := users.SetTopicPermission("u", "/", auth.TopicPermission{Exchange: "amq.topic", Write: `^sensors\.`, Read: `^{username}\.`}); err != nil {
		t.Fatal(err)
	}
	if err := users.SetTopicPermission("u", "/", auth.TopicPermission{Exchange: "amq.direct", Write: "^$", Read: "^$"}); err != nil {
		t.Fatal(err)
	}
	ch, v := topicChannel(t, users, "u")
	topic := exchange(t, v, "amq.topic")
	if err := ch.needTopic(auth.Write, topic, "sensors.a"); err != nil {
		t.Fatal(err)
	}
	err := ch.needTopic(auth.Write, topic, "a.b")
	want := "ACCESS_REFUSED - write access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
	if ae, ok := err.(*amqpError); !ok || ae.code != wire.AccessRefused || ae.text != want {
		t.Fatalf("refusal = %#v, want 403 %q", err, want)
	}
	if err := ch.needTopicOn(auth.Read, "amq.topic", "u.#"); err != nil {
		t.Fatal(err)
	}
	err = ch.needTopicOn(auth.Read, "amq.topic", "other.#")
	want = "ACCESS_REFUSED - read access to topic 'other.#' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
	if ae, ok := err.(*amqpError); !ok || ae.code != wire.AccessRefused || ae.text != want {
		t.Fatalf("refusal = %#v, want 403 %q", err, want)
	}
	// Only topic exchanges are checked, and a missing exchange is left to
	// the binding to report.
	if err := ch.needTopicOn(auth.Read, "amq.direct", "x"); err != nil {
		t.Fatalf("direct exchange checked: %v", err)
	}
	if err := ch.needTopicOn(auth.Read, "missing", "x"); err != nil {
		t.Fatalf("missing exchange: %v", err)
	}
}

// The publish path's topic check allocates nothing when it allows.
func TestNeedTopicZeroAllocs(t *testing.T) {
	users := auth.NewStore()
	users.PutUser("u", "p", nil)
	users.PutUser("r", "p", nil)
	ch, v := topicChannel(t, users, "u")
	topic := exchange(t, v, "amq.topic")
	run := func(name string) {
		t.Helper()
		n := testing.AllocsPerRun(1000, func() {
			if err := ch.needTopic(auth.Write, topic, "sensors.a"); err != nil {
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
