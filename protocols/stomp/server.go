package stomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/netpark"
	"github.com/unifiedms/ums/protocols/stomp/wire"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("stomp: server closed")

// Defaults of the Server's settings.
const (
	DefaultVhost          = "/"
	DefaultConnectTimeout = 10 * time.Second
	DefaultUser           = "guest"
	DefaultPass           = "guest"
)

// Server is the STOMP 1.0, 1.1 and 1.2 adapter of the core. Set its
// fields, then call Serve (for one or more listeners). Fields must not
// change once serving.
type Server struct {
	Broker *core.Broker
	Users  *auth.Store
	Logger *slog.Logger
	// DefaultVhost is the vhost of a CONNECT without a host header
	// (default "/").
	DefaultVhost string
	// MaxFrameSize, MaxHeaders and MaxHeaderLength bound the frames
	// clients send (defaults 16 MiB, 1000, 100 KiB); a frame over them
	// gets an ERROR frame and the connection is closed.
	MaxFrameSize    int
	MaxHeaders      int
	MaxHeaderLength int
	// ConnectTimeout is how long a new connection has to send CONNECT
	// (default 10 s).
	ConnectTimeout time.Duration
	// DefaultUser and DefaultPass are the credentials of a CONNECT
	// without login, as RabbitMQ's STOMP plugin (default guest/guest,
	// which may log in from loopback only); a DefaultUser of "-" refuses
	// such clients.
	DefaultUser, DefaultPass string
	// Product is the name in CONNECTED's server header (default UMS).
	Product string
	// NoPark keeps a reading goroutine and a read buffer on every idle
	// connection. By default (on Linux) a plain TCP connection quiet
	// between frames is parked: an epoll instance shared by the server
	// watches its socket, and it holds neither (park.go).
	NoPark bool

	poller    *netpark.Poller // nil: connections do not park
	parkAfter time.Duration   // quiet time before parking (defaultParkAfter; tests shorten it)

	startOnce sync.Once
	startErr  error
	log       *slog.Logger
	limits    wire.Limits
	clock     clock.Clock
	done      chan struct{} // closed by Shutdown

	mu        sync.Mutex
	closing   bool                   // REQUIRES: mu
	listeners map[io.Closer]struct{} // net.Listener, *http.Server; REQUIRES: mu
	conns     map[*conn]struct{}     // REQUIRES: mu
	wg        sync.WaitGroup         // one per connection being served
}

func (s *Server) start() error {
	s.startOnce.Do(func() {
		if s.Broker == nil || s.Users == nil {
			s.startErr = errors.New("stomp: Server needs a Broker and Users")
			return
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		s.log = s.log.With("protocol", "stomp")
		if s.DefaultVhost == "" {
			s.DefaultVhost = DefaultVhost
		}
		if s.ConnectTimeout <= 0 {
			s.ConnectTimeout = DefaultConnectTimeout
		}
		if s.DefaultUser == "" {
			s.DefaultUser, s.DefaultPass = DefaultUser, DefaultPass
		}
		if s.Product == "" {
			s.Product = "UMS"
		}
		s.limits = wire.Limits{MaxFrameSize: s.MaxFrameSize, MaxHeaders: s.MaxHeaders, MaxHeaderLength: s.MaxHeaderLength}
		s.clock = clock.Or(s.Broker.Clock())
		s.done = make(chan struct{})
		s.listeners = make(map[io.Closer]struct{})
		s.conns = make(map[*conn]struct{})
		if !s.NoPark {
			// Without a poller (netpark.ErrUnsupported, or no epoll
			// instance to be had) connections just do not park.
			s.poller, _ = netpark.New()
		}
		if s.parkAfter == 0 {
			s.parkAfter = defaultParkAfter
		}
	})
	return s.startErr
}

// Serve accepts STOMP connections on l until Shutdown. It always returns
// an error: ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	if !s.addListener(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.removeListener(l)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// addListener tracks what Shutdown closes, unless shutting down.
func (s *Server) addListener(l io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) removeListener(l io.Closer) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track counts a connection about to be served, unless shutting down.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting connections, closes every connection (clients
// get an ERROR frame first) and waits for them to end, or for ctx.
// Unacknowledged messages go back to their queues.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.start() != nil {
		return nil
	}
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	ls := make([]io.Closer, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.kill("server shutting down")
	}
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		if s.poller != nil {
			s.poller.Close() // no connection is left to park or cancel
		}
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stomp shutdown: %w", ctx.Err())
	}
}

// parked returns how many connections are parked (for tests).
func (s *Server) parked() int {
	if s.poller == nil {
		return 0
	}
	return s.poller.Parked()
}
