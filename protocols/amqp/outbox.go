package amqp

import (
	"net"
	"sync"
	"sync/atomic"
)

// refBodyMin is the body size from which a delivery's body is written from
// the shared message buffer (writev) instead of being copied into the
// outgoing buffer.
const refBodyMin = 16 << 10

// outbox collects encoded frames from any goroutine; one writer goroutine
// drains it with a single writev per batch, so frames produced together
// leave in one syscall.
type outbox struct {
	mu      sync.Mutex
	cur     []byte      // small frames accumulate here
	segs    net.Buffers // filled segments waiting in order before cur
	owned   [][]byte    // segments of segs that are ours to reuse
	free    [][]byte    // buffers the writer gave back
	pending int         // bytes queued
	mark    int         // len(cur) already counted in pending
	wake    chan struct{}

	limit int         // pending bytes above which over is set
	over  atomic.Bool // pending > limit, for the reader to check per frame
}

func newOutbox(limit int) *outbox {
	return &outbox{wake: make(chan struct{}, 1), limit: limit}
}

// lock starts appending frames; callers append to o.cur and then call unlock.
func (o *outbox) lock() {
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
}

// unlock ends appending and wakes the writer.
func (o *outbox) unlock() {
	o.pending += len(o.cur) - o.mark
	if o.pending > o.limit && !o.over.Load() {
		o.over.Store(true)
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// appendRef queues b (which must not change) by reference after the bytes
// already in cur. REQUIRES: o.mu.
func (o *outbox) appendRefLocked(b []byte) {
	o.pending += len(o.cur) - o.mark
	if len(o.cur) > 0 {
		o.segs = append(o.segs, o.cur)
		o.owned = append(o.owned, o.cur)
		o.cur = make([]byte, 0, 16<<10)
	}
	o.mark = 0
	o.segs = append(o.segs, b)
	o.pending += len(b)
}

// take removes everything queued. It returns nil when there is nothing.
func (o *outbox) take(dst net.Buffers) (net.Buffers, [][]byte, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cur) > 0 {
		o.segs = append(o.segs, o.cur)
		o.owned = append(o.owned, o.cur)
		o.cur = nil
	}
	dst = append(dst, o.segs...)
	owned := o.owned
	n := o.pending
	clear(o.segs)
	o.segs = o.segs[:0]
	o.owned = nil
	o.pending = 0
	if o.over.Load() {
		o.over.Store(false)
	}
	return dst, owned, n
}

// recycle returns written buffers for reuse.
func (o *outbox) recycle(bufs [][]byte) {
	o.mu.Lock()
	for _, b := range bufs {
		if cap(b) <= 256<<10 && len(o.free) < 4 {
			o.free = append(o.free, b[:0])
		}
	}
	o.mu.Unlock()
}

// size is the number of bytes waiting to be written.
func (o *outbox) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}
