package stomp

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/unifiedms/ums/internal/netpark"
)

// Parking: an idle plain TCP connection holds no goroutine and no read
// buffer. When the read loop has nothing buffered between frames and the
// client stays quiet for parkAfter, it registers the socket with the
// server's poller (internal/netpark), gives its buffer back to the pool
// and returns. When bytes arrive (or the client hangs up), the poller
// starts readLoop again on a fresh goroutine, which takes a buffer and
// reads through the net.Conn as before. A frame that is only partly
// received keeps its goroutine: only whole frames are parsed.
//
// The client's heart-beat limit (readLimit) is a timer while parked: at
// readBy it takes the connection back from the poller and fails it with
// the same "Heart-beat timeout" ERROR as the read deadline does.
//
// Closing races with waking: every close of the socket goes through
// closeSocket, which cancels the registration before net.Conn.Close, under
// the parking slot's lock (netpark.Slot), so the poller never acts on a closed descriptor. Whoever
// wins the registration (the poller's wake, closeSocket or the heart-beat
// timer) owns the connection's end; the others do nothing.
//
// TLS and WebSocket connections, and every connection when
// Server.NoPark is set or on systems without netpark, keep a goroutine
// blocked in Read.

// defaultParkAfter is how long a connection waits in Read, with nothing
// buffered, before it parks: a busy client's next frame mostly comes
// sooner, and costs no epoll calls.
const defaultParkAfter = 100 * time.Millisecond // must be > 0

// parking is a connection's registration with the poller.
type parking struct {
	rc     syscall.RawConn // nil: this connection never parks
	wake   func()          // conn.unpark, made once
	expire func()          // conn.parkTimeout, made once
	slot   netpark.Slot    // the race between waking, closing and the heart-beat limit
}

// initParking makes a plain TCP connection parkable when the server has
// a poller.
func (c *conn) initParking() {
	if c.srv.poller == nil || c.sock == nil {
		return // a TLS or WebSocket connection, or no poller
	}
	c.park.rc, c.park.wake, c.park.expire = c.sock.RawConn(), c.unpark, c.parkTimeout
}

// idle waits, with nothing buffered, for the client's next bytes; true
// when it parked the connection instead (the caller's goroutine must then
// return and leave the connection alone). readBy is the heart-beat limit,
// zero when there is none; when idle returns false, it is the read
// deadline. A parkable connection only.
func (c *conn) idle(readBy time.Time) bool {
	after := c.srv.parkAfter
	if c.readLimit > 0 && c.readLimit <= after {
		// Parking would not outlast the read deadline. (An error here is
		// a closed socket, which the next Read reports.)
		_ = c.nc.SetReadDeadline(readBy)
		return false
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(after)); err != nil {
		return false
	}
	_, err := c.br.Peek(1)
	// Back to the heart-beat limit (or none) for the frame.
	if derr := c.nc.SetReadDeadline(readBy); derr != nil {
		return false
	}
	if err == nil || c.br.Buffered() > 0 {
		return false
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false // an end or a failure: Read reports it again
	}
	return c.parkNow(readBy)
}

// parkNow registers the connection with the poller and lends its buffer
// back; false when it could not (the socket is closed, or the poller).
func (c *conn) parkNow(readBy time.Time) bool {
	p := &c.park
	br := c.br
	c.br = nil
	c.rd.Reset(nil)
	if !p.slot.Park(c.srv.poller, p.rc, readBy, p.wake, p.expire) {
		c.br = br
		c.rd.Reset(br)
		return false
	}
	// unpark may be running already, with a buffer of its own.
	br.Reset(nil)
	readers.Put(br)
	return true
}

// unpark runs on a new goroutine when a parked socket is readable or hung
// up: it reads on.
func (c *conn) unpark() {
	c.park.slot.Woken()
	c.takeReader()
	c.readLoop()
}

// parkTimeout runs at a parked connection's heart-beat limit: the client
// sent nothing in time.
func (c *conn) parkTimeout() {
	c.readFailed(os.ErrDeadlineExceeded)
	c.end()
}

// closeSocket closes the socket, from any goroutine, and, when the
// connection was parked, ends it on a goroutine of its own (its callers
// hold locks that close takes).
func (c *conn) closeSocket() {
	won := c.park.rc != nil && c.park.slot.Close(c.srv.poller)
	c.nc.Close()
	if won {
		go c.end()
	}
}
