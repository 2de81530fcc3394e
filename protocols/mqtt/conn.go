package mqtt

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/unifiedms/ums/internal/netpark"
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

	deadline int64 // last deadline set on Conn, Unix nanoseconds (0: none); reader goroutine only

	// The read side (park.go); reader goroutine only. rbuf is borrowed
	// from readBufs while it holds bytes mochi has not taken (r); total
	// counts the bytes handed on, consumed those of whole packets read.
	rbuf     *[]byte
	r        []byte
	rerr     error         // an error to report once r is empty
	rn       int           // rawRead's answer: bytes read,
	rerrno   syscall.Errno // or the system call's error (0: none)
	total    int64
	consumed int64
	park     parking
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
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	if d != 0 && c.deadline != 0 && d > c.deadline {
		lag := time.Duration(d - c.deadline)
		if lag < deadlineSlack && lag < time.Until(t)/8 {
			return nil
		}
	}
	c.deadline = d
	return c.Conn.SetDeadline(t)
}

// deadlineTime is the deadline in force (zero: none).
func (c *wireConn) deadlineTime() time.Time {
	if c.deadline == 0 {
		return time.Time{}
	}
	return time.Unix(0, c.deadline)
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
	if _, err := c.write(p); err != nil {
		c.werr = err
		_ = c.Conn.Close()
		return err
	}
	return nil
}

// Read hands on what the borrowed buffer holds. When it is empty it
// flushes what is pending (so every response to a batch of received
// packets leaves together), then reads the socket: into p when p is large,
// else into a borrowed buffer, lent back once emptied. A read the sweeper
// interrupted (park.go) ends with errPark between packets, and reads on
// within one.
func (c *wireConn) Read(p []byte) (int, error) {
	if len(c.r) == 0 {
		if err := c.rerr; err != nil {
			c.rerr = nil
			return 0, err
		}
		if err := c.Flush(); err != nil {
			return 0, err
		}
		direct := len(p) >= readBufferSize || c.park.rc == nil
		for {
			n, err := c.readSocket(p, direct)
			if err != nil && isTimeout(err) && c.park.req.Swap(false) {
				if n == 0 && c.total == c.consumed {
					return 0, errPark
				}
				// Inside a packet, or bytes came with the interruption:
				// back to the keep-alive deadline.
				if derr := c.Conn.SetReadDeadline(c.deadlineTime()); derr != nil {
					return n, derr
				}
				if n == 0 {
					continue
				}
				err = nil
			}
			if err != nil {
				if n == 0 {
					return 0, err
				}
				c.rerr = err // after the bytes that came with it
			}
			if direct {
				c.total += int64(n)
				return n, nil
			}
			break
		}
	}
	n := copy(p, c.r)
	c.r = c.r[n:]
	c.total += int64(n)
	if len(c.r) == 0 {
		c.lendBack()
	}
	return n, nil
}

// readSocket reads from the socket into p (direct) or into a borrowed
// buffer (c.r), marking the reader as waiting when this is the first read
// of a packet. The buffer is taken only once the socket is readable, so a
// reader blocked waiting for a client holds none. Connections that do not
// park (TLS, WebSocket) read into p: their own layer buffers.
func (c *wireConn) readSocket(p []byte, direct bool) (int, error) {
	if c.park.rc == nil {
		return c.Conn.Read(p)
	}
	waiting := c.total == c.consumed
	if waiting {
		c.park.waiting.Store(true)
	}
	var n int
	var err error
	if direct {
		n, err = netpark.Read(c.park.rc, p)
	} else {
		c.rn, c.rerrno = 0, 0
		err = c.park.rc.Read(c.park.read)
		switch {
		case err != nil:
		case c.rerrno != 0:
			err = os.NewSyscallError("read", c.rerrno)
		case c.rn == 0:
			err = io.EOF
		default:
			n = c.rn
			c.r = (*c.rbuf)[:n]
		}
		if n == 0 {
			c.lendBack()
		}
	}
	if waiting {
		c.park.waiting.Store(false)
	}
	return n, err
}

// rawRead is readSocket's read on the descriptor (syscall.RawConn.Read):
// false asks the runtime to wait until it is readable, with no buffer
// held meanwhile.
func (c *wireConn) rawRead(fd uintptr) bool {
	if c.rbuf == nil {
		c.rbuf = readBufs.Get().(*[]byte)
	}
	n, e := netpark.ReadFD(fd, *c.rbuf)
	switch e {
	case 0:
		c.rn = n
	case syscall.EAGAIN:
		c.lendBack()
		return false
	default:
		c.rerrno = e
	}
	return true
}

// lendBack returns the read buffer, empty, to the pool.
func (c *wireConn) lendBack() {
	if c.rbuf != nil {
		readBufs.Put(c.rbuf)
		c.rbuf, c.r = nil, nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// write writes b to the socket: with raw system calls when it is a plain
// TCP socket (netpark.Sock explains why).
func (c *wireConn) write(b []byte) (int, error) {
	if c.park.rc != nil {
		return netpark.Write(c.park.rc, b)
	}
	return c.Conn.Write(b)
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
	_, err := c.write(c.pending)
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
// write is in progress it closes at once, which ends that write. A parked
// connection is taken back from the poller first and ended on a goroutine
// of its own (Close's callers hold locks that ending takes).
func (c *wireConn) Close() error {
	if c.closeParked() {
		defer func() { go c.park.srv.endParked(c.park.cl, net.ErrClosed) }()
	}
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
