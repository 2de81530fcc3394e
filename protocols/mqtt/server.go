package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/netpark"
)

// ErrServerClosed is returned by Serve and ServeWebSocket after Shutdown.
var ErrServerClosed = errors.New("mqtt: server closed")

// Defaults of the Server's limits.
const (
	DefaultExchange         = "amq.topic"
	DefaultVhost            = "/"
	DefaultMaxPacketSize    = 16 << 20
	DefaultMaxInflight      = 256
	DefaultMaxSessionExpiry = 24 * 60 * 60
	DefaultMaxQueueLength   = 100_000
	DefaultTopicAliasMax    = 1024
	DefaultAnonymousUser    = "guest"
	DefaultAnonymousPass    = "guest"
	// NoSessionExpiry as MaxSessionExpiry keeps persistent sessions
	// forever.
	NoSessionExpiry = math.MaxUint32
)

// Server is the MQTT 3.1, 3.1.1 and 5.0 adapter of the core. Set its fields,
// then call Serve and/or ServeWebSocket; they may be called for several
// listeners. Fields must not change once serving.
type Server struct {
	Broker *core.Broker
	Users  *auth.Store
	Logger *slog.Logger
	// Exchange is the topic exchange PUBLISH goes to and SUBSCRIBE binds
	// to in every vhost (default amq.topic).
	Exchange string
	// DefaultVhost is used when the user name has no "vhost:" prefix
	// (default "/").
	DefaultVhost string
	// Store keeps retained messages and persistent sessions' subscriptions
	// (nil: memory only).
	Store Store
	// MaxPacketSize is the largest packet accepted, advertised in CONNACK
	// (default 16 MiB).
	MaxPacketSize uint32
	// MaxInflight caps unacknowledged QoS 1/2 deliveries per client, on
	// top of the client's receive maximum (default 256).
	MaxInflight uint16
	// MaxSessionExpiry caps a session's expiry interval in seconds; MQTT
	// 3.1.1 persistent sessions get it. Default one day, as RabbitMQ;
	// NoSessionExpiry keeps sessions forever.
	MaxSessionExpiry uint32
	// MaxQueueLength bounds each session queue. A full QoS 1 queue
	// refuses new messages (publishers get a negative acknowledgement, as
	// with x-overflow reject-publish); a full QoS 0 queue drops its oldest
	// message. A queue that a connected subscriber drains (QoS 1 or 0)
	// slows its publishers down from nine tenths of the bound on. Default 100,000;
	// negative: no bound.
	MaxQueueLength int
	// NoPark keeps a reading goroutine on every idle connection. By
	// default (on Linux) a plain TCP connection that stays quiet is
	// parked: an epoll instance shared by the server watches its socket,
	// and it holds neither a goroutine nor a read buffer (park.go).
	NoPark bool
	// TopicAliasMaximum is advertised to MQTT 5 clients (default 1024).
	TopicAliasMaximum uint16
	// AllowAnonymous lets clients connect without a user name; they get
	// DefaultUser's rights (and its limits: guest only from loopback).
	AllowAnonymous bool
	// DefaultUser and DefaultPass are the credentials anonymous clients
	// log in with (default guest/guest).
	DefaultUser, DefaultPass string

	startOnce   sync.Once
	startErr    error
	mochiServer // the embedded mochi server and its hook (mochi.go)
	log         *slog.Logger
	retained    *retainIndex
	store       Store
	exchange    string
	done        chan struct{} // closed by Shutdown
	handoff     chan net.Conn // new TCP connections to waiting handshakers (listen.go)
	locals      sync.Map      // the connections' local addresses, one copy each (localName)
	// clock is the core's: session expiry, will delays and message
	// expiry follow it. Socket deadlines (keep-alive, CONNECT timeout)
	// are real time.
	clock clock.Clock

	mu        sync.Mutex
	closing   bool                      // REQUIRES: mu
	listeners map[net.Listener]struct{} // REQUIRES: mu
	https     map[*http.Server]struct{} // REQUIRES: mu
	sessions  map[string]*session       // live sessions by mochi client id; REQUIRES: mu
	records   map[string]*sessionRecord // persistent sessions by storeKey; REQUIRES: mu
	wills     map[string]*pendingWill   // delayed wills by mochi client id; REQUIRES: mu
	expiring  map[string]*expiryTimer   // disconnected persistent sessions by mochi client id; REQUIRES: mu
	offline   map[string]client         // their last connections' clients, by mochi client id (mochi.go); REQUIRES: mu
	conns     sync.WaitGroup            // one per connection being served
	poller    *netpark.Poller           // nil: connections do not park
	parkAfter time.Duration             // the sweeper's period (defaultParkAfter; tests shorten it)
	parkMu    sync.Mutex
	parkable  map[*wireConn]struct{} // REQUIRES: parkMu
	bg        sync.WaitGroup         // background work: delayed wills, server-side disconnects
}

// start builds the embedded mochi server and loads stored state, once.
func (s *Server) start() error {
	s.startOnce.Do(func() { s.startErr = s.init() })
	return s.startErr
}

func (s *Server) init() error {
	if s.Broker == nil || s.Users == nil {
		return errors.New("mqtt: Server needs a Broker and Users")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.log = s.log.With("protocol", "mqtt")
	s.exchange = s.Exchange
	if s.exchange == "" {
		s.exchange = DefaultExchange
	}
	if s.DefaultVhost == "" {
		s.DefaultVhost = DefaultVhost
	}
	if s.MaxPacketSize == 0 {
		s.MaxPacketSize = DefaultMaxPacketSize
	}
	if s.MaxInflight == 0 {
		s.MaxInflight = DefaultMaxInflight
	}
	if s.MaxSessionExpiry == 0 {
		s.MaxSessionExpiry = DefaultMaxSessionExpiry
	}
	if s.MaxQueueLength == 0 {
		s.MaxQueueLength = DefaultMaxQueueLength
	}
	if s.DefaultUser == "" {
		s.DefaultUser, s.DefaultPass = DefaultAnonymousUser, DefaultAnonymousPass
	}
	if s.TopicAliasMaximum == 0 {
		s.TopicAliasMaximum = DefaultTopicAliasMax
	}
	s.store = s.Store
	if s.store == nil {
		s.store = &MemoryStore{}
	}
	s.clock = clock.Or(s.Broker.Clock())
	s.done = make(chan struct{})
	s.handoff = make(chan net.Conn)
	s.listeners = make(map[net.Listener]struct{})
	s.https = make(map[*http.Server]struct{})
	s.sessions = make(map[string]*session)
	s.records = make(map[string]*sessionRecord)
	s.wills = make(map[string]*pendingWill)
	s.expiring = make(map[string]*expiryTimer)
	s.offline = make(map[string]client)
	s.retained = newRetainIndex(s.store)
	s.loadStore()
	if err := s.startMochi(); err != nil {
		return err
	}
	if !s.NoPark {
		// Without a poller (netpark.ErrUnsupported, or no epoll instance
		// to be had) connections just do not park.
		s.poller, _ = netpark.New()
	}
	if s.poller != nil {
		s.parkable = make(map[*wireConn]struct{})
		if s.parkAfter == 0 {
			s.parkAfter = defaultParkAfter
		}
		s.goBackground(s.parkSweep)
	}
	return nil
}

// localName returns one shared copy of a connection's local address:
// every connection to a listener has the same, and a copy each would cost
// an idle connection 32 bytes.
func (s *Server) localName(addr string) string {
	v, _ := s.locals.LoadOrStore(addr, addr)
	return v.(string)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// addConn counts a connection about to be served, unless shutting down.
func (s *Server) addConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns.Add(1)
	return true
}

// goBackground runs fn as tracked background work, unless shutting down.
func (s *Server) goBackground(fn func()) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		fn()
	}()
}

func (s *Server) track(l net.Listener, hs *http.Server, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add && s.closing {
		return false
	}
	switch {
	case l != nil && add:
		s.listeners[l] = struct{}{}
	case l != nil:
		delete(s.listeners, l)
	case add:
		s.https[hs] = struct{}{}
	default:
		delete(s.https, hs)
	}
	return true
}

// Shutdown stops accepting connections, disconnects every client (MQTT 5
// clients get DISCONNECT 0x8B, server shutting down) and waits for their
// sessions to close, or for ctx. Persistent sessions keep their queues.
// The server closing a connection triggers its will [MQTT-3.1.2-8]: wills
// without delay are published now; delayed ones (and those still waiting)
// are stored and published when their delay ends after the next start,
// unless the client reconnects first.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.start() != nil || s.mochi == nil {
		return nil
	}
	s.mu.Lock()
	already := s.closing
	s.closing = true
	ls := make([]net.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	hss := make([]*http.Server, 0, len(s.https))
	for hs := range s.https {
		hss = append(hss, hs)
	}
	var delayed []*pendingWill
	for id, w := range s.wills {
		if w.t.Stop() {
			delayed = append(delayed, w)
		}
		delete(s.wills, id)
	}
	s.mu.Unlock()
	s.stopExpiries()
	for _, w := range delayed {
		s.saveWill(w) // its delay runs on after the next start
	}
	if !already {
		close(s.done)
	}
	for _, l := range ls {
		l.Close()
	}
	for _, hs := range hss {
		hs.Close() // hijacked WebSocket connections are closed below
	}
	waited := make(chan struct{})
	go func() {
		s.conns.Wait()
		s.bg.Wait()
		close(waited)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.disconnectAll()
		select {
		case <-waited:
			s.closeMochi()
			if s.poller != nil {
				s.poller.Close() // no connection is left to park or cancel
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("mqtt shutdown: %w", ctx.Err())
		case <-tick.C:
			// Connections that were mid-handshake are connected now.
		}
	}
}

// RetainedCount returns the number of retained messages across vhosts.
func (s *Server) RetainedCount() int {
	if s.start() != nil {
		return 0
	}
	return s.retained.size()
}
