package mqtt

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Acknowledgements of QoS 1 and QoS 2 PUBLISHes (PUBACK, PUBREC) are sent
// asynchronously: the read goroutine hands the PUBLISH to the core and goes
// on reading, and the acknowledgement follows once the message store
// reports the message durable. They leave in the order the PUBLISHes
// arrived [MQTT-4.6.0-2]: while any is outstanding, every acknowledgement
// of the connection goes through the same queue.

// pubAck is the acknowledgement of one QoS 1 or QoS 2 PUBLISH.
type pubAck struct {
	id      uint16
	typ     byte // packets.Puback or packets.Pubrec
	code    packets.Code
	err     error // storage failure
	ready   bool  // publish returned: code is final
	durable bool  // the message is durable (or was not stored)
	// marker: a QoS 2 message of a persistent session, durable once its
	// marker is (written after it to the same ordered log).
	marker bool
}

func (a *pubAck) complete() bool { return a.ready && a.durable }

// ackQueue holds a connection's outstanding QoS 1 acknowledgements, in
// publish order.
type ackQueue struct {
	mu      sync.Mutex
	items   []*pubAck // not yet written; REQUIRES: mu
	n       int       // queued or being written; REQUIRES: mu
	queued1 int       // PUBACKs in items (not yet being written); REQUIRES: mu
	running bool      // a writer goroutine is active; REQUIRES: mu
	// space is signalled when n drops (one waiter: the reader). It is
	// made with the first acknowledgement: most connections never
	// publish at QoS 1 or 2.
	space chan struct{} // REQUIRES: mu
}

// ackLimit is how many QoS 1 acknowledgements a connection may have
// outstanding: the receive maximum advertised in CONNACK.
func (s *session) ackLimit() int {
	if n := int(s.srv.receiveMaximum()); n > 0 {
		return n
	}
	return 65535
}

// waitAcks waits until fewer than limit acknowledgements are outstanding
// (none when limit is 1). Read goroutine: only it adds to the queue, so the
// condition holds on return.
func (s *session) waitAcks(limit int) {
	if s.pub == nil {
		return // nothing was ever queued
	}
	q := &s.pub.acks
	q.mu.Lock()
	for q.n >= limit {
		space := q.space // made by reserveAck: n > 0
		q.mu.Unlock()
		_ = s.wc.Flush()
		<-space
		q.mu.Lock()
	}
	q.mu.Unlock()
}

// reserveAck queues the acknowledgement (typ PUBACK or PUBREC) of a
// PUBLISH, waiting first while the queue is full: that is the publisher's
// flow control.
func (s *session) reserveAck(id uint16, typ byte) *pubAck {
	s.waitAcks(s.ackLimit())
	a := &pubAck{id: id, typ: typ}
	q := &s.publisher().acks
	q.mu.Lock()
	if q.space == nil {
		q.space = make(chan struct{}, 1)
	}
	q.items = append(q.items, a)
	q.n++
	if typ == packets.Puback {
		q.queued1++
	}
	q.mu.Unlock()
	return a
}

// unacknowledged counts the client's QoS 1 and 2 PUBLISHes the server has
// not finished acknowledging: QoS 1 ones whose PUBACK has not started to be
// written, and QoS 2 ones awaiting PUBREL. A PUBACK being written is not
// counted (the client may have it already), so the count never exceeds
// what the client can know to be outstanding. Read goroutine.
func (s *session) unacknowledged() int {
	if s.pub == nil {
		return len(s.inQoS2)
	}
	q := &s.pub.acks
	q.mu.Lock()
	n := q.queued1
	q.mu.Unlock()
	return n + len(s.inQoS2)
}

// finishAck records the outcome of publishing a's message. It returns
// false when a was the only outstanding acknowledgement and the message was
// not stored: a is dropped and the caller acknowledges at once.
func (s *session) finishAck(a *pubAck, code packets.Code, stored bool) bool {
	q := &s.pub.acks
	q.mu.Lock()
	defer q.mu.Unlock()
	a.code, a.ready = code, true
	if !stored && q.n == 1 {
		q.items = q.items[:0]
		q.n = 0
		q.queued1 = 0
		return false
	}
	if !stored {
		a.durable = true
	}
	s.kickAcksLocked()
	return true
}

// ackDurable is the message store's done callback for a's message (or its
// marker).
func (s *session) ackDurable(a *pubAck, err error) {
	q := &s.pub.acks
	q.mu.Lock()
	a.err, a.durable = err, true
	s.kickAcksLocked()
	q.mu.Unlock()
}

// REQUIRES: s.pub.acks.mu.
func (s *session) kickAcksLocked() {
	q := &s.pub.acks
	if q.running || len(q.items) == 0 || !q.items[0].complete() {
		return
	}
	q.running = true
	go s.writeAcks()
}

// writeAcks writes the complete acknowledgements at the head of the queue
// until there are none.
func (s *session) writeAcks() {
	q := &s.pub.acks
	var batch []*pubAck
	for {
		q.mu.Lock()
		k := 0
		for k < len(q.items) && q.items[k].complete() {
			k++
		}
		if k == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch = append(batch[:0], q.items[:k]...)
		for _, a := range batch {
			if a.typ == packets.Puback {
				q.queued1--
			}
		}
		rest := copy(q.items, q.items[k:])
		clear(q.items[rest:])
		q.items = q.items[:rest]
		q.mu.Unlock()

		for _, a := range batch {
			s.writeAck(a)
		}
		_ = s.wc.Flush()
		clear(batch)

		q.mu.Lock()
		q.n -= k
		space := q.space
		q.mu.Unlock()
		select {
		case space <- struct{}{}:
		default:
		}
	}
}

// writeAck sends a PUBACK or PUBREC; a refusal gets a reason code (MQTT 5)
// or no acknowledgement (MQTT 3, whose connection is closed).
func (s *session) writeAck(a *pubAck) {
	code := a.code
	if a.err != nil {
		s.logger().Error("storing a message failed", "packet_id", a.id, "err", a.err)
		code = packets.ErrUnspecifiedError
	}
	if code != packets.CodeSuccess && s.cl.version() != 5 {
		s.logger().Debug("PUBACK withheld", "packet_id", a.id, "reason", code.Code)
		return
	}
	ack := newAck(a.typ, a.id, code)
	if code.Code >= packets.ErrUnspecifiedError.Code {
		ack.Properties.ReasonString = code.Reason
	}
	_ = s.cl.write(ack)
}
