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
type clientWS struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
	mu sync.Mutex // paho writes from several goroutines
}

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

func (c *clientWS) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *clientWS) Close() error { return c.ws.Close() }
