// Package amqp is the AMQP 0-9-1 adapter: it speaks the protocol to clients
// (RabbitMQ's dialect, including its extensions) and turns methods into
// calls on the core.
//
// Each connection has two goroutines: a reader that decodes frames and runs
// methods in order, and a writer that drains the connection's outbox (the
// core's delivery helper core.Outbox) with one writev per batch. There is
// no goroutine per channel. Deliveries are encoded by the core's delivery
// callback straight into the outbox.
//
// A plain TCP connection is read and written with raw system calls
// (netpark.Sock). Frames that a delivery or a confirm queued are written
// by the goroutine that made them, once it let go of the core's locks
// (ConsumeOptions.Flush, conn.flushDirect), when the writer is idle and
// the socket takes them at once; otherwise the writer goroutine is woken.
// At a steady moderate rate a message so costs no goroutine hand-off.
//
// Lock order: conn.wmu (held by whoever writes the socket) -> core locks
// -> the outbox's lock (held between its Lock and Unlock); flushDirect
// only tries conn.wmu, so it may run anywhere outside core locks. Channel
// state is owned by the reader goroutine; the fields deliveries touch are
// immutable after channel.open or guarded by the outbox's lock.
package amqp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// Defaults, as RabbitMQ 3.13.
const (
	DefaultFrameMax       = 128 << 10
	DefaultChannelMax     = 2047
	DefaultHeartbeat      = 60 * time.Second
	DefaultMaxMessageSize = 128 << 20
	handshakeTimeout      = 10 * time.Second
	closeOkTimeout        = 5 * time.Second
	// closeLinger bounds how long a closed connection waits for the peer to
	// close the socket (see conn.linger).
	closeLinger = 2 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("amqp: server closed")

// Server serves AMQP 0-9-1 connections. Broker and Users must be set; the
// other fields have defaults when zero.
type Server struct {
	Broker *core.Broker
	Users  *auth.Store
	Logger *slog.Logger

	FrameMax       uint32        // largest frame accepted and sent
	ChannelMax     uint16        // channels per connection
	Heartbeat      time.Duration // suggested heartbeat interval; negative disables
	MaxMessageSize int           // largest message body accepted
	Product        string        // product name in connection.start; "UMS" when empty
	// OutboxLimit is the number of unsent bytes above which a connection's
	// consumers stop receiving deliveries until the socket drains.
	OutboxLimit int

	watchOnce sync.Once

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

func (s *Server) frameMax() uint32 {
	if s.FrameMax == 0 {
		return DefaultFrameMax
	}
	return s.FrameMax
}

func (s *Server) channelMax() uint16 {
	if s.ChannelMax == 0 {
		return DefaultChannelMax
	}
	return s.ChannelMax
}

func (s *Server) heartbeat() time.Duration {
	if s.Heartbeat == 0 {
		return DefaultHeartbeat
	}
	if s.Heartbeat < 0 {
		return 0
	}
	return s.Heartbeat
}

func (s *Server) maxMessageSize() int {
	if s.MaxMessageSize == 0 {
		return DefaultMaxMessageSize
	}
	return s.MaxMessageSize
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Serve accepts connections on l until Shutdown. It always returns a non-nil error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.watchOnce.Do(func() { s.Broker.WatchFlow(s.notifyBlocked) })
	var tempDelay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay *= 2; tempDelay > time.Second {
					tempDelay = time.Second
				}
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes every connection with 320
// CONNECTION_FORCED and waits for them to finish or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.forceClose("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		return ctx.Err()
	}
}

// notifyBlocked tells clients that asked for it that publishing is blocked
// or unblocked.
func (s *Server) notifyBlocked(blocked bool, reason string) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.wantsBlocked.Load() {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		if blocked {
			c.send(0, &wire.ConnectionBlocked{Reason: reason})
		} else {
			c.send(0, &wire.ConnectionUnblocked{})
		}
	}
}

// ConnCount returns the number of open connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
