package amqp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// testServer serves AMQP on a loopback port with guest/guest on vhost "/".
func testServer(t *testing.T, outboxLimit int) (*Server, string) {
	t.Helper()
	s := &Server{Broker: core.NewBroker(), Users: auth.NewDefaultStore(), OutboxLimit: outboxLimit, Heartbeat: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if os.Getenv("UMS_TEST_LOG") != "" {
		s.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, l.Addr().String()
}

// rawClient opens a connection and channel 1 frame by frame.
func rawClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(nc)
	var dec wire.MethodDecoder
	expect := func(name string) wire.Method {
		t.Helper()
		for {
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for %s: %v", name, err)
			}
			if f.Type != wire.FrameMethod {
				continue
			}
			m, err := dec.Decode(f.Payload)
			if err != nil || m.Name() != name {
				t.Fatalf("got %v (%v), want %s", m, err, name)
			}
			return m
		}
	}
	send := func(ch uint16, m wire.Method) {
		t.Helper()
		if _, err := nc.Write(wire.AppendMethodFrame(nil, ch, m)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(wire.ProtocolHeader[:]); err != nil {
		t.Fatal(err)
	}
	expect("connection.start")
	send(0, &wire.ConnectionStartOk{Mechanism: "PLAIN", Response: []byte("\x00guest\x00guest"), Locale: "en_US"})
	tune := expect("connection.tune").(*wire.ConnectionTune)
	send(0, &wire.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	send(0, &wire.ConnectionOpen{VirtualHost: "/"})
	expect("connection.open-ok")
	send(1, &wire.ChannelOpen{})
	expect("channel.open-ok")
	nc.SetDeadline(time.Time{})
	return nc
}

// unsent is the largest number of bytes any connection of s holds for its
// client: queued in the outbox plus the batch being written.
func (s *Server) unsent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most := 0
	for c := range s.conns {
		most = max(most, c.out.Size()+int(c.writing.Load()))
	}
	return most
}

// TestOutboxBoundsReturns: a publisher of mandatory, unroutable messages
// that never reads its socket gets each message back as basic.return.
// Once its outbox is over the limit the server stops reading from it, so
// what the server holds for it stays bounded, and the publisher's writes
// stall (TCP backpressure); when the client reads again, the server
// resumes and every publish gets through.
func TestOutboxBoundsReturns(t *testing.T) {
	const limit = 256 << 10
	s, addr := testServer(t, limit)
	nc := rawClient(t, addr)

	// Small client socket buffers, so that what the kernels hold is small
	// next to 2,000 publishes of 8 KiB (16 MiB of returns).
	tc := nc.(*net.TCPConn)
	tc.SetReadBuffer(64 << 10)
	tc.SetWriteBuffer(64 << 10)
	const n, size = 2000, 8 << 10
	body := make([]byte, size)
	var frames []byte
	for range n {
		frames = wire.AppendMethodFrame(frames, 1, &wire.BasicPublish{RoutingKey: "no-such-queue", Mandatory: true})
		frames = wire.AppendHeaderFrame(frames, 1, wire.ClassBasic, size, &wire.Properties{})
		frames = wire.AppendBodyFrames(frames, 1, body, wire.DefaultFrameMax)
	}

	var most atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			most.Store(max(most.Load(), int64(s.unsent())))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-sampled }()

	// Write until the server stops taking bytes for a whole second.
	sent := 0
	for sent < len(frames) {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		k, err := nc.Write(frames[sent:min(len(frames), sent+64<<10)])
		sent += k
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("write: %v", err)
			}
			break
		}
	}
	// Bound: the outbox limit, plus the batch the writer holds, plus one
	// read batch of frames processed before the reader checks again.
	bound := int64(2*limit + 1<<20)
	if m := most.Load(); m > bound {
		t.Fatalf("the server held %d bytes for a client that does not read (bound %d; %d of %d bytes of publishes taken)", m, bound, sent, len(frames))
	}
	if sent == len(frames) {
		t.Fatalf("all %d bytes of publishes were taken from a client that reads nothing", sent)
	}
	t.Logf("publisher stalled after %d of %d bytes; server held at most %d bytes", sent, len(frames), most.Load())

	// The client reads again: the server resumes and every publish comes back.
	returned := make(chan error, 1)
	go func() {
		r := wire.NewReader(nc)
		var dec wire.MethodDecoder
		got := 0
		for got < n {
			f, err := r.ReadFrame()
			if err != nil {
				returned <- err
				return
			}
			if f.Type != wire.FrameMethod {
				continue
			}
			if m, err := dec.Decode(f.Payload); err == nil && m.Name() == "basic.return" {
				got++
			}
		}
		returned <- nil
	}()
	nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(frames[sent:]); err != nil {
		t.Fatalf("write after the client read again: %v", err)
	}
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := <-returned; err != nil {
		t.Fatalf("reading the returns: %v", err)
	}
	if m := most.Load(); m > bound {
		t.Fatalf("the server held %d bytes (bound %d)", m, bound)
	}
}
