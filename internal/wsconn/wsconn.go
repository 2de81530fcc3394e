// Package wsconn makes an upgraded WebSocket a net.Conn, for the protocol
// servers that also listen over WebSocket (MQTT, STOMP): messages are read
// as one byte stream and each Write is sent as one message.
package wsconn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// ErrTextFrame is returned by Read when a binary-only connection gets a
// text message (MQTT over WebSocket allows binary messages only).
var ErrTextFrame = errors.New("websocket text message on a binary-only connection")

// Conn is a WebSocket as a net.Conn.
type Conn struct {
	ws         *websocket.Conn
	r          io.Reader            // the current message, nil between messages
	tls        *tls.ConnectionState // the HTTP request's, nil without TLS
	binaryOnly bool
}

// New wraps ws. tlsState is the upgraded request's (nil without TLS). A
// binaryOnly connection refuses text messages and sends binary ones;
// otherwise a Write valid as UTF-8 goes as a text message, any other as
// binary.
func New(ws *websocket.Conn, tlsState *tls.ConnectionState, binaryOnly bool) *Conn {
	return &Conn{ws: ws, tls: tlsState, binaryOnly: binaryOnly}
}

// ConnectionState is the TLS state of the upgraded request, for
// certificate logins (auth.CertificateName).
func (c *Conn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return *c.tls
}

func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if c.binaryOnly && typ != websocket.BinaryMessage {
				return 0, ErrTextFrame
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

func (c *Conn) Write(p []byte) (int, error) {
	typ := websocket.BinaryMessage
	if !c.binaryOnly && utf8.Valid(p) {
		typ = websocket.TextMessage
	}
	if err := c.ws.WriteMessage(typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) Close() error                       { return c.ws.Close() }
func (c *Conn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

// NetConn returns the upgraded connection the WebSocket runs on.
func (c *Conn) NetConn() net.Conn { return c.ws.NetConn() }
