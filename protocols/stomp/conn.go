package stomp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/internal/netpark"
	"github.com/unifiedms/ums/protocols/stomp/wire"
)

// The connection: its read loop, its writes and heart-beats, its end.

// readBufferSize is the read buffer of a connection; longer lines and
// bodies are gathered within the limits (see wire.Reader), and bodies with
// a content-length of at least this size are read past it.
const readBufferSize = 2048

// maxKeptWriteBuffer is the largest write buffer given back to writeBufs.
const maxKeptWriteBuffer = 64 << 10

// writeTimeout bounds one write of ERROR or heart-beat frames to a client
// that does not read, so shutdown and kills are not held up by it.
const writeTimeout = 5 * time.Second

// conn is a client connection.
type conn struct {
	srv *Server
	nc  net.Conn
	rd  *wire.Reader
	// br is rd's buffer, from readers; the read goroutine's, nil while
	// parked (see park.go).
	br *bufio.Reader

	// Set by CONNECT on the read goroutine before anything else runs,
	// then read-only.
	version   string
	esc       wire.Escaping
	session   string
	user      string
	vhost     *core.Vhost
	cc        *core.Conn
	cs        *core.Session
	sendEvery time.Duration // heart-beats to the client; 0: none
	readLimit time.Duration // silence after which the client is gone; 0: none

	// Read goroutine only; the maps are made on first use, so an idle
	// connection does not hold them.
	router   core.Router
	exch     map[string]*core.Exchange // publishing exchanges resolved
	temps    map[string]*subscription  // /temp-queue/ name -> its subscription
	txs      map[string]*transaction
	txFrames int             // frames held by txs
	txBytes  int             // body bytes held by txs
	flow     <-chan struct{} // publisher flow control (see send.go)
	frames   int             // frames handled, for logs

	out core.Pump[outItem] // deliveries and late receipts to the writer

	// sock reads and writes a plain TCP socket with raw system calls
	// (nil for TLS and WebSocket connections).
	sock *netpark.Sock

	wmu   sync.Mutex
	werr  error  // sticky write error; REQUIRES: wmu
	rest  []byte // the part of a direct receipt the socket did not take; REQUIRES: wmu
	wrote atomic.Bool
	beat  *time.Timer // heart-beats; armed under wmu

	mu       sync.Mutex
	closed   bool                     // REQUIRES: mu
	subs     map[string]*subscription // by id, made on first use; REQUIRES: mu
	lastSent chan struct{}            // closed once DISCONNECT's receipt is written
	killOnce sync.Once

	park parking // the read side while idle (park.go)
}

// readers are the read buffers of connections: a parked connection gives
// its buffer back.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc}
	c.sock, _ = netpark.NewSock(connlimit.Socket(nc))
	c.takeReader()
	c.rd = wire.NewReader(c.br, s.limits)
	c.initParking()
	return c
}

// takeReader gives the read goroutine a buffer from the pool.
func (c *conn) takeReader() {
	c.br = readers.Get().(*bufio.Reader)
	if c.sock != nil {
		c.br.Reset(c.sock)
	} else {
		c.br.Reset(c.nc)
	}
	if c.rd != nil {
		c.rd.Reset(c.br)
	}
}

// releaseReader gives the read buffer back; what it held is dropped.
func (c *conn) releaseReader() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	c.rd.Reset(nil)
}

// logAt logs for the connection at level. The logger, with the client's
// address and, once connected, its user, vhost and session, is made only
// when something is logged: an idle connection holds none.
func (c *conn) logAt(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	h := c.srv.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	var pc [1]uintptr
	runtime.Callers(2, pc[:]) // the caller's line, for handlers that add the source
	r := slog.NewRecord(time.Now(), level, msg, pc[0])
	r.Add("remote", c.nc.RemoteAddr().String())
	if c.cc != nil {
		r.Add("user", c.user, "vhost", c.vhost.Name, "session", c.session)
	}
	r.Add(args...)
	_ = h.Handle(ctx, r)
}

// serve runs the CONNECT handshake, then the read loop on a goroutine of
// its own, started with a small stack: the handshake's deeper calls
// (password hashing, logging) do not leave an idle connection holding a
// grown stack.
func (c *conn) serve() {
	if !c.handshake() {
		c.end()
		return
	}
	go c.readLoop()
}

// end closes the connection once its reading is over, by its last reader.
func (c *conn) end() {
	c.close()
	c.releaseReader()
	c.srv.untrack(c)
}

// handshake reads frames until CONNECT; false ends the connection.
func (c *conn) handshake() bool {
	if err := c.nc.SetReadDeadline(time.Now().Add(c.srv.ConnectTimeout)); err != nil {
		return false
	}
	for {
		f, err := c.rd.Read()
		if err != nil {
			c.readFailed(err)
			return false
		}
		if f != nil {
			return c.connect(f)
		}
	}
}

// readLoop handles the frames after CONNECT and closes the connection at
// the end. When the client goes quiet between frames it parks the
// connection and returns; a new goroutine runs readLoop again when bytes
// arrive (park.go).
func (c *conn) readLoop() {
	for {
		var readBy time.Time
		if c.readLimit > 0 {
			// Any frame or heart-beat within the limit keeps the client.
			readBy = time.Now().Add(c.readLimit)
		}
		if c.br.Buffered() == 0 && c.park.rc != nil {
			if c.idle(readBy) {
				return // parked
			}
		} else if c.readLimit > 0 {
			if err := c.nc.SetReadDeadline(readBy); err != nil {
				break
			}
		}
		f, err := c.rd.Read()
		if err != nil {
			c.readFailed(err)
			break
		}
		if f == nil {
			continue // a heart-beat
		}
		if !c.handle(f) {
			break
		}
		if c.flow != nil {
			c.waitForRoom()
		}
	}
	c.end()
}

// readFailed answers a malformed frame; a closed or silent connection
// just ends.
func (c *conn) readFailed(err error) {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		c.fail(err, nil)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.logAt(slog.LevelDebug, "STOMP connection closed in the middle of a frame")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if c.cc == nil {
				c.logAt(slog.LevelWarn, "STOMP client sent no CONNECT in time")
			} else {
				c.logAt(slog.LevelWarn, "STOMP client missed its heart-beats; closing", "user", c.user)
				c.fail(protoErr("Heart-beat timeout", "no frame or heart-beat from the client within %v", c.readLimit), nil)
			}
			return
		}
		c.logAt(slog.LevelDebug, "STOMP read failed", "err", err)
	}
}

// handle dispatches a frame after CONNECT; false ends the connection.
func (c *conn) handle(f *frame.Frame) bool {
	c.frames++
	var err error
	switch f.Command {
	case frame.SEND:
		err = c.handleSend(f, true)
	case frame.SUBSCRIBE:
		err = c.handleSubscribe(f)
	case frame.UNSUBSCRIBE:
		err = c.handleUnsubscribe(f)
	case frame.ACK:
		err = c.handleAck(f, false, true)
	case frame.NACK:
		err = c.handleAck(f, true, true)
	case frame.BEGIN:
		err = c.handleBegin(f)
	case frame.COMMIT:
		err = c.handleCommit(f)
	case frame.ABORT:
		err = c.handleAbort(f)
	case frame.DISCONNECT:
		c.handleDisconnect(f)
		return false
	case frame.CONNECT, frame.STOMP:
		err = protoErr("Already connected", "a second %s frame on a connected session", f.Command)
	}
	if err != nil {
		c.fail(err, f)
		return false
	}
	return true
}

// receipt answers a frame's receipt header, if it has one, at once.
func (c *conn) receipt(f *frame.Frame) {
	if id, ok := f.Header.Contains(frame.Receipt); ok {
		c.writeFrame(frame.New(frame.RECEIPT, frame.ReceiptId, id))
	}
}

// fail sends the ERROR frame for err (about frame f, when not nil) and
// closes the connection (STOMP 1.2 section ERROR: the server closes the
// connection after it).
func (c *conn) fail(err error, f *frame.Frame) {
	ef := errorFrame(err, f)
	c.logAt(slog.LevelDebug, "STOMP error", "message", ef.Header.Get(frame.Message), "err", err)
	c.writeFrame(ef)
	c.closeSocket()
}

// writeBufs are the buffers of writeFrame and kill, shared by all
// connections: an idle connection keeps none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeFrame writes one frame now (from any goroutine).
func (c *conn) writeFrame(f *frame.Frame) {
	bp := writeBufs.Get().(*[]byte)
	b := wire.AppendFrame((*bp)[:0], f, c.esc)
	c.wmu.Lock()
	c.writeLocked(b)
	c.wmu.Unlock()
	putWriteBuf(bp, b)
}

// putWriteBuf gives a write buffer back, unless a burst made it large.
func putWriteBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxKeptWriteBuffer {
		*bp = b[:0]
		writeBufs.Put(bp)
	}
}

// writeLocked writes b, after what a direct receipt left. REQUIRES: wmu.
func (c *conn) writeLocked(b []byte) {
	if c.werr != nil {
		return
	}
	var err error
	if len(c.rest) > 0 {
		_, err = c.sock.Write(c.rest)
		c.rest = nil
	}
	if err == nil && len(b) > 0 {
		if c.sock != nil {
			_, err = c.sock.Write(b)
		} else {
			_, err = c.nc.Write(b)
		}
	}
	if err != nil {
		c.werr = err
		c.closeSocket()
		return
	}
	c.wrote.Store(true)
}

// receiptDirect writes a stored SEND's receipt from the message store's
// flusher, which runs the callbacks that make receipts, when that can be
// done at once: no other write in progress and the socket takes the frame
// without waiting (a part it does not take is written by the writer
// goroutine before anything else). It saves waking a writer goroutine per
// receipt, which is most of a receipt's cost when clients wait for each
// one. Receipts stay in order: the others wait in c.out only when they
// were put there by earlier callbacks of the same flusher, and then
// c.out is not idle.
func (c *conn) receiptDirect(id string) bool {
	if c.sock == nil || !c.out.Idle() || !c.wmu.TryLock() {
		return false
	}
	defer c.wmu.Unlock()
	if c.werr != nil || len(c.rest) > 0 {
		return false
	}
	bp := writeBufs.Get().(*[]byte)
	b := wire.AppendFrame((*bp)[:0], frame.New(frame.RECEIPT, frame.ReceiptId, id), c.esc)
	n, err := c.sock.TryWrite(b)
	if err == nil && n > 0 && n < len(b) {
		c.rest = append([]byte(nil), b[n:]...)
	}
	putWriteBuf(bp, b)
	switch {
	case err != nil:
		c.werr = err
		c.closeSocket()
		return true
	case n == 0:
		return false
	case len(c.rest) > 0:
		c.out.Put(outItem{flush: true})
	}
	c.wrote.Store(true)
	return true
}

// startHeartBeats arms the heart-beat timer (after CONNECTED).
func (c *conn) startHeartBeats() {
	if c.sendEvery <= 0 {
		return
	}
	c.wmu.Lock()
	c.beat = time.AfterFunc(c.sendEvery, c.heartBeat)
	c.wmu.Unlock()
}

// heartBeat sends an EOL when nothing else was written for a period
// (STOMP 1.2 section Heart-beating). It runs on the timer's goroutine, so
// an idle connection holds no goroutine between beats.
func (c *conn) heartBeat() {
	if !c.wrote.Swap(false) {
		if !c.wmu.TryLock() {
			c.rearm()
			return // a write in progress is as good as a beat
		}
		if c.werr == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			c.writeLocked([]byte{'\n'})
			_ = c.nc.SetWriteDeadline(time.Time{})
		}
		c.wrote.Store(false)
		c.wmu.Unlock()
	}
	c.rearm()
}

func (c *conn) rearm() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.beat != nil && c.werr == nil {
		c.beat.Reset(c.sendEvery)
	}
}

// kill closes the connection from the server side (shutdown, management)
// with an ERROR frame saying why.
func (c *conn) kill(reason string) {
	c.killOnce.Do(func() {
		bp := writeBufs.Get().(*[]byte)
		b := wire.AppendFrame((*bp)[:0], frame.New(frame.ERROR, frame.Message, "connection_forced",
			"content-type", "text/plain"), wire.Escape10)
		b = append(b[:len(b)-1], reason...)
		b = append(b, 0)
		c.wmu.Lock()
		if c.werr == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			c.writeLocked(b)
		}
		c.wmu.Unlock()
		putWriteBuf(bp, b)
		c.closeSocket()
	})
}

// close ends the connection: deliveries stop, unacknowledged messages go
// back to their queues, exclusive queues (subscriptions to topics, temp
// queues) are deleted.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.closeSocket()
	c.wmu.Lock()
	if c.beat != nil {
		c.beat.Stop()
	}
	if c.werr == nil {
		c.werr = net.ErrClosed
	}
	c.wmu.Unlock()
	c.out.Close()
	if c.cc != nil {
		c.cc.Close()
		c.logAt(slog.LevelDebug, "STOMP connection closed", "user", c.user, "frames", c.frames)
	}
}
