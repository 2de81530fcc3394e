package core

import (
	"context"
	"sync"
)

// Pulling: consumers inside the process.
//
// An in-process consumer (a notification worker, a scheduler) does not push
// frames to a socket: it asks for the next message when it is ready for
// one. Session.Pull attaches such a consumer to a queue. Deliveries wait in
// a buffer of at most PullOptions.Buffer messages: when it is full the
// queue holds the rest back (they stay ready in the queue, visible and
// consumable by others), and taking one with Next makes room again. With
// manual acknowledgements (the default) every delivery taken must be
// settled with Ack or Nack; Close requeues those still in the buffer.

// PullOptions configure a pulling consumer.
type PullOptions struct {
	Tag   string // empty: the server picks amq.ctag-…
	NoAck bool
	Args  Table
	// Buffer bounds the deliveries waiting for Next (default 1).
	Buffer int
}

// Puller is a consumer whose messages are taken with Next. Its methods are
// safe for concurrent use.
type Puller struct {
	s    *Session
	c    *Consumer
	max  int
	wake chan struct{} // a delivery arrived or the consumer ended

	mu     sync.Mutex // a leaf: taken under Queue.mu and Session.mu by put and ready
	buf    []Delivery
	closed bool
}

// Pull starts a pulling consumer of q on the session.
func (s *Session) Pull(q *Queue, o PullOptions) (*Puller, error) {
	p := &Puller{s: s, max: max(o.Buffer, 1), wake: make(chan struct{}, 1)}
	c, err := s.Consume(q, ConsumeOptions{Tag: o.Tag, NoAck: o.NoAck, Args: o.Args,
		Deliver: p.put, Ready: p.ready, Cancelled: p.end})
	if err != nil {
		return nil, err
	}
	p.c = c
	return p, nil
}

// Tag returns the consumer tag.
func (p *Puller) Tag() string { return p.c.Tag }

// put runs with Queue.mu and Session.mu held.
func (p *Puller) put(d Delivery) {
	p.mu.Lock()
	p.buf = append(p.buf, d)
	p.mu.Unlock()
	p.signal()
}

// ready runs with Queue.mu and Session.mu held.
func (p *Puller) ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(p.buf) < p.max
}

func (p *Puller) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// end marks the consumer finished (queue deleted or Close).
func (p *Puller) end() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.signal()
}

// Next returns the next delivery, waiting until one comes, the context
// ends (its error) or the consumer ends (ErrClosed once the buffer is empty).
func (p *Puller) Next(ctx context.Context) (Delivery, error) {
	var one [1]Delivery
	ds, err := p.NextBatch(ctx, one[:0], 1)
	if err != nil {
		return Delivery{}, err
	}
	return ds[0], nil
}

// NextBatch is Next for up to limit deliveries at once: it waits as Next
// does for the first, then takes those already buffered behind it. They
// are appended to dst.
func (p *Puller) NextBatch(ctx context.Context, dst []Delivery, limit int) ([]Delivery, error) {
	for {
		p.mu.Lock()
		if n := len(p.buf); n > 0 {
			k := min(n, max(limit, 1))
			dst = append(dst, p.buf[:k]...)
			rest := copy(p.buf, p.buf[k:])
			clear(p.buf[rest:])
			p.buf = p.buf[:rest]
			wasFull := n >= p.max
			p.mu.Unlock()
			if wasFull {
				p.s.Kick() // room again: let the queue deliver
			}
			return dst, nil
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return dst, errorf(ErrClosed, "consumer '%s' ended", p.c.Tag)
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
}

// Ack acknowledges a delivery taken with Next.
func (p *Puller) Ack(d Delivery) error { return p.s.Ack(d.Tag, false) }

// Nack rejects a delivery taken with Next; requeue puts it back at its
// place, otherwise it is dead-lettered (or dropped).
func (p *Puller) Nack(d Delivery, requeue bool) error { return p.s.Nack(d.Tag, false, requeue) }

// Close cancels the consumer and requeues the deliveries still buffered.
// Deliveries taken with Next and not settled stay with the session.
func (p *Puller) Close() {
	p.s.Cancel(p.c.Tag)
	p.mu.Lock()
	p.closed = true
	buf := p.buf
	p.buf = nil
	p.mu.Unlock()
	p.signal()
	if !p.c.NoAck {
		for _, d := range buf {
			p.s.Nack(d.Tag, false, true)
		}
	}
}
