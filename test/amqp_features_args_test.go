package test

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFeatureQueueArgsUnknownAccepted: x- arguments the broker does not
// know are accepted and do not change the queue's behaviour.
func TestFeatureQueueArgsUnknownAccepted(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.args", amqp.Table{"x-made-up": "anything", "x-other-thing": int32(-7), "plain": true})
	featBodies(t, confirmChannel(t, conn), q, "a", "b")
	featWantDrain(t, newChannel(t, conn), q, "a", "b")
}

// TestFeatureQueueArgsInvalid: known arguments with a wrong type or value
// make queue.declare fail with 406, and the reply text names the argument.
// The queue is not created.
func TestFeatureQueueArgsInvalid(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	cases := []struct {
		name string
		args amqp.Table
		arg  string // the argument the reply text must name
	}{
		{"ttl string", amqp.Table{"x-message-ttl": "abc"}, "x-message-ttl"},
		{"ttl negative", amqp.Table{"x-message-ttl": int32(-1)}, "x-message-ttl"},
		{"expires zero", amqp.Table{"x-expires": int32(0)}, "x-expires"},
		{"expires string", amqp.Table{"x-expires": "1000"}, "x-expires"},
		{"max-length negative", amqp.Table{"x-max-length": int32(-1)}, "x-max-length"},
		{"max-length string", amqp.Table{"x-max-length": "10"}, "x-max-length"},
		{"max-length-bytes negative", amqp.Table{"x-max-length-bytes": int64(-1)}, "x-max-length-bytes"},
		{"overflow bogus", amqp.Table{"x-overflow": "bogus"}, "x-overflow"},
		{"overflow number", amqp.Table{"x-overflow": int32(1)}, "x-overflow"},
		{"dead-letter routing key alone", amqp.Table{"x-dead-letter-routing-key": "k"}, "x-dead-letter-routing-key"},
		{"dead-letter exchange number", amqp.Table{"x-dead-letter-exchange": int32(1)}, "x-dead-letter-exchange"},
		{"max-priority zero", amqp.Table{"x-max-priority": int32(0)}, "x-max-priority"},
		{"max-priority 256", amqp.Table{"x-max-priority": int32(256)}, "x-max-priority"},
		{"max-priority string", amqp.Table{"x-max-priority": "10"}, "x-max-priority"},
		{"max-priority negative", amqp.Table{"x-max-priority": int32(-1)}, "x-max-priority"},
		{"single-active-consumer string", amqp.Table{"x-single-active-consumer": "yes"}, "x-single-active-consumer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, conn)
			name := uniq("q.badargs")
			_, err := ch.QueueDeclare(name, false, false, false, false, tc.args)
			ae := wantReply(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - ")
			if !strings.Contains(ae.Reason, "'"+tc.arg+"'") {
				t.Fatalf("reply text %q does not name '%s'", ae.Reason, tc.arg)
			}
			if exists(t, conn, "queue", name) {
				t.Fatalf("queue %s was created with invalid arguments", name)
			}
		})
	}
	if conn.IsClosed() {
		t.Fatal("an argument error closed the connection")
	}
}

// TestFeatureQueueArgsValidEdges: the boundary values that are valid are
// accepted.
func TestFeatureQueueArgsValidEdges(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	for _, args := range []amqp.Table{
		{"x-message-ttl": int32(0)},
		{"x-max-length": int32(0)},
		{"x-max-length-bytes": int64(0)},
		{"x-max-priority": int32(1)},
		{"x-max-priority": int32(255)},
		{"x-max-priority": int8(10)},
		{"x-overflow": "drop-head"},
		{"x-dead-letter-exchange": ""},
		{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "k"},
		{"x-single-active-consumer": false},
	} {
		featQueue(t, conn, "q.okargs", args)
	}
}
