package mqtt

import (
	"github.com/unifiedms/ums/core"
)

// Deliveries to the client, first leg: core callbacks (Deliver, Ready) hand
// items to the session's core.Pump without blocking, and its writer
// goroutine runs while it is not empty, passing batches on to send
// (deliver.go).

// maxOutbox is how many deliveries may wait for the writer before the
// session tells the core it is not ready (core.ConsumeOptions.Ready).
const maxOutbox = 512

// source tells which consumer a delivery came from.
type source uint8

const (
	fromQoS0 source = iota
	fromQoS1
	fromShared
	fromRetained
)

// outItem is something to send to the client: a core delivery or a
// retained message.
type outItem struct {
	d     core.Delivery
	from  source
	noAck bool
	sub   *subscription // shared or retained: the subscription it is for
	ret   *retainedMsg
}

// initPump sets up the session's delivery pump (core.Pump): deliveries and
// retained messages wait there for a writer goroutine that runs only while
// there is something to send.
func (s *session) initPump() {
	s.out.Max = maxOutbox
	s.out.Write = s.send
	s.out.Kick = func() {
		s.mu.Lock()
		cs := s.cs
		s.mu.Unlock()
		if cs != nil {
			cs.Kick()
		}
	}
}

// enqueue takes a delivery from the core (with core locks held) or a
// retained message. It never blocks; after the session closed it drops the
// item (a delivery stays unacked in the core and is requeued on close).
func (s *session) enqueue(it outItem) { s.out.Put(it) }

// ready tells the core whether to deliver more (with core locks held).
func (s *session) ready() bool { return s.out.Ready() }
