package test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/protocols/amqp/wire"
)

func TestConnectionBadCredentials(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "guest", "wrong"},
		{"unknown user", "nobody", "guest"},
		{"empty password", "guest", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := amqp.Dial(s.urlWith(t, tc.user, tc.pass, "/"))
			if err == nil {
				conn.Close()
				t.Fatal("connected with bad credentials")
			}
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
				t.Fatalf("got %T %v, want an *amqp.Error with code 403", err, err)
			}
			// amqp091-go does not announce authentication_failure_close, so
			// the broker just drops the socket, as RabbitMQ does, and the
			// client reports amqp.ErrCredentials.
			if ae != amqp.ErrCredentials {
				t.Fatalf("got %v, want amqp.ErrCredentials", ae)
			}
		})
	}
	// The right credentials still work, with the vhost spelled out.
	conn, err := amqp.Dial(s.urlWith(t, "guest", "guest", "/"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestConnectionMissingVhost(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, err := amqp.Dial(s.urlWith(t, "guest", "guest", "no-such-vhost"))
	if err == nil {
		conn.Close()
		t.Fatal("connected to a missing vhost")
	}
	wantReply(t, err, amqp.NotAllowed, "NOT_ALLOWED - vhost no-such-vhost not found")
}

func TestConnectionHeartbeat(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, err := amqp.DialConfig(s.URL, amqp.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Config.Heartbeat != time.Second {
		t.Fatalf("negotiated heartbeat %v, want 1s", conn.Config.Heartbeat)
	}
	closed := notifyConnClose(conn)
	// Idle for three intervals: heartbeats in both directions keep it open.
	select {
	case e := <-closed:
		t.Fatalf("connection closed while idle: %v", e)
	case <-time.After(3 * time.Second):
	}
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("connection unusable after idling: %v", err)
	}
}

// TestConnectionSilentPeerDropped: a client that asked for heartbeats
// every second and then sends nothing is dropped after two seconds of
// silence (the server renews its read deadline lazily: at most an eighth
// later), while the server's own heartbeats keep coming until then.
func TestConnectionSilentPeerDropped(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	c := dialRaw(t, s)
	c.handshakeHeartbeat(1)
	opened := time.Now()
	beats := 0
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %v: %v, want the socket closed", time.Since(opened).Round(time.Millisecond), err)
			}
			break
		}
		if f.Type == wire.FrameHeartbeat {
			beats++
		}
	}
	silent := time.Since(opened)
	if silent < 1900*time.Millisecond || silent > 4*time.Second {
		t.Fatalf("dropped after %v of silence, want about 2 s (two heartbeat intervals)", silent.Round(time.Millisecond))
	}
	if beats < 2 {
		t.Fatalf("%d heartbeats from the server before it dropped the peer, want at least 2", beats)
	}
}

func TestConnectionWrongProtocolHeader(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"AMQP 0-10", "AMQP\x01\x01\x00\x0a"},
		{"HTTP", "GET / HT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			c.write([]byte(tc.header))
			var got [8]byte
			if _, err := io.ReadFull(c.nc, got[:]); err != nil {
				t.Fatalf("reading the server's protocol header: %v", err)
			}
			if got != wire.ProtocolHeader {
				t.Fatalf("got header %q, want %q", got[:], wire.ProtocolHeader[:])
			}
			c.expectEOF(2 * time.Second)
		})
	}
}

func TestConnectionFrameErrors(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	channelOpen := wire.AppendMethodFrame(nil, 1, &wire.ChannelOpen{})
	badEnd := append([]byte(nil), channelOpen...)
	badEnd[len(badEnd)-1] = 0
	unknownType := append([]byte(nil), channelOpen...)
	unknownType[0] = 9
	huge := wire.AppendFrameHeader(nil, wire.FrameBody, 1, 1<<30)

	for _, tc := range []struct {
		name   string
		open   bool // open channel 1 first
		frame  []byte
		code   uint16
		prefix string
	}{
		{"bad frame end octet", false, badEnd, wire.FrameError, "FRAME_ERROR"},
		{"unknown frame type", false, unknownType, wire.FrameError, "FRAME_ERROR"},
		{"frame larger than frame-max", true, huge, wire.FrameError, "FRAME_ERROR"},
		{"method on an unopened channel", false, wire.AppendMethodFrame(nil, 7, &wire.BasicQos{PrefetchCount: 1}), wire.ChannelError, "CHANNEL_ERROR"},
		{"unknown method", true, appendRawMethod(nil, 1, 60, 999), wire.CommandInvalid, "COMMAND_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == wire.CommandInvalid && os.Getenv("UMS_TEST_AMQP_URL") != "" {
				t.Skip("RabbitMQ drops the connection without a connection.close")
			}
			c := dialRaw(t, s)
			c.handshake()
			if tc.open {
				c.sendMethod(1, &wire.ChannelOpen{})
				if _, m := c.readMethod(); m.Name() != "channel.open-ok" {
					t.Fatalf("got %s, want channel.open-ok", m.Name())
				}
			}
			c.write(tc.frame)
			ch, m := c.readMethod()
			cl, ok := m.(*wire.ConnectionClose)
			if !ok || ch != 0 {
				t.Fatalf("got %s on channel %d, want connection.close", m.Name(), ch)
			}
			if cl.ReplyCode != tc.code || !strings.HasPrefix(cl.ReplyText, tc.prefix) {
				t.Fatalf("connection.close %d %q, want %d %s…", cl.ReplyCode, cl.ReplyText, tc.code, tc.prefix)
			}
			c.sendMethod(0, &wire.ConnectionCloseOk{})
			c.expectEOF(waitFor)
		})
	}
}

// appendRawMethod appends a method frame with ids and no arguments.
func appendRawMethod(b []byte, channel, classID, methodID uint16) []byte {
	b = wire.AppendFrameHeader(b, wire.FrameMethod, channel, 4)
	b = binary.BigEndian.AppendUint16(b, classID)
	b = binary.BigEndian.AppendUint16(b, methodID)
	return append(b, wire.FrameEnd)
}

func TestConnectionRawHandshake(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	c := dialRaw(t, s)
	c.handshake()
	c.sendMethod(1, &wire.ChannelOpen{})
	if _, m := c.readMethod(); m.Name() != "channel.open-ok" {
		t.Fatalf("got %s, want channel.open-ok", m.Name())
	}
	c.sendMethod(0, &wire.ConnectionClose{ReplyCode: wire.ReplySuccess, ReplyText: "bye"})
	if _, m := c.readMethod(); m.Name() != "connection.close-ok" {
		t.Fatalf("got %s, want connection.close-ok", m.Name())
	}
}

func TestConnectionServerShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	var closes []<-chan *amqp.Error
	for range 3 {
		conn := s.dial(t)
		closes = append(closes, notifyConnClose(conn))
		ch := newChannel(t, conn)
		q := declareQueue(t, ch, "")
		consume(t, ch, q, false)
		publish(t, ch, "", q, "in flight")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, closed := range closes {
		closedWith(t, closed, amqp.ConnectionForced, "CONNECTION_FORCED - ")
	}
	// Nothing listens any more.
	nc, err := net.DialTimeout("tcp", s.hostPort(t), time.Second)
	if err == nil {
		nc.Close()
		t.Fatal("the listener still accepts connections after shutdown")
	}
	// startServer's cleanup shuts the broker down a second time.
}
