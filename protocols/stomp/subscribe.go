package stomp

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
)

// SUBSCRIBE and UNSUBSCRIBE: each subscription is a core consumer of the
// connection's one core session, on the queue its destination names.

// subscription is a client's SUBSCRIBE.
type subscription struct {
	id    string
	ack   string // frame.AckAuto, AckClient or AckClientIndividual
	tag   string // the core consumer's tag
	queue *core.Queue
	// durable: a durable topic or exchange subscription, whose queue
	// outlives the connection (UNSUBSCRIBE with durable:true deletes it).
	durable bool
	temp    bool // a /temp-queue/ reply subscription (cannot be cancelled)

	// Delivered and not yet acknowledged (client acks), in order.
	pending []uint64 // REQUIRES: conn.mu
	// gone: unsubscribed; kept while deliveries await their ACK.
	gone bool // REQUIRES: conn.mu
}

func (s *subscription) autoAck() bool { return s.ack == frame.AckAuto }

// handleSubscribe subscribes to a destination.
func (c *conn) handleSubscribe(f *frame.Frame) error {
	h := f.Header
	destHdr := h.Get(frame.Destination)
	d, err := parseDest(destHdr)
	if err != nil {
		return err
	}
	id, ok := h.Contains(frame.Id)
	if !ok {
		if c.version != "1.0" {
			return protoErr("Missing header", "SUBSCRIBE needs an id header")
		}
		id = destHdr // STOMP 1.0: the destination names the subscription
	}
	ack := frame.AckAuto
	if a, ok := h.Contains(frame.Ack); ok {
		switch a {
		case frame.AckAuto, frame.AckClient, frame.AckClientIndividual:
			ack = a
		default:
			return protoErr("Invalid header", "ack must be auto, client or client-individual, not %q", a)
		}
	}
	prefetch := 0
	if p, ok := h.Contains(hdrPrefetch); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return protoErr("Invalid header", "prefetch-count must be an integer from 0 to 65535, not %q", p)
		}
		prefetch = int(n)
	}
	var cargs core.Table
	if p, ok := h.Contains("x-priority"); ok {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return protoErr("Invalid header", "x-priority must be an integer, not %q", p)
		}
		cargs = core.Table{"x-priority": n}
	}
	c.mu.Lock()
	old := c.subs[id]
	if old != nil && !old.gone {
		c.mu.Unlock()
		return protoErr("Duplicated subscription identifier", "a subscription with id '%s' exists", id)
	}
	c.mu.Unlock()
	if old != nil {
		c.retire(old)
	}
	args, err := queueArgs(h)
	if err != nil {
		return err
	}
	durable := h.Get(hdrDurable) == "true" || h.Get(hdrPersistent) == "true"
	var q *core.Queue
	switch d.kind {
	case destQueue:
		if err := c.ensureQueue(d.name, h); err != nil {
			return err
		}
		q, err = c.cc.ReadQueue(d.name)
		durable = false
	case destAmqQueue:
		q, err = c.cc.ReadQueue(d.name)
		durable = false
	case destTopic, destExchange:
		q, err = c.bindQueue(d, destHdr, id, durable, h.Get(hdrQueueName), args)
	default:
		return protoErr("Invalid destination", "cannot subscribe to %s: reply queues are subscribed to through reply-to headers", destHdr)
	}
	if err != nil {
		return err
	}
	sub := &subscription{id: id, ack: ack, tag: "T_" + id, queue: q, durable: durable}
	if err := c.consume(sub, prefetch, h.Get(hdrExclusive) == "true", cargs); err != nil {
		return err
	}
	c.receipt(f)
	return nil
}

// bindQueue makes the queue of a topic or exchange subscription: its own
// exclusive, auto-deleted queue, or for a durable subscription a durable
// queue named after it (x-queue-name, or derived from destination and id
// as RabbitMQ does) that lasts across connections and restarts.
func (c *conn) bindQueue(d dest, destHdr, id string, durable bool, name string, args core.Table) (*core.Queue, error) {
	if _, err := c.vhost.Exchange(d.name); err != nil {
		return nil, err // before a queue is made for it
	}
	var q *core.Queue
	var err error
	if durable {
		if name == "" {
			sum := sha256.Sum256([]byte(destHdr + "\x00" + id))
			name = "stomp-subscription-" + base64.RawURLEncoding.EncodeToString(sum[:16])
		}
		q, err = c.cc.DeclareQueue(name, core.QueueOptions{Durable: true, Args: args})
	} else {
		q, err = c.cc.DeclareQueue("", core.QueueOptions{Exclusive: true, AutoDelete: true, Args: args})
	}
	if err != nil {
		return nil, err
	}
	if err := c.cc.Bind(q.Name, d.name, d.key, nil); err != nil {
		return nil, err
	}
	return q, nil
}

// consume registers sub and starts its core consumer.
func (c *conn) consume(sub *subscription, prefetch int, exclusive bool, args core.Table) error {
	c.mu.Lock()
	if c.subs == nil {
		c.subs = make(map[string]*subscription)
	}
	c.subs[sub.id] = sub
	c.mu.Unlock()
	c.cs.SetPrefetch(prefetch, false)
	_, err := c.cs.Consume(sub.queue, core.ConsumeOptions{
		Tag:       sub.tag,
		NoAck:     sub.autoAck(),
		Exclusive: exclusive,
		Args:      args,
		Deliver:   func(d core.Delivery) { c.out.Put(outItem{d: d, sub: sub}) },
		Ready:     c.out.Ready,
		Cancelled: func() { c.out.Put(outItem{sub: sub, cancelled: true}) },
	})
	if err != nil {
		c.mu.Lock()
		if c.subs[sub.id] == sub {
			delete(c.subs, sub.id)
		}
		c.mu.Unlock()
	}
	return err
}

// handleUnsubscribe ends a subscription. Its unacknowledged messages can
// still be acknowledged; a durable subscription's queue is deleted when
// the frame says durable:true, as in RabbitMQ.
func (c *conn) handleUnsubscribe(f *frame.Frame) error {
	id, ok := f.Header.Contains(frame.Id)
	if !ok {
		if c.version != "1.0" {
			return protoErr("Missing header", "UNSUBSCRIBE needs an id header")
		}
		id = f.Header.Get(frame.Destination)
	}
	c.mu.Lock()
	sub := c.subs[id]
	if sub == nil || sub.gone || sub.temp {
		c.mu.Unlock()
		return protoErr("Unknown subscription", "no subscription with id '%s'", id)
	}
	sub.gone = true
	if len(sub.pending) == 0 {
		delete(c.subs, id)
	}
	c.mu.Unlock()
	c.cs.Cancel(sub.tag)
	if sub.durable && (f.Header.Get(hdrDurable) == "true" || f.Header.Get(hdrPersistent) == "true") {
		if _, err := c.cc.DeleteQueue(sub.queue.Name, false, false); err != nil {
			return err
		}
	}
	c.receipt(f)
	return nil
}

// retire forgets an unsubscribed subscription whose id is used again: its
// unacknowledged messages go back to the queue.
func (c *conn) retire(sub *subscription) {
	c.mu.Lock()
	tags := sub.pending
	sub.pending = nil
	if c.subs[sub.id] == sub {
		delete(c.subs, sub.id)
	}
	c.mu.Unlock()
	for _, t := range tags {
		_ = c.cs.Nack(t, false, true)
	}
}

// tempQueue returns the subscription of /temp-queue/name, making its
// exclusive queue and auto-ack subscription on first use.
func (c *conn) tempQueue(name string) (*subscription, error) {
	if sub := c.temps[name]; sub != nil && !sub.queue.Deleted() {
		return sub, nil
	}
	q, err := c.cc.DeclareQueue("", core.QueueOptions{Exclusive: true, AutoDelete: true})
	if err != nil {
		return nil, err
	}
	id := prefixTempQueue + name
	sub := &subscription{id: id, ack: frame.AckAuto, tag: "T_" + id, queue: q, temp: true}
	if err := c.consume(sub, 0, false, nil); err != nil {
		return nil, err
	}
	if c.temps == nil {
		c.temps = make(map[string]*subscription)
	}
	c.temps[name] = sub
	return sub, nil
}

// consumes reports whether one of the connection's subscriptions reads q.
func (c *conn) consumes(q *core.Queue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		if s.queue == q && !s.gone {
			return true
		}
	}
	return false
}
