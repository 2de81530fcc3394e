package mqtt

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// maxPendingWrite is how many bytes wireConn buffers before it writes
// without waiting for a flush.
const maxPendingWrite = 64 << 10

// wireConn is the net.Conn mochi reads and writes. It coalesces writes: a
// packet mochi writes is appended to a buffer, which goes out in one system
// call when the connection's reader needs more input (so every response to
// a batch of received packets leaves together), when a delivery batch ends,
// before an adapter hook blocks, or when the buffer grows large. It also
// carries the adapter's session, so per-connection state needs no lookup
// table keyed by mochi's client.
type wireConn struct {
	net.Conn

	sess atomic.Pointer[session]

	mu      sync.Mutex
	pending []byte // REQUIRES: mu
	werr    error  // first write error, sticky; REQUIRES: mu

	deadline time.Time // last deadline set on Conn; reader goroutine only
}

// deadlineSlack is how far behind the requested deadline the one in force
// may lag. The keep-alive deadline moves forward after every packet;
// re-arming the runtime's timer each time costs more than the rest of a
// small PUBLISH's handling, so it is re-armed only once the requested
// deadline moved by this much, or by an eighth of the time left, whichever
// is less (the keep-alive check fires at most that much early, well within
// the 1.5 × keep-alive the client is allowed).
const deadlineSlack = time.Second

// SetDeadline sets the read and write deadline, lazily (see deadlineSlack).
func (c *wireConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !c.deadline.IsZero() && t.After(c.deadline) {
		lag := t.Sub(c.deadline)
		if lag < deadlineSlack && lag < time.Until(t)/8 {
			return nil
		}
	}
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func newWireConn(c net.Conn) *wireConn { return &wireConn{Conn: c} }

// Write buffers p.
func (c *wireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	c.pending = append(c.pending, p...)
	if len(c.pending) >= maxPendingWrite {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// WriteNow writes what is pending and p.
func (c *wireConn) WriteNow(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		return c.flushLocked()
	}
	if c.werr != nil {
		return c.werr
	}
	if _, err := c.Conn.Write(p); err != nil {
		c.werr = err
		_ = c.Conn.Close()
		return err
	}
	return nil
}

// Read flushes what is pending, then reads.
func (c *wireConn) Read(p []byte) (int, error) {
	if err := c.Flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Flush writes the pending bytes.
func (c *wireConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// REQUIRES: c.mu.
func (c *wireConn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	if cap(c.pending) > 4*maxPendingWrite {
		c.pending = nil // do not keep a burst's buffer on an idle connection
	} else {
		c.pending = c.pending[:0]
	}
	if err != nil {
		c.werr = err
		_ = c.Conn.Close()
	}
	return err
}

// Close writes what is pending (a final DISCONNECT) and closes. When a
// write is in progress it closes at once, which ends that write.
func (c *wireConn) Close() error {
	if c.mu.TryLock() {
		if c.werr == nil && len(c.pending) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.flushLocked()
		}
		if c.werr == nil {
			c.werr = net.ErrClosed
		}
		c.pending = nil
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
