package test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestConnectionUpdateSecret: connection.update-secret (amqp091-go's
// Connection.UpdateSecret) with the user's current password is answered
// with update-secret-ok and the connection goes on; a secret that does not
// authenticate the user closes the connection with 530 NOT_ALLOWED, as
// RabbitMQ refuses one.
func TestConnectionUpdateSecret(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	conn := topicUser(t, s, "rotating")
	// The password is rotated; the open connection renews its secret.
	if err := s.Users.PutUser("rotating", "pw2", nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.UpdateSecret("pw2", "password rotation"); err != nil {
		t.Fatalf("update-secret with the new password: %v", err)
	}
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "")
	publish(t, ch, "", q, "after update-secret")
	if got := string(get(t, ch, q).Body); got != "after update-secret" {
		t.Fatalf("got %q", got)
	}
	// The old password no longer authenticates the user.
	closed := notifyConnClose(conn)
	err := conn.UpdateSecret("pw", "stale secret")
	if err == nil {
		t.Fatal("update-secret accepted the old password")
	}
	wantReply(t, err, amqp.NotAllowed, "NOT_ALLOWED - New secret was refused")
	closedWith(t, closed, amqp.NotAllowed, "NOT_ALLOWED")
	if !conn.IsClosed() {
		t.Fatal("connection still open after a refused secret")
	}
}
