package amqp

import (
	"sync"

	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// confirms tracks publisher confirms of a channel. Publishes are numbered
// from 1. A publish that went to the message store is confirmed only when
// its fsync is done, which the store reports from its own goroutine, in
// append order; every other publish is confirmed as soon as it is routed.
// Confirms go out in sequence-number order, so a run of acks becomes one
// basic.ack with multiple set.
type confirms struct {
	mu      sync.Mutex
	seq     uint64         // last sequence number given out
	routed  uint64         // last sequence number routed
	sent    uint64         // confirmed to the client up to here
	waiting []confirmEntry // one per publish not yet confirmed, consecutive from head
	head    int
}

type confirmState uint8

const (
	confirmWaiting confirmState = iota // in the store, not durable yet
	confirmAck                         // stored and durable
	confirmNack                        // refused or failed: needs its own basic.nack
)

type confirmEntry struct {
	seq   uint64
	state confirmState
}

// next numbers a publish. Reader goroutine only.
func (c *confirms) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.waiting = append(c.waiting, confirmEntry{seq: c.seq}) // until published says otherwise
	return c.seq
}

// published records how routing went: stored publishes wait for the
// store, rejected ones will be nacked, the rest are acked.
func (c *confirms) published(ch *channel, seq uint64, stored, rejected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.routed = seq
	e := c.find(seq)
	switch {
	case e == nil: // the store already answered
	case rejected:
		e.state = confirmNack
	case !stored:
		e.state = confirmAck
	}
}

// stored is the store's answer for seq (from the store's goroutine).
func (c *confirms) stored(ch *channel, seq uint64, err error) {
	c.mu.Lock()
	if e := c.find(seq); e != nil && e.state == confirmWaiting {
		e.state = confirmAck
		if err != nil {
			e.state = confirmNack
			ch.c.log.Error("message store failed, nacking publish", "channel", ch.id, "seq", seq, "err", err)
		}
	} else if e != nil && err != nil {
		e.state = confirmNack
	}
	sent := c.flushLocked(ch)
	c.mu.Unlock()
	if sent {
		ch.c.flushDirect()
	}
}

// find returns the entry of seq, or nil when it is no longer waiting.
// Every publish gets an entry in next, in order, and entries leave only
// from the head, so waiting[head:] holds consecutive sequence numbers and
// seq is found by its offset from the head's: O(1) however many publishes
// are outstanding. REQUIRES: c.mu.
func (c *confirms) find(seq uint64) *confirmEntry {
	if c.head == len(c.waiting) {
		return nil
	}
	first := c.waiting[c.head].seq
	if seq < first || seq-first >= uint64(len(c.waiting)-c.head) {
		return nil
	}
	return &c.waiting[c.head+int(seq-first)]
}

// flush sends what is due (reader goroutine, after a batch of frames).
func (c *confirms) flush(ch *channel) {
	c.mu.Lock()
	sent := c.flushLocked(ch)
	c.mu.Unlock()
	if sent {
		ch.c.flushDirect()
	}
}

// flushLocked queues acks and nacks in order up to the first publish still
// waiting, and reports whether it queued any; the caller writes them with
// conn.flushDirect once it let go of c.mu. REQUIRES: c.mu.
func (c *confirms) flushLocked(ch *channel) bool {
	sent := c.sent
	for {
		upTo := c.routed
		if c.head < len(c.waiting) {
			e := c.waiting[c.head]
			switch e.state {
			case confirmAck:
				c.head++
				continue
			case confirmWaiting:
				upTo = min(upTo, e.seq-1)
			case confirmNack:
				c.ackTo(ch, e.seq-1)
				ch.c.sendDeferred(ch.id, &wire.BasicNack{DeliveryTag: e.seq})
				c.sent = e.seq
				c.head++
				continue
			}
		}
		c.ackTo(ch, upTo)
		break
	}
	if c.head == len(c.waiting) {
		c.waiting, c.head = c.waiting[:0], 0
	} else if c.head > 1024 && c.head*2 > len(c.waiting) {
		n := copy(c.waiting, c.waiting[c.head:])
		c.waiting, c.head = c.waiting[:n], 0
	}
	return c.sent != sent
}

func (c *confirms) ackTo(ch *channel, upTo uint64) {
	if upTo <= c.sent {
		return
	}
	// Counted before the frame is queued: the writer may send it, and the
	// client read /metrics, before this goroutine runs on.
	ch.c.srv.Broker.CountConfirmed(upTo - c.sent)
	ch.c.sendDeferred(ch.id, &wire.BasicAck{DeliveryTag: upTo, Multiple: upTo-c.sent > 1})
	c.sent = upTo
}
