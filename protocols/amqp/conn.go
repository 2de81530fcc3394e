package amqp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/internal/netpark"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// Version is reported in connection.start's server properties.
var Version = "0.1.0"

// amqpError is a protocol error: it closes the channel (soft) or the whole
// connection (hard) with Code and Text.
type amqpError struct {
	code     uint16
	text     string
	classID  uint16
	methodID uint16
}

func (e *amqpError) Error() string { return e.text }

func (e *amqpError) hard() bool { return wire.IsHardError(e.code) }

// protoErr builds an error with RabbitMQ's "CODE_NAME - text" reply text.
func protoErr(code uint16, format string, args ...any) *amqpError {
	return &amqpError{code: code, text: wire.ReplyCodeName(code) + " - " + fmt.Sprintf(format, args...)}
}

// fromCore maps a core error to its AMQP reply code.
func fromCore(err error) *amqpError {
	var ae *amqpError
	if errors.As(err, &ae) {
		return ae
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return &amqpError{code: we.Code, text: we.Error()}
	}
	code := uint16(wire.InternalError)
	switch {
	case errors.Is(err, core.ErrNotFound):
		code = wire.NotFound
	case errors.Is(err, core.ErrAccessRefused):
		code = wire.AccessRefused
	case errors.Is(err, core.ErrResourceLocked):
		code = wire.ResourceLocked
	case errors.Is(err, core.ErrPreconditionFailed):
		code = wire.PreconditionFailed
	case errors.Is(err, core.ErrNotAllowed):
		code = wire.NotAllowed
	case errors.Is(err, core.ErrCommandInvalid):
		code = wire.CommandInvalid
	case errors.Is(err, core.ErrResourceError):
		code = wire.ResourceError
	case errors.Is(err, core.ErrClosed):
		code = wire.ChannelError
	}
	return protoErr(code, "%s", err.Error())
}

// deadlineConn renews the read deadline as it reads, so a peer that stays
// silent for longer than the timeout is dropped. A renewal updates a
// runtime timer, so it is made only once an eighth of the timeout has
// passed since the last, and then for the timeout and that eighth: a
// silent peer is dropped after between 1 and 1⅛ timeouts. A new timeout
// takes effect at the next read.
type deadlineConn struct {
	net.Conn
	sock    *netpark.Sock // plain TCP: read and written with raw system calls
	timeout atomic.Int64  // nanoseconds; 0 = none

	// The reader's own: the last renewal and the timeout it was for.
	renewed  time.Time
	renewFor int64
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if t := d.timeout.Load(); t > 0 {
		now := time.Now()
		if t != d.renewFor || now.Sub(d.renewed) >= time.Duration(t/8) {
			d.Conn.SetReadDeadline(now.Add(time.Duration(t + t/8)))
			d.renewed, d.renewFor = now, t
		}
	}
	if d.sock != nil {
		return d.sock.Read(p)
	}
	return d.Conn.Read(p)
}

type conn struct {
	srv *Server
	nc  net.Conn
	dc  *deadlineConn
	log *slog.Logger
	r   *wire.Reader
	out *core.Outbox
	dec wire.MethodDecoder
	hdr wire.ContentHeader

	frameMax      uint32
	channelMax    uint16
	heartbeat     time.Duration
	cancelNotify  bool          // client understands server-sent basic.cancel
	blockedNotify bool          // client understands connection.blocked
	wantsBlocked  atomic.Bool   // blockedNotify, published once the connection is open
	forced        chan struct{} // closed by forceClose
	forcedOnce    sync.Once

	user  string
	vhost *core.Vhost
	core  *core.Conn

	chMu     sync.Mutex // guards channels for the writer; the reader owns the map
	channels map[uint16]*channel

	closing       atomic.Bool // connection.close sent, waiting for close-ok
	ended         closeEnd    // how the close handshake ended (reader only)
	writerStarted bool
	writerDone    chan struct{}
	writerFailed  chan struct{} // closed when a write fails
	drained       chan struct{} // the writer wrote a batch (capacity 1)
	writing       atomic.Int64  // bytes of the batch being written
	wrote         atomic.Bool   // a batch was written since the last heartbeat tick

	// wmu is held by whoever writes to the socket: the writer goroutine,
	// or a goroutine that delivered to this connection and writes the
	// frames itself (flushDirect).
	wmu      sync.Mutex
	rest     net.Buffers // what flushDirect could not write at once; the writer writes it first. REQUIRES: wmu
	dbufs    net.Buffers // flushDirect's batch. REQUIRES: wmu
	flushFn  func()      // c.flushDirect, made once
	stop     chan struct{}
	stopOnce sync.Once

	// scratch for encoding deliveries; guarded by the outbox's lock
	deliverM wire.BasicDeliver
	props    wire.Properties

	confirmDirty []*channel // channels with confirms to flush
}

func newConn(s *Server, nc net.Conn) *conn {
	dc := &deadlineConn{Conn: nc}
	dc.sock, _ = netpark.NewSock(connlimit.Socket(nc))
	c := &conn{
		srv: s, nc: nc, dc: dc,
		log:          s.logger().With("proto", "amqp", "remote", nc.RemoteAddr().String()),
		frameMax:     s.frameMax(),
		channelMax:   s.channelMax(),
		channels:     make(map[uint16]*channel),
		writerDone:   make(chan struct{}),
		writerFailed: make(chan struct{}),
		drained:      make(chan struct{}, 1),
		stop:         make(chan struct{}),
		forced:       make(chan struct{}),
	}
	c.out = core.NewOutbox(s.OutboxLimit, c.kickAll)
	c.flushFn = c.flushDirect
	c.r = wire.NewReader(dc)
	c.r.SetFrameMax(c.frameMax)
	return c
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.cleanup()
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	hdr, err := c.r.ReadProtocolHeader()
	if err != nil {
		return
	}
	if hdr != wire.ProtocolHeader {
		// [AMQP 4.2.2] answer an unsupported header with ours, then close.
		c.nc.Write(wire.ProtocolHeader[:])
		return
	}
	c.writerStarted = true
	go c.writeLoop()
	if err := c.handshake(); err != nil {
		if errors.Is(err, errConnClosed) {
			return
		}
		c.fail(err)
		c.drainUntilCloseOk()
		return
	}
	c.nc.SetDeadline(time.Time{})
	if c.heartbeat > 0 {
		c.dc.timeout.Store(int64(2 * c.heartbeat))
	}
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				c.fail(we)
				c.drainUntilCloseOk()
			} else if !errors.Is(err, io.EOF) && !c.closing.Load() {
				c.log.Debug("connection read failed", "err", err)
			}
			return
		}
		if err := c.handleFrame(f); err != nil {
			if errors.Is(err, errConnClosed) {
				return
			}
			c.fail(err)
			c.drainUntilCloseOk()
			return
		}
		if c.r.Buffered() == 0 {
			c.flushConfirms()
		}
		if c.out.Over() && !c.waitForWriter() {
			return
		}
	}
}

// waitForWriter stops reading once the outbox holds more than its limit
// (the reader checks outbox.over after every frame), until the writer has
// brought it under half the limit. Consumers stop at
// the same limit (conn.ready); this covers what publishing itself makes
// the server send: basic.return of mandatory messages and confirms. A
// publisher that does not read its socket is so slowed to the pace at
// which it reads (TCP backpressure) instead of making the outbox grow
// without bound. It reports false when the connection is broken.
func (c *conn) waitForWriter() bool {
	c.flushConfirms()
	for c.out.Size() > c.out.Limit()/2 {
		if c.closing.Load() {
			return true // only close-ok matters now: keep reading
		}
		select {
		case <-c.drained:
		case <-c.writerFailed:
			return false
		case <-c.forced:
		}
	}
	return true
}

var errConnClosed = errors.New("connection closed")

// closeEnd says how a connection's close handshake ended, which decides
// how cleanup lets go of the socket.
type closeEnd uint8

const (
	endAbrupt    closeEnd = iota // no handshake: read error, timeout, refused login
	endSentOk                    // we answered the peer's connection.close
	endReceiveOk                 // the peer answered our connection.close
)

// fail sends connection.close for a hard error.
func (c *conn) fail(err error) {
	ae := fromCore(err)
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.log.Info("closing connection", "code", ae.code, "reason", ae.text)
	c.send(0, &wire.ConnectionClose{ReplyCode: ae.code, ReplyText: ae.text, FailingClassID: ae.classID, FailingMethodID: ae.methodID})
}

// forceClose closes the connection from another goroutine (shutdown).
func (c *conn) forceClose(text string) {
	c.forcedOnce.Do(func() { close(c.forced) })
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.send(0, &wire.ConnectionClose{ReplyCode: wire.ConnectionForced, ReplyText: text})
	c.dc.timeout.Store(int64(closeOkTimeout))
	c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
}

// drainUntilCloseOk discards frames until the peer confirms the close.
func (c *conn) drainUntilCloseOk() {
	c.dc.timeout.Store(int64(closeOkTimeout))
	c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return
		}
		if f.Type != wire.FrameMethod || f.Channel != 0 {
			continue
		}
		m, err := c.dec.Decode(f.Payload)
		if err != nil {
			continue
		}
		switch m.(type) {
		case *wire.ConnectionCloseOk:
			c.ended = endReceiveOk
			return
		case *wire.ConnectionClose:
			c.send(0, &wire.ConnectionCloseOk{})
			c.ended = endSentOk
			return
		}
	}
}

func (c *conn) cleanup() {
	c.chMu.Lock()
	chans := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		chans = append(chans, ch)
	}
	c.channels = map[uint16]*channel{}
	c.chMu.Unlock()
	for _, ch := range chans {
		ch.sess.Close()
	}
	if c.core != nil {
		c.core.Close()
	}
	c.stopOnce.Do(func() { close(c.stop) })
	if c.writerStarted {
		select {
		case <-c.writerDone:
		case <-time.After(closeOkTimeout):
		}
	}
	c.linger()
	c.nc.Close()
}

// linger lets the peer close the socket first after a close handshake.
// Closing a socket with unread input makes the kernel answer with RST,
// which can destroy the close-ok still on its way: a client that sent
// connection.close ahead of frames still in flight (amqplib sends it past
// its queued publishes; amqp091-go may send a channel.close-ok after it)
// then never sees its close-ok. So the rest of the input is read and
// discarded until the peer closes, at most closeLinger, as RabbitMQ waits
// for the client to close.
//
// After answering the peer's close the server does not half-close either:
// a FIN right behind the close-ok races the client's own shutdown
// (amqp091-go then reports "Exception (501) EOF" from Close). After the
// peer answered our close it has nothing more to say, so the FIN goes at
// once and the discarding only keeps late bytes from causing a RST.
func (c *conn) linger() {
	switch c.ended {
	case endSentOk:
	case endReceiveOk:
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	default:
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(closeLinger))
	buf := make([]byte, 4096)
	for {
		if _, err := c.nc.Read(buf); err != nil {
			return
		}
	}
}

// send queues one method frame.
func (c *conn) send(ch uint16, m wire.Method) {
	b := c.out.Lock()
	c.out.Unlock(wire.AppendMethodFrame(b, ch, m))
}

// sendDeferred queues one method frame without waking the writer; the
// caller calls flushDirect.
func (c *conn) sendDeferred(ch uint16, m wire.Method) {
	b := c.out.Lock()
	c.out.UnlockDeferred(wire.AppendMethodFrame(b, ch, m))
}

// writeLoop drains the outbox to the socket and sends heartbeats.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var tick <-chan time.Time
	var bufs net.Buffers
	for {
		select {
		case <-c.out.Wake():
		case <-tick:
			if !c.wrote.Swap(false) {
				b := c.out.Lock()
				c.out.Unlock(wire.AppendHeartbeat(b))
			}
			continue
		case <-c.stop:
			c.flushOut(&bufs)
			return
		}
		if tick == nil && c.heartbeat > 0 {
			t := time.NewTicker(c.heartbeat / 2)
			defer t.Stop()
			tick = t.C
		}
		if err := c.flushOut(&bufs); err != nil {
			c.nc.Close()
			close(c.writerFailed)
			<-c.stop
			return
		}
		c.signalDrained()
	}
}

func (c *conn) signalDrained() {
	c.wrote.Store(true)
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// flushOut writes what flushDirect left, then everything queued, waiting
// for the socket as long as it takes (up to a 30 s write deadline).
func (c *conn) flushOut(bufs *net.Buffers) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.rest) > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		err := c.writeAll(c.rest)
		clear(c.rest)
		c.rest = nil
		if err != nil {
			c.out.Written()
			return err
		}
	}
	b, n := c.out.Take((*bufs)[:0])
	if n == 0 && len(b) == 0 {
		c.out.Written()
		return nil
	}
	c.writing.Store(int64(n))
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	err := c.writeAll(b)
	c.writing.Store(0)
	clear(b)
	*bufs = b[:0]
	c.out.Written()
	return err
}

func (c *conn) writeAll(b net.Buffers) error {
	if c.dc.sock != nil {
		_, err := c.dc.sock.Writev(b)
		return err
	}
	_, err := b.WriteTo(c.nc)
	return err
}

// flushDirect writes the frames Deliver queued, on the goroutine that made
// the delivery (the core calls it as ConsumeOptions.Flush, without locks),
// when the socket takes them at once; what it does not take, or a batch
// the writer goroutine is busy with, is left to the writer goroutine.
// A delivery to an idle consumer so costs no goroutine hand-off.
func (c *conn) flushDirect() {
	if c.dc.sock == nil || !c.wmu.TryLock() {
		c.out.Signal()
		return
	}
	if len(c.rest) > 0 {
		c.wmu.Unlock()
		c.out.Signal()
		return
	}
	b, n := c.out.Take(c.dbufs[:0])
	if n == 0 && len(b) == 0 {
		c.out.Written()
		c.wmu.Unlock()
		return
	}
	c.writing.Store(int64(n))
	rest, err := c.dc.sock.TryWritev(b)
	c.writing.Store(0)
	if err == nil && len(rest) == 0 {
		clear(b)
		c.dbufs = b[:0]
		c.out.Written()
		c.wmu.Unlock()
		c.signalDrained()
		return
	}
	// The writer goroutine writes the rest (and meets the error again);
	// the outbox's buffers stay taken until then.
	c.rest = rest
	c.dbufs = nil
	c.wmu.Unlock()
	c.out.Signal()
}

// kickAll lets the core deliver again to every channel once the outbox
// drained (core.Outbox calls it).
func (c *conn) kickAll() {
	c.chMu.Lock()
	sessions := make([]*core.Session, 0, len(c.channels))
	for _, ch := range c.channels {
		sessions = append(sessions, ch.sess)
	}
	c.chMu.Unlock()
	for _, s := range sessions {
		s.Kick()
	}
}

// readMethod reads the next method on channel 0 during the handshake.
func (c *conn) readMethod() (wire.Method, error) {
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case wire.FrameHeartbeat:
			continue
		case wire.FrameMethod:
		default:
			return nil, protoErr(wire.UnexpectedFrame, "unexpected frame type %d during handshake", f.Type)
		}
		if f.Channel != 0 {
			return nil, protoErr(wire.ChannelError, "unexpected channel %d during handshake", f.Channel)
		}
		return c.dec.Decode(f.Payload)
	}
}

func serverProperties(product string) wire.Table {
	if product == "" {
		product = "UMS"
	}
	return wire.Table{
		"product":      product,
		"version":      Version,
		"platform":     "Go " + runtime.Version(),
		"copyright":    "The UMS authors",
		"information":  "Unified multi-protocol messaging server",
		"cluster_name": hostname(),
		"capabilities": wire.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"consumer_priorities":          true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "ums"
	}
	return "ums@" + h
}

func (c *conn) handshake() error {
	certUser := auth.CertificateName(c.nc)
	mechanisms := "PLAIN AMQPLAIN"
	if certUser != "" {
		mechanisms += " EXTERNAL"
	}
	c.send(0, &wire.ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: serverProperties(c.srv.Product),
		Mechanisms: mechanisms, Locales: "en_US"})
	m, err := c.readMethod()
	if err != nil {
		return err
	}
	so, ok := m.(*wire.ConnectionStartOk)
	if !ok {
		return protoErr(wire.CommandInvalid, "expected connection.start-ok, got %s", m.Name())
	}
	authFailureClose := false
	if caps, ok := so.ClientProperties["capabilities"].(wire.Table); ok {
		c.cancelNotify, _ = caps["consumer_cancel_notify"].(bool)
		c.blockedNotify, _ = caps["connection.blocked"].(bool)
		authFailureClose, _ = caps["authentication_failure_close"].(bool)
	}
	// A connection beyond its listener's limit is refused at
	// connection.open, where clients expect a refusal (as RabbitMQ refuses
	// its connection limits); its credentials are not even checked.
	overLimit := connlimit.Refused(c.nc)
	var user string
	switch {
	case overLimit != nil:
		// refused below
	case so.Mechanism == "EXTERNAL":
		err = c.external(certUser)
		user = certUser
	default:
		var pass string
		if user, pass, err = parseCredentials(so.Mechanism, so.Response); err != nil {
			return err
		}
		_, err = c.srv.Users.Authenticate(user, pass, auth.Loopback(c.nc.RemoteAddr()))
	}
	if err != nil {
		c.log.Info("authentication failed", "user", user, "err", err)
		// A failed login costs the client time (--login-failure-delay),
		// spent by this connection's own goroutine.
		select {
		case <-c.srv.Broker.LoginFailed():
		case <-c.forced:
		}
		if !authFailureClose {
			// Clients that did not ask for a close just see the socket end.
			return errConnClosed
		}
		return protoErr(wire.AccessRefused, "Login was refused using authentication mechanism %s. For details see the broker logfile.", so.Mechanism)
	}
	c.user = user
	hb := c.srv.heartbeat()
	c.send(0, &wire.ConnectionTune{ChannelMax: c.channelMax, FrameMax: c.frameMax, Heartbeat: uint16(hb / time.Second)})
	if m, err = c.readMethod(); err != nil {
		return err
	}
	to, ok := m.(*wire.ConnectionTuneOk)
	if !ok {
		return protoErr(wire.CommandInvalid, "expected connection.tune-ok, got %s", m.Name())
	}
	if to.ChannelMax != 0 && to.ChannelMax < c.channelMax {
		c.channelMax = to.ChannelMax
	}
	if to.FrameMax != 0 {
		if to.FrameMax < wire.FrameMinSize {
			return protoErr(wire.NotAllowed, "frame_max=%d < %d min size", to.FrameMax, wire.FrameMinSize)
		}
		if to.FrameMax > c.frameMax {
			return protoErr(wire.NotAllowed, "frame_max=%d > %d max size", to.FrameMax, c.frameMax)
		}
		c.frameMax = to.FrameMax
	}
	c.heartbeat = time.Duration(to.Heartbeat) * time.Second
	if m, err = c.readMethod(); err != nil {
		return err
	}
	op, ok := m.(*wire.ConnectionOpen)
	if !ok {
		return protoErr(wire.CommandInvalid, "expected connection.open, got %s", m.Name())
	}
	if overLimit != nil {
		c.log.Info("connection refused", "reason", overLimit)
		return protoErr(wire.NotAllowed, "%s", overLimit)
	}
	v, ok := c.srv.Broker.Vhost(op.VirtualHost)
	if !ok {
		return protoErr(wire.NotAllowed, "vhost %s not found", op.VirtualHost)
	}
	if !c.srv.Users.CanAccessVhost(user, v.Name) {
		return protoErr(wire.NotAllowed, "access to vhost '%s' refused for user '%s'", v.Name, user)
	}
	adm, err := c.srv.Broker.Admit(user)
	if err != nil {
		return fromCore(err)
	}
	c.vhost = v
	c.core = v.Open(user, core.ConnInfo{
		Admission:        adm,
		Name:             c.nc.RemoteAddr().String() + " -> " + c.nc.LocalAddr().String(),
		Protocol:         "AMQP 0-9-1",
		Peer:             c.nc.RemoteAddr().String(),
		Local:            c.nc.LocalAddr().String(),
		ClientProperties: core.Table(so.ClientProperties),
		ConnectedAt:      time.Now(),
		Close: func(reason string) {
			c.forceClose("CONNECTION_FORCED - " + reason)
		},
		Authz: c.srv.Users,
	})
	c.send(0, &wire.ConnectionOpenOk{})
	c.wantsBlocked.Store(c.blockedNotify)
	return nil
}

// external logs in with the EXTERNAL mechanism (RabbitMQ's
// rabbitmq_auth_mechanism_ssl): the user is the common name of the
// verified client certificate, which must name an existing user; no
// password is checked. Offered only on connections that have one.
func (c *conn) external(certUser string) error {
	if certUser == "" {
		return protoErr(wire.AccessRefused, "EXTERNAL login needs a verified client certificate")
	}
	_, err := c.srv.Users.AuthenticateCertificate(certUser, auth.Loopback(c.nc.RemoteAddr()))
	return err
}

// parseCredentials decodes a PLAIN or AMQPLAIN start-ok response.
func parseCredentials(mechanism string, resp []byte) (user, pass string, err error) {
	switch mechanism {
	case "PLAIN":
		parts := bytes.SplitN(resp, []byte{0}, 3)
		if len(parts) != 3 {
			return "", "", protoErr(wire.AccessRefused, "malformed PLAIN response")
		}
		return string(parts[1]), string(parts[2]), nil
	case "AMQPLAIN":
		// The response is a field table without its length prefix.
		buf := binary.BigEndian.AppendUint32(nil, uint32(len(resp)))
		buf = append(buf, resp...)
		t, _, err := wire.DecodeTable(buf)
		if err != nil {
			return "", "", protoErr(wire.AccessRefused, "malformed AMQPLAIN response")
		}
		u, _ := t["LOGIN"].(string)
		p, _ := t["PASSWORD"].(string)
		return u, p, nil
	}
	return "", "", protoErr(wire.AccessRefused, "unsupported authentication mechanism '%s'", mechanism)
}

// handleFrame runs one frame.
func (c *conn) handleFrame(f wire.Frame) error {
	if c.closing.Load() {
		// After our connection.close only close/close-ok matter.
		if f.Type == wire.FrameMethod && f.Channel == 0 {
			if m, err := c.dec.Decode(f.Payload); err == nil {
				switch m.(type) {
				case *wire.ConnectionCloseOk:
					c.ended = endReceiveOk
					return errConnClosed
				case *wire.ConnectionClose:
					c.send(0, &wire.ConnectionCloseOk{})
					c.ended = endSentOk
					return errConnClosed
				}
			}
		}
		return nil
	}
	switch f.Type {
	case wire.FrameHeartbeat:
		if f.Channel != 0 {
			return protoErr(wire.FrameError, "heartbeat frame on channel %d", f.Channel)
		}
		return nil
	case wire.FrameMethod:
		m, err := c.dec.Decode(f.Payload)
		if err != nil {
			return err
		}
		if f.Channel == 0 {
			return c.handleConnectionMethod(m)
		}
		return c.handleChannelMethod(f.Channel, m)
	case wire.FrameHeader, wire.FrameBody:
		ch := c.channels[f.Channel]
		if ch == nil {
			return protoErr(wire.ChannelError, "unexpected content frame on channel %d", f.Channel)
		}
		if f.Type == wire.FrameHeader {
			return ch.onHeader(f.Payload)
		}
		return ch.onBody(f.Payload)
	}
	return protoErr(wire.FrameError, "unknown frame type %d", f.Type)
}

func (c *conn) handleConnectionMethod(m wire.Method) error {
	switch m := m.(type) {
	case *wire.ConnectionClose:
		c.send(0, &wire.ConnectionCloseOk{})
		c.ended = endSentOk
		return errConnClosed
	case *wire.ConnectionCloseOk:
		c.ended = endReceiveOk
		return errConnClosed
	case *wire.ConnectionBlocked, *wire.ConnectionUnblocked:
		return nil
	case *wire.ConnectionUpdateSecret:
		return c.updateSecret(m)
	default:
		return withMethod(protoErr(wire.CommandInvalid, "unexpected method %s on channel 0", m.Name()), m)
	}
}

// updateSecret handles connection.update-secret (RabbitMQ 3.8+), which
// clients send to renew expiring credentials without reconnecting. With
// PLAIN and AMQPLAIN the secret is the password: the user is authenticated
// again with it, and a secret that does not authenticate the same user
// closes the connection the way RabbitMQ refuses one (530 NOT_ALLOWED),
// so a client cannot keep a connection alive on a password it does not
// know, or after its password was changed.
func (c *conn) updateSecret(m *wire.ConnectionUpdateSecret) error {
	if _, err := c.srv.Users.Authenticate(c.user, m.NewSecret, auth.Loopback(c.nc.RemoteAddr())); err != nil {
		c.log.Info("secret update refused", "user", c.user, "reason", m.Reason, "err", err)
		return withMethod(protoErr(wire.NotAllowed, "New secret was refused by one of the backends"), m)
	}
	c.log.Info("secret updated", "user", c.user, "reason", m.Reason)
	c.send(0, &wire.ConnectionUpdateSecretOk{})
	return nil
}

func withMethod(e *amqpError, m wire.Method) *amqpError {
	e.classID, e.methodID = m.ClassID(), m.MethodID()
	return e
}

func (c *conn) handleChannelMethod(id uint16, m wire.Method) error {
	ch := c.channels[id]
	if ch == nil {
		if _, ok := m.(*wire.ChannelCloseOk); ok {
			return nil // a late answer for a channel already gone
		}
		if _, ok := m.(*wire.ChannelOpen); !ok {
			return withMethod(protoErr(wire.ChannelError, "expected 'channel.open' on channel %d", id), m)
		}
		if id > c.channelMax {
			return withMethod(protoErr(wire.NotAllowed, "channel %d exceeds channel_max %d", id, c.channelMax), m)
		}
		ch = newChannel(c, id)
		c.chMu.Lock()
		c.channels[id] = ch
		c.chMu.Unlock()
		c.send(id, &wire.ChannelOpenOk{})
		return nil
	}
	if ch.closing {
		// Our channel.close is on its way: only its close-ok ends the
		// channel. A crossing channel.close from the peer gets its close-ok.
		switch m.(type) {
		case *wire.ChannelCloseOk:
			c.removeChannel(id)
		case *wire.ChannelClose:
			c.send(id, &wire.ChannelCloseOk{})
		}
		return nil
	}
	if ch.expecting != expectMethod {
		return withMethod(protoErr(wire.UnexpectedFrame, "expected content frame for class 60, got method %s instead", m.Name()), m)
	}
	err := ch.handle(m)
	if err == nil {
		return nil
	}
	ae := withMethod(fromCore(err), m)
	if ae.hard() {
		return ae
	}
	ch.fail(ae)
	return nil
}

func (c *conn) removeChannel(id uint16) {
	c.chMu.Lock()
	delete(c.channels, id)
	c.chMu.Unlock()
}

// flushConfirms sends the publisher confirms accumulated while reading a batch.
func (c *conn) flushConfirms() {
	if len(c.confirmDirty) == 0 {
		return
	}
	for _, ch := range c.confirmDirty {
		ch.flushConfirms()
	}
	clear(c.confirmDirty)
	c.confirmDirty = c.confirmDirty[:0]
}

// check reports whether the user has the permission on a resource.
