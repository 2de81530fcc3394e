package mqtt

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/internal/netpark"
)

// Parking: an idle plain TCP connection holds no goroutine and no read
// buffer.
//
// Reads go through wireConn, which reads the socket into a buffer
// borrowed from readBufs and lends it back once mochi's small bufio.Reader
// (mqttReadBuffer bytes) has taken its bytes; wireConn counts the bytes it
// handed on (total) and the packet loop counts the bytes of the packets it
// read (consumed), so total == consumed means nothing is buffered anywhere:
// the loop is between packets.
//
// A sweeper (parkSweep) looks at every parkable connection once per
// parkAfter. One whose reader is blocked between packets (waiting) and read
// no packet since the previous sweep is asked to park: parkReq is set and
// its read deadline moved to the past, which ends the blocked Read with a
// timeout. wireConn.Read turns that timeout into errPark when the read was
// the first of a packet, and otherwise restores the deadline and reads on
// (the client had started a packet meanwhile). On errPark the packet loop
// registers the socket with the server's poller (internal/netpark) and its
// goroutine returns; when bytes arrive, or the client hangs up, the poller
// runs readLoop again on a new goroutine. A busy connection so pays one
// atomic store per packet, and no timer.
//
// A new connection parks straight after its CONNACK when the client sent
// nothing more (parkAfterConnect).
//
// The keep-alive deadline is a timer while parked: at readBy it takes the
// connection back from the poller and ends it as a read deadline would.
//
// Closing races with waking: every close goes through wireConn.Close,
// which cancels the registration under the parking slot's lock
// (netpark.Slot) before closing the
// socket, so the poller never acts on a closed descriptor. Whoever wins
// the registration (the poller's wake, Close or the keep-alive timer)
// owns the connection's end; the others do nothing.
//
// TLS and WebSocket connections, and every connection when Server.NoPark
// is set or on systems without netpark, keep a goroutine blocked in Read.

// defaultParkAfter is how often the sweeper runs: a connection quiet for
// between one and two of these parks.
const defaultParkAfter = time.Second

// mqttReadBuffer is the size of mochi's own read buffer per connection
// (bufio's smallest): wireConn's borrowed buffer (readBufferSize)
// does the batching, and mochi's buffer only spares it a call per byte of
// a fixed header; a packet body larger than it is read past it.
const mqttReadBuffer = 16

// readBufferSize is the size of the borrowed read buffers.
const readBufferSize = 4 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// errPark ends the packet loop's read to park the connection.
var errPark = errors.New("mqtt: connection parks")

// errParked is readPackets' answer when the connection was parked: its
// goroutine must leave the connection alone.
var errParked = errors.New("mqtt: connection parked")

// parking is a connection's registration with the poller.
type parking struct {
	rc  syscall.RawConn // the socket, also read and written with raw system calls (wireConn.write); nil: never parks, uses net.Conn
	srv *Server
	cl  client
	// wireConn's methods as func values, made once: the socket read and
	// the parking's ends (a method value the poller keeps would be
	// allocated at every parking).
	read         func(fd uintptr) bool
	wake, expire func()

	// The reader and the sweeper.
	active  atomic.Bool // a packet was read since the last sweep
	waiting atomic.Bool // the reader is blocked in the first read of a packet
	req     atomic.Bool // the sweeper asked the reader to park

	slot netpark.Slot // the race between waking, closing and the keep-alive deadline
}

// initParking makes a plain TCP connection parkable when the server has a
// poller. It runs before the handshake: once the client is known to mochi,
// other goroutines (a takeover, a shutdown) may close the connection and
// read these fields.
func (s *Server) initParking(cl client, wc *wireConn) {
	if s.poller == nil {
		return
	}
	rc, ok := netpark.RawConn(connlimit.Socket(wc.Conn))
	if !ok {
		return
	}
	p := &wc.park
	p.rc, p.srv, p.cl = rc, s, cl
	p.read, p.wake, p.expire = wc.rawRead, wc.unpark, wc.parkTimeout
	p.active.Store(true)
}

// trackParking puts a connection past its handshake, or woken from
// parking, on the sweeper's list: the connections with a reader.
func (s *Server) trackParking(wc *wireConn) {
	if wc.park.rc == nil {
		return
	}
	s.parkMu.Lock()
	s.parkable[wc] = struct{}{}
	s.parkMu.Unlock()
}

// forgetParking takes an ended or parked connection off the sweeper's
// list.
func (s *Server) forgetParking(wc *wireConn) {
	if wc.park.rc == nil {
		return
	}
	s.parkMu.Lock()
	delete(s.parkable, wc)
	s.parkMu.Unlock()
}

// parkSweep asks the connections that stayed idle to park, every
// parkAfter, until the server shuts down.
func (s *Server) parkSweep() {
	t := time.NewTicker(s.parkAfter)
	defer t.Stop()
	var quiet []*wireConn
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		quiet = quiet[:0]
		s.parkMu.Lock()
		for wc := range s.parkable {
			p := &wc.park
			if !p.active.Swap(false) && p.waiting.Load() {
				quiet = append(quiet, wc)
			}
		}
		s.parkMu.Unlock()
		for _, wc := range quiet {
			wc.park.req.Store(true)
			_ = wc.Conn.SetReadDeadline(aLongTimeAgo)
		}
		clear(quiet)
	}
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// parkNow registers the connection with the poller; false when it could
// not (the socket is closed, or the poller). The keep-alive deadline in
// force (zero: none) ends it if the client sends nothing by then.
func (s *Server) parkNow(wc *wireConn) bool {
	p := &wc.park
	p.waiting.Store(false)
	// Off the sweeper's list first: once parked, wake may already run
	// and put it back.
	s.forgetParking(wc)
	if !p.slot.Park(s.poller, p.rc, wc.deadlineTime(), p.wake, p.expire) {
		s.trackParking(wc)
		return false
	}
	return true
}

// parkAfterConnect parks a connection right after its CONNACK when the
// client sent nothing after CONNECT: most connections then stay quiet, and
// a reader started only to wait would cost a goroutine, its stack and, at
// a high connect rate, the runtime's record of every goroutine alive at
// once (which it keeps for good), until the sweeper parks it a second or
// two later. The CONNACK goes out first. False: the caller starts a
// reader.
func (s *Server) parkAfterConnect(cl client, wc *wireConn) bool {
	if wc.park.rc == nil || cl.closed() || len(wc.r) > 0 || wc.total != wc.consumed {
		return false
	}
	if wc.Flush() != nil {
		return false // the reader ends the connection
	}
	return s.parkNow(wc)
}

// unpark runs on a new goroutine when a parked socket is readable or hung
// up: it reads on.
func (wc *wireConn) unpark() {
	p := &wc.park
	p.slot.Woken()
	p.active.Store(true)
	p.srv.trackParking(wc)
	// The read deadline is still in the past: the next refresh sets it.
	wc.deadline = 0
	p.srv.readLoop(p.cl)
}

// parkTimeout runs at a parked connection's keep-alive deadline: the
// client sent nothing in time.
func (wc *wireConn) parkTimeout() {
	wc.park.srv.endParked(wc.park.cl, os.ErrDeadlineExceeded)
}

// closeParked is wireConn.Close's part: it reports whether the connection
// was parked, in which case the caller must end it (no reader will).
func (wc *wireConn) closeParked() bool {
	p := &wc.park
	return p.rc != nil && p.slot.Close(p.srv.poller)
}

// endParked ends a parked connection as its reader would have on err.
func (s *Server) endParked(cl client, err error) {
	defer s.conns.Done()
	if wc, ok := cl.wire(); ok {
		s.forgetParking(wc)
	}
	s.endConnection(cl, s.packetError(cl, err))
}

// parkedCount returns how many connections are parked (for tests).
func (s *Server) parkedCount() int {
	if s.poller == nil {
		return 0
	}
	return s.poller.Parked()
}

// packetSize is the number of bytes of a packet whose fixed header is fh:
// its first byte, its remaining length's bytes, and those.
func packetSize(remaining int) int64 {
	n := int64(2)
	for r := remaining; r >= 128; r >>= 7 {
		n++
	}
	return n + int64(remaining)
}
