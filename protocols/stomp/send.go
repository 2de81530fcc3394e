package stomp

import (
	"errors"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// SEND: a frame becomes a core message; its receipt goes out once the
// core took it and, when it went to the message store, once it is durable.

// maxFlowWait bounds how long a publisher is not read from while a queue
// its last message went to is nearly full.
const maxFlowWait = 5 * time.Second

// handleSend publishes a SEND frame. direct is false when a COMMIT
// replays it: its transaction header is then ignored and its receipt was
// sent when it arrived.
func (c *conn) handleSend(f *frame.Frame, direct bool) error {
	if direct {
		if tx, ok := f.Header.Contains(frame.Transaction); ok {
			if err := c.addToTx(tx, f); err != nil {
				return err
			}
			c.receipt(f) // received; it takes effect at COMMIT
			return nil
		}
	}
	d, err := parseDest(f.Header.Get(frame.Destination))
	if err != nil {
		return err
	}
	if d.kind == destTempQueue {
		return protoErr("Invalid destination", "messages cannot be sent to %s destinations; they name reply queues in reply-to headers", prefixTempQueue)
	}
	exchange, key := d.publishTarget()
	msg, err := toMessage(f, exchange, key)
	if err != nil {
		return err
	}
	if d.kind == destQueue {
		if err := c.ensureQueue(d.name, f.Header); err != nil {
			return err
		}
	}
	if err := c.rewriteReplyTo(msg); err != nil {
		return err
	}
	x, err := c.exchange(exchange)
	if err != nil {
		return err
	}
	if err := c.cc.AllowTopic(auth.Write, x, key); err != nil {
		return err
	}
	if gate := c.srv.Broker.PublishGate(); gate != nil {
		// A resource alarm: stop reading from this publisher until it
		// clears, as RabbitMQ does.
		select {
		case <-gate:
		case <-c.srv.done:
			return protoErr("connection_forced", "server shutting down")
		}
	}
	receipt, wantReceipt := f.Header.Contains(frame.Receipt)
	var done func(error)
	if wantReceipt && direct {
		done = func(err error) {
			if err != nil || !c.receiptDirect(receipt) {
				c.out.Put(outItem{receipt: receipt, err: err})
			}
		}
	}
	res, err := c.vhost.PublishTo(&c.router, x, msg, done)
	if err != nil {
		return err
	}
	if res.Flow != nil && !c.consumes(res.Full) {
		c.flow = res.Flow
	}
	if res.Rejected > 0 && wantReceipt && direct {
		return protoErr("Message rejected", "a queue at its length limit refused the message (x-overflow reject-publish)")
	}
	if wantReceipt && direct && !res.Stored {
		c.writeFrame(frame.New(frame.RECEIPT, frame.ReceiptId, receipt))
	}
	return nil
}

// exchange returns the publishing exchange named name, checking write
// permission when it is first resolved (again after a re-declaration).
func (c *conn) exchange(name string) (*core.Exchange, error) {
	if x, ok := c.exch[name]; ok && !x.Deleted() {
		return x, nil
	}
	x, err := c.cc.PublishExchange(name)
	if err != nil {
		return nil, err
	}
	if c.exch == nil || len(c.exch) > 64 {
		c.exch = make(map[string]*core.Exchange) // a client sending to many exchanges: keep it small
	}
	c.exch[name] = x
	return x, nil
}

// ensureQueue declares /queue/ destination q (durable, with the frame's
// x- arguments) unless it exists.
func (c *conn) ensureQueue(name string, h *frame.Header) error {
	if q, err := c.vhost.Queue(c.cc, name); err == nil && !q.Deleted() {
		return nil
	} else if !errors.Is(err, core.ErrNotFound) && err != nil {
		return err
	}
	args, err := queueArgs(h)
	if err != nil {
		return err
	}
	_, err = c.cc.DeclareQueue(name, core.QueueOptions{Durable: true, Args: args})
	return err
}

// rewriteReplyTo turns reply-to /temp-queue/x into the connection's
// private queue for x, subscribed to as /temp-queue/x, as
// /reply-queue/<its name> (RabbitMQ's temp queues).
func (c *conn) rewriteReplyTo(msg *core.Message) error {
	name, ok := cutPrefix(msg.Props.ReplyTo, prefixTempQueue)
	if !ok {
		return nil
	}
	sub, err := c.tempQueue(name)
	if err != nil {
		return err
	}
	msg.Props.ReplyTo = prefixReplyQueue + sub.queue.Name
	return nil
}

// waitForRoom is publisher flow control: when the last SEND reached a
// nearly full queue that someone else drains, the next frames are not
// read until it has room (bounded by maxFlowWait), so TCP slows the
// publisher down instead of its messages being refused.
func (c *conn) waitForRoom() {
	flow := c.flow
	c.flow = nil
	t := time.NewTimer(maxFlowWait)
	defer t.Stop()
	select {
	case <-flow:
	case <-t.C:
	case <-c.srv.done:
	}
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
