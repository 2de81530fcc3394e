package test

import (
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// txChannel opens a channel in transaction mode.
func txChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch := newChannel(t, conn)
	if err := ch.Tx(); err != nil {
		t.Fatalf("tx.select: %v", err)
	}
	return ch
}

// TestFeatureTxPublish: messages published in a transaction are invisible
// until tx.commit and discarded by tx.rollback.
func TestFeatureTxPublish(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.tx", nil)
	tx := txChannel(t, conn)
	publish(t, tx, "", q, "1")
	publish(t, tx, "", q, "2")
	if n, _ := messageCount(t, conn, q); n != 0 {
		t.Fatalf("%d messages visible before commit", n)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatalf("tx.commit: %v", err)
	}
	if n, _ := messageCount(t, conn, q); n != 2 {
		t.Fatalf("%d messages after commit, want 2", n)
	}
	publish(t, tx, "", q, "3")
	if err := tx.TxRollback(); err != nil {
		t.Fatalf("tx.rollback: %v", err)
	}
	// The channel stays transactional: the next commit covers only what
	// came after the rollback.
	publish(t, tx, "", q, "4")
	if err := tx.TxCommit(); err != nil {
		t.Fatalf("tx.commit: %v", err)
	}
	featWantDrain(t, newChannel(t, conn), q, "1", "2", "4")
	// A commit with nothing in it is fine.
	if err := tx.TxCommit(); err != nil {
		t.Fatalf("empty tx.commit: %v", err)
	}
}

// TestFeatureTxAcks: acknowledgements in a transaction take effect on
// commit only. After a rollback the messages stay unacknowledged until the
// channel closes, and then they are requeued.
func TestFeatureTxAcks(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	cases := []struct {
		name string
		end  func(*amqp.Channel) error
		left []string // the queue's messages after the consumer's channel closed
	}{
		{"commit", (*amqp.Channel).TxCommit, nil},
		{"rollback", (*amqp.Channel).TxRollback, []string{"a", "b"}},
		{"close without commit", func(*amqp.Channel) error { return nil }, []string{"a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := s.dial(t)
			q := featQueue(t, conn, "q.txack", nil)
			featBodies(t, confirmChannel(t, conn), q, "a", "b")
			tx := txChannel(t, conn)
			ms := recvN(t, consume(t, tx, q, false), 2)
			if err := ms[0].Ack(false); err != nil {
				t.Fatal(err)
			}
			if err := ms[1].Reject(false); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(tx); err != nil {
				t.Fatalf("ending the transaction: %v", err)
			}
			// Neither settled nor requeued while the channel is open.
			if n, _ := messageCount(t, conn, q); n != 0 {
				t.Fatalf("%d messages ready while the consumer's channel is open, want 0", n)
			}
			if err := tx.Close(); err != nil {
				t.Fatal(err)
			}
			ch := newChannel(t, conn)
			if got := featDrain(t, ch, q); !slices.Equal(got, tc.left) {
				t.Fatalf("after closing the channel the queue holds %q, want %q", got, tc.left)
			}
		})
	}
}

// TestFeatureTxConfirmExclusive: a transactional channel cannot switch to
// confirm mode and a confirm channel cannot start a transaction (406);
// tx.commit and tx.rollback need tx.select first (406).
func TestFeatureTxConfirmExclusive(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	tx := txChannel(t, conn)
	wantReply(t, tx.Confirm(false), amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")

	confirm := confirmChannel(t, conn)
	wantReply(t, confirm.Tx(), amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")

	plain := newChannel(t, conn)
	wantReply(t, plain.TxCommit(), amqp.PreconditionFailed, "PRECONDITION_FAILED - channel is not transactional")
	plain = newChannel(t, conn)
	wantReply(t, plain.TxRollback(), amqp.PreconditionFailed, "PRECONDITION_FAILED - channel is not transactional")
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
}

// TestFeatureUserIDValidated: a user-id property equal to the
// authenticated user passes; any other closes the channel with 406 and
// the message is not enqueued.
func TestFeatureUserIDValidated(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.userid", nil)
	pub := confirmChannel(t, conn)
	publishConfirmed(t, pub, "", q, amqp.Publishing{UserId: "guest", Body: []byte("ok")})
	for _, forged := range []string{"someone", "Guest", "guest "} {
		ch := newChannel(t, conn)
		closed := notifyClose(ch)
		publishMsg(t, ch, "", q, false, amqp.Publishing{UserId: forged, Body: []byte("forged")})
		e := closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - user_id property set to '"+forged+"'")
		if conn.IsClosed() {
			t.Fatalf("user-id %q closed the connection: %v", forged, e)
		}
	}
	m := get(t, newChannel(t, conn), q)
	if string(m.Body) != "ok" || m.UserId != "guest" {
		t.Fatalf("got %q with user-id %q", m.Body, m.UserId)
	}
	wantEmpty(t, newChannel(t, conn), q)
}

// TestFeatureTxBadAckAtomic: an acknowledgement with an unknown delivery
// tag inside a transaction fails the channel with 406, and nothing of the
// transaction takes effect: its publishes are not routed and its valid
// acks are not applied.
func TestFeatureTxBadAckAtomic(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	q := featQueue(t, conn, "q.txbad", nil)
	out := featQueue(t, conn, "q.txbad.out", nil)
	featBodies(t, confirmChannel(t, conn), q, "in")

	tx := txChannel(t, conn)
	closed := notifyClose(tx)
	m, ok, err := tx.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("basic.get: ok %v, %v", ok, err)
	}
	publish(t, tx, "", out, "result")
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := tx.Ack(m.DeliveryTag+100, false); err != nil {
		t.Fatal(err)
	}
	commitErr := tx.TxCommit()
	e := closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - unknown delivery tag")
	if commitErr == nil {
		t.Fatalf("tx.commit succeeded although the channel closed with %v", e)
	}
	ch := newChannel(t, conn)
	featWantDrain(t, ch, out)
	// The message taken in the failed transaction is back in its queue.
	eventually(t, "the unacked message is requeued", func() bool {
		n, _ := messageCount(t, conn, q)
		return n == 1
	})
}

// TestFeatureTxMandatoryReturn: an unroutable mandatory message published
// in a transaction is returned when the transaction commits, not before.
func TestFeatureTxMandatoryReturn(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	tx := txChannel(t, conn)
	returns := tx.NotifyReturn(make(chan amqp.Return, 1))
	publishMsg(t, tx, "", uniq("q.nowhere"), true, amqp.Publishing{Body: []byte("lost")})
	select {
	case r := <-returns:
		t.Fatalf("returned before commit: %q", r.Body)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if string(r.Body) != "lost" || r.ReplyCode != amqp.NoRoute {
			t.Fatalf("return %d of %q", r.ReplyCode, r.Body)
		}
	case <-time.After(waitFor):
		t.Fatal("unroutable mandatory message not returned after commit")
	}
}
