package test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/internal/testutil"
)

// startStomp starts a broker with STOMP and AMQP (and more, when named).
func startStomp(t testing.TB, opts ...testutil.Option) *testutil.Broker {
	t.Helper()
	base := []testutil.Option{testutil.WithProtocols(testutil.STOMP, testutil.AMQP)}
	return testutil.StartBroker(t, append(base, opts...)...)
}

// stompDial connects go-stomp's client as guest to vhost "/".
func stompDial(t testing.TB, addr string, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	base := []func(*stomp.Conn) error{stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"),
		stomp.ConnOpt.Logger(quietLogger{})}
	c, err := stomp.Dial("tcp", addr, append(base, opts...)...)
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

func stompSubscribe(t testing.TB, c *stomp.Conn, dest string, ack stomp.AckMode, opts ...func(*frame.Frame) error) *stomp.Subscription {
	t.Helper()
	s, err := c.Subscribe(dest, ack, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	stompSync(t, c)
	return s
}

// stompSync waits until the server has handled every frame sent before
// (go-stomp takes a receipt on SUBSCRIBE for the subscription's end, so a
// transaction aborted with a receipt stands in).
func stompSync(t testing.TB, c *stomp.Conn) {
	t.Helper()
	if err := c.Begin().AbortWithReceipt(); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func stompSend(t testing.TB, c *stomp.Conn, dest, body string, opts ...func(*frame.Frame) error) {
	t.Helper()
	if err := c.Send(dest, "text/plain", []byte(body), opts...); err != nil {
		t.Fatalf("send to %s: %v", dest, err)
	}
}

// stompRecv waits for the next message of a subscription.
func stompRecv(t testing.TB, s *stomp.Subscription) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatalf("subscription %s closed", s.Id())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s: %v", s.Id(), m.Err)
		}
		return m
	case <-time.After(waitFor):
		t.Fatalf("no message on %s", s.Destination())
	}
	return nil
}

// stompNone checks that no message arrives for a while.
func stompNone(t testing.TB, s *stomp.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.C:
		if m.Err != nil {
			t.Fatalf("subscription %s: %v", s.Id(), m.Err)
		}
		t.Fatalf("unexpected message %q on %s", m.Body, s.Destination())
	case <-time.After(d):
	}
}

func stompBodies(t testing.TB, s *stomp.Subscription, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, string(stompRecv(t, s).Body))
	}
	return out
}

// quietLogger keeps go-stomp's notes on subscriptions ended by a
// disconnect out of the test output.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any)   {}
func (quietLogger) Infof(string, ...any)    {}
func (quietLogger) Warningf(string, ...any) {}
func (quietLogger) Errorf(string, ...any)   {}
func (quietLogger) Debug(string)            {}
func (quietLogger) Info(string)             {}
func (quietLogger) Warning(string)          {}
func (quietLogger) Error(string)            {}

// rawStomp is a STOMP connection over a plain socket, for frames a client
// library will not send.
type rawStomp struct {
	t  testing.TB
	nc net.Conn
	r  *frame.Reader
}

func dialRawStomp(t testing.TB, addr string) *rawStomp {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(3 * waitFor))
	return &rawStomp{t: t, nc: nc, r: frame.NewReader(bufio.NewReader(nc))}
}

func (c *rawStomp) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads the next frame, skipping heart-beats.
func (c *rawStomp) read() *frame.Frame {
	c.t.Helper()
	for {
		f, err := c.r.Read()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if f != nil {
			return f
		}
	}
}

// expect reads a frame and checks its command.
func (c *rawStomp) expect(cmd string) *frame.Frame {
	c.t.Helper()
	f := c.read()
	if f.Command != cmd {
		c.t.Fatalf("got %s %v %q, want %s", f.Command, headers(f), f.Body, cmd)
	}
	return f
}

// connect sends CONNECT with the headers and returns CONNECTED.
func (c *rawStomp) connect(hdrs ...string) *frame.Frame {
	c.t.Helper()
	c.write("CONNECT\nlogin:guest\npasscode:guest\nhost:/\n" + strings.Join(hdrs, "\n") + map[bool]string{true: "\n", false: ""}[len(hdrs) > 0] + "\n\x00")
	return c.expect("CONNECTED")
}

// expectError reads an ERROR frame whose message header starts with
// prefix, then the end of the connection.
func (c *rawStomp) expectError(prefix string) *frame.Frame {
	c.t.Helper()
	f := c.expect("ERROR")
	if !strings.HasPrefix(f.Header.Get("message"), prefix) {
		c.t.Fatalf("ERROR message %q (%q), want %q...", f.Header.Get("message"), f.Body, prefix)
	}
	c.expectEOF()
	return f
}

// expectEOF checks that the server closes the socket.
func (c *rawStomp) expectEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		f, err := c.r.Read()
		if err == nil && f == nil {
			continue // heart-beat
		}
		switch {
		case err == nil:
			c.t.Fatalf("got %s, want the socket closed", f.Command)
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return
		default:
			c.t.Fatalf("socket not closed: %v", err)
		}
	}
}

func headers(f *frame.Frame) []string {
	var out []string
	for i := range f.Header.Len() {
		k, v := f.Header.GetAt(i)
		out = append(out, k+":"+v)
	}
	return out
}
