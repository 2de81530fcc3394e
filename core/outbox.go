package core

import (
	"net"
	"sync"
	"sync/atomic"
)

// Outbox is the delivery helper of push adapters that encode frames as
// deliveries are made (AMQP): Deliver, which runs with core locks held,
// appends its encoded frames to the outbox, behind every other frame of the
// connection, and the adapter's one writer goroutine takes everything
// queued and sends it with a single writev. Frames keep the order in which
// they were appended, whichever goroutine appended them, so a delivery can
// never overtake or trail a reply the reader sends meanwhile.
//
// It bounds what waits and builds in the flow control of
// ConsumeOptions.Ready: Ready says no once Limit bytes wait, and Written,
// which the writer calls after each batch, calls Kick once the outbox is
// back under half the limit so the core delivers again. Over tells the
// reader when publishing itself (replies, confirms, returns) has filled
// the outbox, so it can stop reading (TCP backpressure).
//
// Appending:
//
//	b := o.Lock()
//	b = appendFrame(b, ...)
//	o.Unlock(b)
//
// Writing, on the adapter's writer goroutine:
//
//	<-o.Wake()
//	bufs, n := o.Take(bufs[:0])
//	if n > 0 { bufs.WriteTo(conn) }
//	o.Written()
type Outbox struct {
	limit int
	kick  func()

	mu      sync.Mutex
	cur     []byte      // small frames accumulate here
	segs    net.Buffers // filled segments waiting in order before cur
	owned   [][]byte    // segments of segs that are ours to reuse
	taken   [][]byte    // owned segments of the batch being written
	free    [][]byte    // buffers the writer gave back
	pending int         // bytes queued
	mark    int         // len(cur) already counted in pending
	wake    chan struct{}

	held bool // Ready said no: Kick when there is room

	over atomic.Bool // pending > limit, for the reader to check per frame
}

// DefaultOutboxLimit is an Outbox's limit when NewOutbox is given 0.
const DefaultOutboxLimit = 4 << 20

// NewOutbox returns an outbox that holds back deliveries above limit bytes
// (0: DefaultOutboxLimit) and calls kick (without locks, on the writer's
// goroutine) when they may resume; the adapter passes a function that
// calls Session.Kick for each of the connection's sessions.
func NewOutbox(limit int, kick func()) *Outbox {
	if limit <= 0 {
		limit = DefaultOutboxLimit
	}
	return &Outbox{limit: limit, kick: kick, wake: make(chan struct{}, 1)}
}

// Limit is the number of bytes above which Ready says no.
func (o *Outbox) Limit() int { return o.limit }

// Lock starts appending frames: append to the returned buffer and pass the
// result to Unlock. Nothing else may be called on the outbox in between
// except AppendRef.
func (o *Outbox) Lock() []byte {
	o.mu.Lock()
	if o.cur == nil {
		if n := len(o.free); n > 0 {
			o.cur = o.free[n-1][:0]
			o.free = o.free[:n-1]
		} else {
			o.cur = make([]byte, 0, 16<<10)
		}
	}
	o.mark = len(o.cur)
	return o.cur
}

// Unlock ends appending with b, the buffer Lock (or AppendRef) returned
// with frames appended, and wakes the writer.
func (o *Outbox) Unlock(b []byte) {
	o.UnlockDeferred(b)
	o.Signal()
}

// UnlockDeferred is Unlock without waking the writer, for a Deliver whose
// consumer has ConsumeOptions.Flush: the flush writes the frames or calls
// Signal.
func (o *Outbox) UnlockDeferred(b []byte) {
	o.cur = b
	o.pending += len(b) - o.mark
	if o.pending > o.limit && !o.over.Load() {
		o.over.Store(true)
	}
	o.mu.Unlock()
}

// Signal wakes the writer.
func (o *Outbox) Signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// AppendRef queues ref (which must not change until written) by reference
// after b, between Lock and Unlock, so a large body is written from where
// it is instead of being copied. It returns the buffer to go on appending
// to.
func (o *Outbox) AppendRef(b, ref []byte) []byte {
	o.pending += len(b) - o.mark
	if len(b) > 0 {
		o.segs = append(o.segs, b)
		o.owned = append(o.owned, b)
		b = make([]byte, 0, 16<<10)
	}
	o.mark = 0
	o.segs = append(o.segs, ref)
	o.pending += len(ref)
	return b
}

// Wake receives a value after frames were appended.
func (o *Outbox) Wake() <-chan struct{} { return o.wake }

// Take removes everything queued, appending it to dst in order, and
// reports its size in bytes. The writer writes it, then calls Written.
func (o *Outbox) Take(dst net.Buffers) (net.Buffers, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cur) > 0 {
		o.segs = append(o.segs, o.cur)
		o.owned = append(o.owned, o.cur)
		o.cur = nil
	}
	dst = append(dst, o.segs...)
	o.taken = append(o.taken, o.owned...)
	clear(o.owned)
	o.owned = o.owned[:0]
	n := o.pending
	clear(o.segs)
	o.segs = o.segs[:0]
	o.pending = 0
	if o.over.Load() {
		o.over.Store(false)
	}
	return dst, n
}

// Written tells the outbox that what Take returned was written (or that
// writing failed): its buffers are reused, and if Ready held deliveries
// back and the outbox is under half its limit again, Kick is called.
func (o *Outbox) Written() {
	o.mu.Lock()
	for i, b := range o.taken {
		if cap(b) <= 256<<10 && len(o.free) < 4 {
			o.free = append(o.free, b[:0])
		}
		o.taken[i] = nil
	}
	o.taken = o.taken[:0]
	resume := o.held && o.pending < o.limit/2
	if resume {
		o.held = false
	}
	o.mu.Unlock()
	if resume && o.kick != nil {
		o.kick()
	}
}

// Size is the number of bytes waiting to be taken.
func (o *Outbox) Size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}

// Over reports whether more than Limit bytes wait; it is one atomic load,
// for a reader to check after every frame.
func (o *Outbox) Over() bool { return o.over.Load() }

// Ready reports whether the core may deliver more; use it as
// ConsumeOptions.Ready (it runs with core locks held).
// Once it said no it goes on saying no until Written calls Kick.
func (o *Outbox) Ready() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.held || o.pending >= o.limit {
		o.held = true
		return false
	}
	return true
}
