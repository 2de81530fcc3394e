package mqtt_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// dialWS opens MQTT over WebSocket to addr as a net.Conn.
func dialWS(addr string) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		ws.Close()
		return nil, errors.New("server did not accept subprotocol mqtt")
	}
	return &clientWS{Conn: ws.UnderlyingConn(), ws: ws}, nil
}

// clientWS is the client side of an MQTT over WebSocket connection.
//
// paho.golang writes a packet as several Writes (its fixed header, then
// each part), from several goroutines (a SUBSCRIBE and the keep-alive's
// first PINGREQ race right after CONNACK). Over TCP the parts go out in
// one writev; here each is a WebSocket message of its own, so clientWS is
// a sync.Locker, which paho holds across a whole packet: without it a
// PINGREQ could land inside a SUBSCRIBE, and the server would rightly end
// the connection as malformed.
type clientWS struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
	mu sync.Mutex // held by the writer of a packet (Lock)
}

// Lock and Unlock make clientWS a sync.Locker: paho takes it around each
// packet's Writes.
func (c *clientWS) Lock()   { c.mu.Lock() }
func (c *clientWS) Unlock() { c.mu.Unlock() }

func (c *clientWS) Read(p []byte) (int, error) {
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

// Write sends p as one binary message. The caller holds Lock (paho does).
func (c *clientWS) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *clientWS) Close() error { return c.ws.Close() }
