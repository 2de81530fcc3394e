package stomp

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
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
		c := newConn(s, &wsConn{ws: ws, tls: r.TLS})
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

// wsConn is a STOMP byte stream over WebSocket messages.
type wsConn struct {
	ws  *websocket.Conn
	r   io.Reader            // the current message, nil between messages
	tls *tls.ConnectionState // the HTTP request's, nil without TLS
}

// ConnectionState is the TLS state of the upgraded request, for
// certificate logins (auth.CertificateName).
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return *c.tls
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	typ := websocket.TextMessage
	if !utf8.Valid(p) {
		typ = websocket.BinaryMessage
	}
	if err := c.ws.WriteMessage(typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
