package stomp

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unifiedms/ums/internal/wsconn"
)

// STOMP over WebSocket, as RabbitMQ's Web-STOMP plugin: path /ws,
// subprotocols v10.stomp, v11.stomp and v12.stomp (browser clients such as
// @stomp/stompjs). Frames may span WebSocket messages and a message may
// hold several; the server sends text messages, or binary ones for bytes
// that are not UTF-8 (a binary body), which a text message cannot carry.

// WebSocketPath is where ServeWebSocket accepts connections.
const WebSocketPath = "/ws"

// ServeWebSocket accepts STOMP over WebSocket connections on l until
// Shutdown. It always returns an error: ErrServerClosed after Shutdown.
func (s *Server) ServeWebSocket(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	up := &websocket.Upgrader{
		Subprotocols:    []string{"v12.stomp", "v11.stomp", "v10.stomp", "stomp"},
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// Pages served anywhere connect, as with RabbitMQ's Web-STOMP;
		// authentication is STOMP's own.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
		if s.isClosing() {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered the request
		}
		ws.SetReadLimit(int64(s.limits.MaxFrameSize) + 1<<16)
		c := newConn(s, wsconn.New(ws, r.TLS, false))
		if !s.track(c) {
			ws.Close()
			return
		}
		c.serve()
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if !s.addListener(hs) {
		l.Close()
		return ErrServerClosed
	}
	defer s.removeListener(hs)
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || s.isClosing() {
		return ErrServerClosed
	}
	return err
}
