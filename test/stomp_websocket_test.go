package test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"

	"github.com/unifiedms/ums/internal/testutil"
)

// wsStream is a client's STOMP byte stream over WebSocket messages.
type wsStream struct {
	ws *websocket.Conn
	r  io.Reader
}

func (c *wsStream) Read(p []byte) (int, error) {
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

func (c *wsStream) Write(p []byte) (int, error) {
	// Browsers send each frame as a text message.
	if err := c.ws.WriteMessage(websocket.TextMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsStream) Close() error { return c.ws.Close() }

func dialStompWS(t testing.TB, addr, subprotocol string) (*websocket.Conn, string) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: waitFor}
	ws, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return ws, ws.Subprotocol()
}

// STOMP over WebSocket at /ws with the v1x.stomp subprotocols, as
// RabbitMQ's Web-STOMP: go-stomp over a WebSocket stream talks to a TCP
// client, binary bodies included.
func TestStompWebSocket(t *testing.T) {
	b := startStomp(t, testutil.WithProtocols(testutil.STOMPWS))
	if b.STOMPWSAddr == "" {
		t.Fatal("no STOMP WebSocket listener")
	}
	for _, v := range []struct {
		sub     string
		version stomp.Version
	}{{"v10.stomp", stomp.V10}, {"v11.stomp", stomp.V11}, {"v12.stomp", stomp.V12}} {
		t.Run(v.sub, func(t *testing.T) {
			ws, got := dialStompWS(t, b.STOMPWSAddr, v.sub)
			if got != v.sub {
				t.Fatalf("subprotocol %q, want %q", got, v.sub)
			}
			c, err := stomp.Connect(&wsStream{ws: ws}, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"),
				stomp.ConnOpt.AcceptVersion(v.version), stomp.ConnOpt.Logger(quietLogger{}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.MustDisconnect()
			if c.Version() != v.version {
				t.Fatalf("version %s", c.Version())
			}
			dest := "/topic/ws." + strings.TrimSuffix(v.sub, ".stomp")
			s := stompSubscribe(t, c, dest, stomp.AckAuto)
			tcp := stompDial(t, b.STOMPAddr)
			stompSend(t, tcp, dest, "from tcp", stomp.SendOpt.Receipt)
			if m := stompRecv(t, s); string(m.Body) != "from tcp" {
				t.Fatalf("%q", m.Body)
			}
			bin := []byte{0xff, 0x00, 0xfe}
			if err := c.Send(dest, "application/octet-stream", bin, stomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
			if m := stompRecv(t, s); string(m.Body) != string(bin) {
				t.Fatalf("%q", m.Body)
			}
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Malformed input over WebSocket: an ERROR, then the end.
	ws, _ := dialStompWS(t, b.STOMPWSAddr, "v12.stomp")
	r := &wsStream{ws: ws}
	if _, err := r.Write([]byte("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\nhost:/\n\n\x00BOGUS\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(waitFor))
	data, err := io.ReadAll(r)
	if !strings.HasPrefix(string(data), "CONNECTED\n") || !strings.Contains(string(data), "ERROR\n") {
		t.Fatalf("got %q (%v)", data, err)
	}
}
