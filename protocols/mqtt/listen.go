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
		go s.serveConn(listenerTCP, c)
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
