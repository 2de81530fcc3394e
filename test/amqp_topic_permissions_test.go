package test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/core/auth"
)

// topicUser creates user (password "pw") with full permissions on vhost "/"
// and the topic permissions, and returns a connection as that user.
func topicUser(t *testing.T, s *server, user string, topics ...auth.TopicPermission) *amqp.Connection {
	t.Helper()
	if err := s.Users.PutUser(user, "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Users.SetPermission(user, "/", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range topics {
		if err := s.Users.SetTopicPermission(user, "/", p); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp.Dial(s.urlWith(t, user, "pw", ""))
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A topic write permission filters publishes by routing key; a refusal
// closes the channel with 403 and RabbitMQ's reply text.
func TestTopicPermissionsPublish(t *testing.T) {
	s := startServer(t)
	_, admin := s.channel(t)
	q := declareQueue(t, admin, "")
	bindQueue(t, admin, q, "amq.topic", "#", nil)
	d := consume(t, admin, q, true)

	conn := topicUser(t, s, "sensor",
		auth.TopicPermission{Exchange: "amq.topic", Write: `^sensors\.`, Read: ".*"},
		auth.TopicPermission{Exchange: "amq.direct", Write: "^$", Read: "^$"})
	ch := confirmChannel(t, conn)
	publishConfirmed(t, ch, "amq.topic", "sensors.x", amqp.Publishing{Body: []byte("ok")})
	if m := recv(t, d); string(m.Body) != "ok" || m.RoutingKey != "sensors.x" {
		t.Fatalf("got %q with key %q", m.Body, m.RoutingKey)
	}
	// Topic permissions apply to topic exchanges only.
	publishConfirmed(t, ch, "amq.direct", "x", amqp.Publishing{Body: []byte("direct")})

	closed := notifyClose(ch)
	publish(t, ch, "amq.topic", "other.x", "refused")
	closedWith(t, closed, amqp.AccessRefused,
		"ACCESS_REFUSED - write access to topic 'other.x' in exchange 'amq.topic' in vhost '/' refused for user 'sensor'")
	noRecv(t, d)

	// The connection survives and a new channel may publish again.
	ch = confirmChannel(t, conn)
	publishConfirmed(t, ch, "amq.topic", "sensors.y", amqp.Publishing{Body: []byte("again")})
	if m := recv(t, d); string(m.Body) != "again" {
		t.Fatalf("got %q", m.Body)
	}
}

// A topic read permission filters queue.bind and exchange.bind from the
// topic exchange by binding key; {username} expands to the user's name.
func TestTopicPermissionsBind(t *testing.T) {
	s := startServer(t)
	conn := topicUser(t, s, "alice", auth.TopicPermission{Exchange: "amq.topic", Write: ".*", Read: `^{username}\.`})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "amq.topic", "alice.#", nil)

	closed := notifyClose(ch)
	err := ch.QueueBind(q, "other.#", "amq.topic", false, nil)
	wantReply(t, err, amqp.AccessRefused,
		"ACCESS_REFUSED - read access to topic 'other.#' in exchange 'amq.topic' in vhost '/' refused for user 'alice'")
	closedWith(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - read access to topic 'other.#'")

	// exchange.bind with the topic exchange as its source is checked too.
	ch = newChannel(t, conn)
	dst := declareExchange(t, ch, "fanout")
	if err := ch.ExchangeBind(dst, "alice.x", "amq.topic", false, nil); err != nil {
		t.Fatalf("exchange.bind alice.x: %v", err)
	}
	err = ch.ExchangeBind(dst, "bob.x", "amq.topic", false, nil)
	wantReply(t, err, amqp.AccessRefused,
		"ACCESS_REFUSED - read access to topic 'bob.x' in exchange 'amq.topic' in vhost '/' refused for user 'alice'")

	// Binding from a non-topic exchange is not checked.
	ch = newChannel(t, conn)
	bindQueue(t, ch, q, "amq.direct", "bob.x", nil)

	// The allowed binding routes.
	publishConfirmed(t, confirmChannel(t, conn), "amq.topic", "alice.news", amqp.Publishing{Body: []byte("hi")})
	if m := recv(t, consume(t, ch, q, true)); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
}

// A user without topic permissions may publish and bind anything, even while
// other users have topic permissions on the same exchange.
func TestTopicPermissionsUnaffectedUser(t *testing.T) {
	s := startServer(t)
	topicUser(t, s, "restricted", auth.TopicPermission{Exchange: "amq.topic", Write: "^$", Read: "^$"})
	conn := topicUser(t, s, "free")
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "amq.topic", "other.#", nil)
	d := consume(t, ch, q, true)
	publishConfirmed(t, ch, "amq.topic", "other.x", amqp.Publishing{Body: []byte("free")})
	if m := recv(t, d); string(m.Body) != "free" {
		t.Fatalf("got %q", m.Body)
	}
}
