package test

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

const replyTo = "amq.rabbitmq.reply-to"

// TestFeatureDirectReplyTo: an RPC client consumes amq.rabbitmq.reply-to
// in no-ack mode and sends requests with that reply-to; the server side
// sees a per-client address amq.rabbitmq.reply-to.… and its reply,
// published to the default exchange with that routing key, reaches the
// client's consumer.
func TestFeatureDirectReplyTo(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	srvConn, cliConn := s.dial(t), s.dial(t)
	rpc := featQueue(t, srvConn, "q.rpc", nil)

	// The server side answers every request with its body upper-cased.
	srv := newChannel(t, srvConn)
	requests := consume(t, srv, rpc, false)
	type served struct {
		replyTo string
		err     error
	}
	seen := make(chan served, 8)
	go func() {
		for req := range requests {
			err := srv.Publish("", req.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: req.CorrelationId, Body: []byte(strings.ToUpper(string(req.Body)))})
			if err == nil {
				err = req.Ack(false)
			}
			seen <- served{req.ReplyTo, err}
		}
	}()

	cli := newChannel(t, cliConn)
	replies := consume(t, cli, replyTo, true)
	var addr string
	for _, body := range []string{"ping", "pong"} {
		publishMsg(t, cli, "", rpc, false, amqp.Publishing{ReplyTo: replyTo, CorrelationId: "id-" + body, Body: []byte(body)})
		m := recv(t, replies)
		if string(m.Body) != strings.ToUpper(body) || m.CorrelationId != "id-"+body {
			t.Fatalf("reply %q with correlation id %q, want %q for id-%s", m.Body, m.CorrelationId, strings.ToUpper(body), body)
		}
		sv := <-seen
		if sv.err != nil {
			t.Fatalf("answering: %v", sv.err)
		}
		got := sv.replyTo
		if !strings.HasPrefix(got, replyTo+".") || len(got) <= len(replyTo)+1 {
			t.Fatalf("request reply-to %q, want %s.…", got, replyTo)
		}
		if addr != "" && got != addr {
			t.Fatalf("the client's reply address changed from %q to %q", addr, got)
		}
		addr = got
	}

	// A reply to an address whose consumer is gone disappears quietly.
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	pub := confirmChannel(t, srvConn)
	publishConfirmed(t, pub, "", addr, amqp.Publishing{Body: []byte("late")})
}

// TestFeatureDirectReplyToErrors: consuming amq.rabbitmq.reply-to with
// acknowledgements, and publishing with reply-to amq.rabbitmq.reply-to on
// a channel without the reply consumer, close the channel with 406.
func TestFeatureDirectReplyToErrors(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.rpc", nil)

	ch := newChannel(t, conn)
	_, err := ch.Consume(replyTo, "", false, false, false, false, nil)
	wantReply(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - reply consumer cannot acknowledge")

	ch = newChannel(t, conn)
	closed := notifyClose(ch)
	publishMsg(t, ch, "", q, false, amqp.Publishing{ReplyTo: replyTo, Body: []byte("request")})
	closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - fast reply consumer does not exist")
	wantEmpty(t, newChannel(t, conn), q)

	// The reply consumer of another channel does not count.
	other := newChannel(t, conn)
	consume(t, other, replyTo, true)
	ch = newChannel(t, conn)
	closed = notifyClose(ch)
	publishMsg(t, ch, "", q, false, amqp.Publishing{ReplyTo: replyTo, Body: []byte("request")})
	closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - fast reply consumer does not exist")
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
}
