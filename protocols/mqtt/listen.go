package mqtt

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unifiedms/ums/internal/wsconn"
)

// Listeners: MQTT over TCP and over WebSocket.

// WebSocketPath is where ServeWebSocket accepts MQTT over WebSocket, as
// RabbitMQ's Web-MQTT plugin does.
const WebSocketPath = "/ws"

// Listener ids, as mochi and the management listing see them.
const (
	listenerTCP = "mqtt"
	listenerWS  = "mqtt-ws"
)

// Serve accepts MQTT connections on l until Shutdown. It always returns an
// error: ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	if !s.track(l, nil, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.track(l, nil, false)
	var backoff time.Duration
	for {
		c, err := l.Accept()
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
		if !s.addConn() {
			c.Close()
			return ErrServerClosed
		}
		s.dispatch(c)
	}
}

// New TCP connections go to handshakers, goroutines that run one CONNECT
// handshake after another (serveConn). The handshake runs deep (login,
// session setup in the core) and grows a goroutine's stack to 16 KiB or
// more: a goroutine per connection paid for that growth, the stack copied
// at each doubling, and for the goroutine itself, at every connect; at
// thousands of connects per second that was a tenth of the broker's CPU.
// A handshaker that is done waits a while (handshakerIdle) for the next
// connection with its grown stack. The accept loop hands a connection to
// one that waits, or starts a new one when none does, so a client slow to
// send CONNECT holds up no other.

// handshakerIdle is how long a handshaker waits for a new connection
// before it exits.
const handshakerIdle = 2 * time.Second

// dispatch hands a new connection to a waiting handshaker, or to a new
// one.
func (s *Server) dispatch(c net.Conn) {
	select {
	case s.handoff <- c:
	default:
		go s.handshaker(c)
	}
}

// handshaker serves c, then the connections dispatch hands it, until
// none came for handshakerIdle or the server shuts down.
func (s *Server) handshaker(c net.Conn) {
	idle := time.NewTimer(handshakerIdle)
	defer idle.Stop()
	for {
		s.serveConn(listenerTCP, c)
		idle.Reset(handshakerIdle)
		select {
		case c = <-s.handoff:
		case <-idle.C:
			return
		case <-s.done:
			return
		}
	}
}

// ServeWebSocket accepts MQTT over WebSocket connections on l, at
// WebSocketPath with subprotocol "mqtt", until Shutdown.
func (s *Server) ServeWebSocket(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	up := &websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// Browsers connect from pages served anywhere, as with
		// RabbitMQ's Web-MQTT; authentication is MQTT's.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
		if !s.addConn() {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			s.conns.Done()
			return // Upgrade answered the request
		}
		s.serveConn(listenerWS, wsconn.New(ws, r.TLS, true)) // binary messages only [MQTT-6.0.0-1]
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if !s.track(nil, hs, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.track(nil, hs, false)
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || s.isClosing() {
		return ErrServerClosed
	}
	return err
}
