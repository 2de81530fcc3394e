package amqp

import (
	"errors"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

type expectState uint8

const (
	expectMethod expectState = iota
	expectHeader
	expectBody
)

type channel struct {
	id   uint16
	c    *conn
	sess *core.Session

	closing   bool // channel.close sent, waiting for close-ok
	lastQueue string

	// content assembly of the publish in progress
	expecting expectState
	pub       wire.BasicPublish
	pubX      *core.Exchange
	props     core.Properties
	body      []byte
	bodySize  uint64
	router    core.Router

	// exchange resolution cache for publishing
	cacheName string
	cacheX    *core.Exchange

	// transactions: publishes and acks wait here until tx.commit
	tx     bool
	txPubs []txPublish
	txAcks []txAck
	txTags map[uint64]bool // delivery tags acked in the open transaction

	// publisher confirms
	confirm bool
	dirty   bool // in conn.confirmDirty
	conf    confirms
}

func newChannel(c *conn, id uint16) *channel {
	ch := &channel{id: id, c: c, sess: c.core.NewSession()}
	ch.router.CountFor(c.core)
	return ch
}

// fail closes the channel with a soft error.
func (ch *channel) fail(e *amqpError) {
	ch.c.log.Debug("closing channel", "channel", ch.id, "code", e.code, "reason", e.text)
	ch.flushConfirms()
	ch.closing = true
	ch.expecting = expectMethod
	ch.body = nil
	ch.sess.Close()
	ch.c.send(ch.id, &wire.ChannelClose{ReplyCode: e.code, ReplyText: e.text, FailingClassID: e.classID, FailingMethodID: e.methodID})
}

// queueName resolves the empty name to the channel's last declared queue.
func (ch *channel) queueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", protoErr(wire.NotFound, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

type txPublish struct {
	x         *core.Exchange
	msg       *core.Message
	mandatory bool
}

type txAck struct {
	tag              uint64
	multiple, reject bool
	requeue          bool
}

// settle applies or, in a transaction, buffers an ack/nack/reject.
func (ch *channel) settle(a txAck) error {
	if ch.tx {
		// As RabbitMQ: the tag is checked now, not at commit, so a bad ack
		// fails the channel before anything of the transaction happens.
		if !(a.multiple && a.tag == 0) {
			if !ch.sess.Pending(a.tag) || ch.txTags[a.tag] {
				return protoErr(wire.PreconditionFailed, "unknown delivery tag %d", a.tag)
			}
			if ch.txTags == nil {
				ch.txTags = make(map[uint64]bool)
			}
			ch.txTags[a.tag] = true
		}
		ch.txAcks = append(ch.txAcks, a)
		return nil
	}
	return ch.applyAck(a)
}

func (ch *channel) applyAck(a txAck) error {
	if a.reject {
		return ch.sess.Nack(a.tag, a.multiple, a.requeue)
	}
	return ch.sess.Ack(a.tag, a.multiple)
}

func (ch *channel) txCommit() error {
	if !ch.tx {
		return protoErr(wire.PreconditionFailed, "channel is not transactional")
	}
	pubs, acks := ch.txPubs, ch.txAcks
	ch.txPubs, ch.txAcks, ch.txTags = nil, nil, nil
	for _, p := range pubs {
		if err := ch.route(p.x, p.msg, p.mandatory); err != nil {
			return err
		}
	}
	for _, a := range acks {
		if err := ch.applyAck(a); err != nil {
			return err
		}
	}
	if len(pubs)+len(acks) > 0 {
		// commit-ok promises that the transaction's persistent publishes
		// and acks survive a crash: wait for the fsync that covers them.
		// The reader waits (one group commit, usually a millisecond or
		// two), so nothing the client sends after tx.commit runs before
		// commit-ok goes out, on this channel or another.
		if err := ch.c.syncStore(); err != nil {
			if errors.Is(err, errConnClosed) {
				return err
			}
			// Not durable: the store refuses further writes after a failed
			// fsync, so the connection closes with 541, never commit-ok.
			ch.c.log.Error("transaction not durable", "channel", ch.id, "err", err)
			return protoErr(wire.InternalError, "transaction not durable: %v", err)
		}
	}
	ch.c.send(ch.id, &wire.TxCommitOk{})
	return nil
}

// syncStore waits until everything this connection stored or released so
// far is durable. It gives up with errConnClosed when the connection is
// closed from elsewhere (shutdown, management API).
func (c *conn) syncStore() error {
	res := make(chan error, 1)
	c.srv.Broker.Sync(func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-c.forced:
		return errConnClosed
	}
}

func (ch *channel) txRollback() error {
	if !ch.tx {
		return protoErr(wire.PreconditionFailed, "channel is not transactional")
	}
	ch.txPubs, ch.txAcks, ch.txTags = nil, nil, nil
	ch.c.send(ch.id, &wire.TxRollbackOk{})
	return nil
}
