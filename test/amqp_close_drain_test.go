package test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCloseAfterPublishBurst: a client that closes its connection right
// after a burst of publishes (not waiting for anything) gets its close-ok
// and a clean close: Close returns nil and the close listeners see no
// error. The server must let the client close the socket first: a FIN
// right behind the close-ok makes amqp091-go's reader report "Exception
// (501) EOF" before Close is done, and closing with unread input (a
// channel.close-ok the client sent after its connection.close) makes the
// kernel answer with RST.
func TestCloseAfterPublishBurst(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	body := make([]byte, 64)
	for i := 0; i < 30; i++ {
		conn, err := amqp.Dial(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		closed := notifyConnClose(conn)
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		q := declareQueue(t, ch, "")
		bad, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1000; j++ {
			if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: body}); err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 1 {
			// The server closes this channel (404); amqp091-go answers the
			// channel.close from its reader, often after its connection.close.
			bad.PublishWithContext(context.Background(), "no-such-exchange", "", false, false, amqp.Publishing{Body: body})
		}
		if err := conn.Close(); err != nil {
			t.Fatalf("round %d: close: %v", i, err)
		}
		select {
		case err, ok := <-closed:
			if ok && err != nil {
				t.Fatalf("round %d: connection ended with %v, want a clean close", i, err)
			}
		case <-time.After(waitFor):
			t.Fatalf("round %d: close listeners not told", i)
		}
	}
}
