package mqtt

import (
	"runtime"
	"sync"

	"github.com/unifiedms/ums/core"
)

// Deliveries to the client, first leg: core callbacks (Deliver, Ready) hand
// items to the session's outbox without blocking, and a writer goroutine
// (drain) runs while it is not empty, passing batches on to send
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

// outbox hands deliveries from core callbacks (which must not block) to a
// writer goroutine that runs only while there is something to send.
type outbox struct {
	mu      sync.Mutex
	items   []outItem     // REQUIRES: mu
	spare   []outItem     // REQUIRES: mu
	running bool          // a writer goroutine is draining; REQUIRES: mu
	idle    chan struct{} // closed when that writer exits; REQUIRES: mu
	held    bool          // Ready said no: Kick when there is room; REQUIRES: mu
	closed  bool          // REQUIRES: mu
}

// enqueue takes a delivery from the core (with core locks held) or a
// retained message. It never blocks.
func (s *session) enqueue(it outItem) {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return // a delivery stays unacked in the core and is requeued on close
	}
	o.items = append(o.items, it)
	if !o.running {
		o.running = true
		o.idle = make(chan struct{})
		go s.drain(o.idle)
	}
}

// ready tells the core whether to deliver more (with core locks held).
func (s *session) ready() bool {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) >= maxOutbox {
		o.held = true
		return false
	}
	return true
}

// drain writes queued items until there are none.
func (s *session) drain(idle chan struct{}) {
	o := &s.out
	for yielded := false; ; {
		o.mu.Lock()
		if len(o.items) == 0 && !o.closed && !yielded {
			// Under a steady flow (QoS 1: each PUBACK lets one delivery
			// through) the next item is usually a moment away; give it
			// that moment before giving up the goroutine.
			o.mu.Unlock()
			yielded = true
			runtime.Gosched()
			continue
		}
		yielded = false
		if len(o.items) == 0 || o.closed {
			o.running = false
			o.idle = nil
			o.mu.Unlock()
			close(idle)
			return
		}
		batch := o.items
		o.items = o.spare
		o.spare = nil
		kick := o.held
		o.held = false
		o.mu.Unlock()

		if kick {
			s.mu.Lock()
			cs := s.cs
			s.mu.Unlock()
			if cs != nil {
				cs.Kick() // let the core fill the next batch while this one is written
			}
		}
		s.send(batch)
		clear(batch)
		o.mu.Lock()
		if o.spare == nil {
			o.spare = batch[:0]
		}
		o.mu.Unlock()
	}
}
