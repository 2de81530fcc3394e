package core

import (
	"runtime"
	"sync"
)

// Pump is the delivery helper of push adapters: it hands items from core
// callbacks, which run with core locks held and must not block, to a writer
// goroutine that runs only while there is something to send, so an idle
// connection costs no goroutine. It bounds what waits and builds in the
// flow control of ConsumeOptions.Ready: Ready says no once Max items wait,
// and when the writer takes a batch from a full buffer it calls Kick (the
// adapter passes Session.Kick) so the core delivers again while that batch
// is written.
//
// An adapter sets Max, Write and Kick, then uses Put as (or from) its
// ConsumeOptions.Deliver, Ready as ConsumeOptions.Ready, and Close when the
// connection ends. T is what the adapter sends: core deliveries, or its own
// items (MQTT sends retained messages through the same pump).
type Pump[T any] struct {
	// Max is how many items may wait before Ready says no (default 512).
	Max int
	// Write sends a batch, in order, on the pump's goroutine; it may block
	// (on the socket). The batch is reused after it returns.
	Write func(batch []T)
	// Kick is called (without core locks) when deliveries held back by
	// Ready may resume.
	Kick func()

	mu      sync.Mutex
	items   []T
	spare   []T
	running bool          // a writer goroutine is draining
	idle    chan struct{} // closed when that writer exits
	held    bool          // Ready said no: Kick when there is room
	closed  bool
}

func (p *Pump[T]) max() int {
	if p.Max > 0 {
		return p.Max
	}
	return 512
}

// Put queues an item for Write and starts the writer if it is not running.
// It never blocks. After Close it drops the item and reports false (an
// unacknowledged delivery then stays with the core and is requeued when
// its session closes).
func (p *Pump[T]) Put(it T) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.items = append(p.items, it)
	if !p.running {
		p.running = true
		p.idle = make(chan struct{})
		go p.drain(p.idle)
	}
	return true
}

// Ready reports whether the core may deliver more; use it as
// ConsumeOptions.Ready (it runs with core locks held).
func (p *Pump[T]) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.items) >= p.max() {
		p.held = true
		return false
	}
	return true
}

// Idle reports whether nothing waits and no writer runs: a write the
// caller makes now, under the lock Write takes, cannot overtake an item
// put before. Items put after Idle returns may still be written after it.
func (p *Pump[T]) Idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.running && len(p.items) == 0 && !p.closed
}

// Close drops what waits, stops taking items and returns once the writer
// (if one runs) has finished its current batch.
func (p *Pump[T]) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.items, p.spare = nil, nil
	p.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// drain writes batches until nothing waits.
func (p *Pump[T]) drain(idle chan struct{}) {
	for yielded := false; ; {
		p.mu.Lock()
		if len(p.items) == 0 && !p.closed && !yielded {
			// Under a steady flow (each acknowledgement lets one delivery
			// through) the next item is usually a moment away; give it
			// that moment before giving up the goroutine.
			p.mu.Unlock()
			yielded = true
			runtime.Gosched()
			continue
		}
		yielded = false
		if len(p.items) == 0 || p.closed {
			p.running = false
			p.idle = nil
			p.mu.Unlock()
			close(idle)
			return
		}
		batch := p.items
		p.items = p.spare
		p.spare = nil
		kick := p.held
		p.held = false
		p.mu.Unlock()

		if kick && p.Kick != nil {
			p.Kick() // let the core fill the next batch while this one is written
		}
		p.Write(batch)
		clear(batch)
		p.mu.Lock()
		if p.spare == nil {
			p.spare = batch[:0]
		}
		p.mu.Unlock()
	}
}
