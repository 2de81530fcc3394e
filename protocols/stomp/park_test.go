package stomp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/connlimit"
)

// Parking, over real sockets: a connection quiet between frames gives up
// its goroutine and buffer, and everything a reading connection does still
// works once it is woken, or while it is parked (heart-beat limits,
// kills, shutdown).

const parkWait = 10 * time.Second

// startParkServer serves STOMP on a loopback port with connections that
// park after parkAfter of quiet.
func startParkServer(t *testing.T, parkAfter time.Duration, log *slog.Logger) (*Server, *core.Broker, string) {
	t.Helper()
	return startParkServerOn(t, parkAfter, log, func(l net.Listener) net.Listener { return l })
}

// startParkServerOn is startParkServer with the listener wrapped.
func startParkServerOn(t *testing.T, parkAfter time.Duration, log *slog.Logger, wrap func(net.Listener) net.Listener) (*Server, *core.Broker, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("connections park on Linux only")
	}
	b := core.NewBroker()
	b.AddVhost("/")
	s := &Server{Broker: b, Users: auth.NewDefaultStore(), Logger: log, parkAfter: parkAfter}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	if s.poller == nil {
		t.Fatal("no poller on Linux")
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(wrap(l)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), parkWait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
	})
	return s, b, l.Addr().String()
}

// waitUntil polls cond until it holds, or fails the test after parkWait.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(parkWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitParked(t testing.TB, s *Server, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d parked connections", n), func() bool { return s.parked() == n })
}

// rawClient speaks STOMP over a plain socket.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	fr *frame.Reader
}

func dialRaw(t testing.TB, addr string, connectHeaders string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := &rawClient{t: t, nc: nc, fr: frame.NewReader(nc)}
	r.write("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n" + connectHeaders + "\n\x00")
	r.expect(frame.CONNECTED)
	return r
}

func (r *rawClient) write(s string) {
	r.t.Helper()
	if _, err := r.nc.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, skipping heart-beats.
func (r *rawClient) read() (*frame.Frame, error) {
	if err := r.nc.SetReadDeadline(time.Now().Add(parkWait)); err != nil {
		return nil, err
	}
	for {
		f, err := r.fr.Read()
		if err != nil || f != nil {
			return f, err
		}
	}
}

func (r *rawClient) expect(cmd string) *frame.Frame {
	r.t.Helper()
	f, err := r.read()
	if err != nil {
		r.t.Fatalf("waiting for %s: %v", cmd, err)
	}
	if f.Command != cmd {
		r.t.Fatalf("got %s %v %q, want %s", f.Command, f.Header, f.Body, cmd)
	}
	return f
}

// expectClosed reads an ERROR with message msg, then the end of the
// connection.
func (r *rawClient) expectClosed(msg string) {
	r.t.Helper()
	f := r.expect(frame.ERROR)
	if got := f.Header.Get(frame.Message); got != msg {
		r.t.Fatalf("ERROR message %q (%q), want %q", got, f.Body, msg)
	}
	if f, err := r.read(); err == nil {
		r.t.Fatalf("after the ERROR: %s %v", f.Command, f.Header)
	}
}

// A client parked after CONNECT and after each step still subscribes,
// sends and receives.
func TestParkIdleAndBack(t *testing.T) {
	s, _, addr := startParkServer(t, 5*time.Millisecond, nil)
	opts := []func(*stomp.Conn) error{stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quiet{})}
	rcv, err := stomp.Dial("tcp", addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.MustDisconnect()
	snd, err := stomp.Dial("tcp", addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.MustDisconnect()
	waitParked(t, s, 2)
	sub, err := rcv.Subscribe("/queue/park", stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		waitParked(t, s, 2)
		body := fmt.Sprintf("m%d", i)
		if err := snd.Send("/queue/park", "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-sub.C:
			if m.Err != nil || string(m.Body) != body {
				t.Fatalf("got %q %v, want %q", m.Body, m.Err, body)
			}
			waitParked(t, s, 2)
			if err := rcv.Ack(m); err != nil {
				t.Fatal(err)
			}
		case <-time.After(parkWait):
			t.Fatalf("no message %d", i)
		}
	}
}

// Frames written a byte at a time, heart-beats between them, several
// frames in one write and a content-length body bigger than the read
// buffer in two writes, with the connection parked between frames.
func TestParkSplitFrames(t *testing.T) {
	s, _, addr := startParkServer(t, 5*time.Millisecond, nil)
	r := dialRaw(t, addr, "")
	r.write("SUBSCRIBE\nid:1\ndestination:/queue/split\nack:auto\n\n\x00")
	waitParked(t, s, 1)
	bytewise := func(f string) {
		for i := range len(f) {
			r.write(f[i : i+1])
			time.Sleep(time.Millisecond)
		}
	}
	bytewise("SEND\ndestination:/queue/split\nreceipt:r1\n\none\x00")
	got := map[string]string{}
	for range 2 { // the receipt and the message, in either order
		f, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		got[f.Command] = string(f.Body)
	}
	if b, ok := got[frame.MESSAGE]; !ok || b != "one" {
		t.Fatalf("got %v", got)
	}
	if _, ok := got[frame.RECEIPT]; !ok {
		t.Fatalf("got %v", got)
	}
	for range 3 {
		waitParked(t, s, 1)
		r.write("\n") // a heart-beat alone wakes it, and it parks again
	}
	waitParked(t, s, 1)
	bytewise("SEND\r\ndestination:/queue/split\r\n\r\ntwo\x00\n")
	if m := r.expect(frame.MESSAGE); string(m.Body) != "two" {
		t.Fatalf("body %q", m.Body)
	}
	waitParked(t, s, 1)
	r.write("SEND\ndestination:/queue/split\n\nthree\x00SEND\ndestination:/queue/split\n\nfour\x00\n\nSEND\ndestination:/queue/split\n\nfive\x00")
	for _, want := range []string{"three", "four", "five"} {
		if m := r.expect(frame.MESSAGE); string(m.Body) != want {
			t.Fatalf("body %q, want %q", m.Body, want)
		}
	}
	waitParked(t, s, 1)
	big := bytes.Repeat([]byte("0123456789\x00"), 1000) // NULs inside: content-length decides
	f := fmt.Sprintf("SEND\ndestination:/queue/split\ncontent-length:%d\n\n%s\x00", len(big), big)
	r.write(f[:3000])
	time.Sleep(20 * time.Millisecond)
	r.write(f[3000:])
	if m := r.expect(frame.MESSAGE); !bytes.Equal(m.Body, big) {
		t.Fatalf("big body of %d bytes, want %d", len(m.Body), len(big))
	}
	waitParked(t, s, 1)
	r.write("DISCONNECT\nreceipt:bye\n\n\x00")
	if f := r.expect(frame.RECEIPT); f.Header.Get(frame.ReceiptId) != "bye" {
		t.Fatalf("receipt %v", f.Header)
	}
	waitUntil(t, "the connection's end", func() bool { return s.connCount() == 0 })
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// A parked client that sends no heart-beat in time gets the same ERROR as
// a reading one; one that does stays, parked between its beats.
func TestParkHeartBeats(t *testing.T) {
	var logs syncBuffer
	s, _, addr := startParkServer(t, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	silent := dialRaw(t, addr, "heart-beat:100,0\n") // limit: 2·100 ms + 1 s
	beating := dialRaw(t, addr, "heart-beat:100,0\n")
	waitParked(t, s, 2)
	stop := make(chan struct{})
	beats := make(chan int)
	go func() {
		n := 0
		defer func() { beats <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := beating.nc.Write([]byte("\n")); err != nil {
				return
			}
			n++
		}
	}()
	start := time.Now()
	silent.expectClosed("Heart-beat timeout")
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("closed after %v, want about 1.2 s", d)
	}
	// The connection's attributes are made when it logs.
	want := "remote=" + silent.nc.LocalAddr().String() + " user=guest vhost=/ session=session-"
	waitUntil(t, "the log line", func() bool {
		l := logs.String()
		return strings.Contains(l, "missed its heart-beats") && strings.Contains(l, want)
	})
	waitParked(t, s, 1) // the beating one, between beats
	time.Sleep(500 * time.Millisecond)
	close(stop)
	if n := <-beats; n < 10 {
		t.Fatalf("%d beats sent", n)
	}
	beating.write("SEND\ndestination:/queue/hb\nreceipt:alive\n\nx\x00")
	beating.expect(frame.RECEIPT)
}

// Connections counted by a listener's limit park too; TLS and WebSocket
// ones never do, and neither do any with NoPark.
func TestParkLimitedListener(t *testing.T) {
	s, _, addr := startParkServerOn(t, 5*time.Millisecond, nil, func(l net.Listener) net.Listener {
		return connlimit.Wrap(l, 10)
	})
	r := dialRaw(t, addr, "")
	waitParked(t, s, 1)
	r.write("SEND\ndestination:/queue/lim\nreceipt:1\n\nx\x00")
	r.expect(frame.RECEIPT)
	waitParked(t, s, 1)
	r.nc.Close()
	waitUntil(t, "the connection's end", func() bool { return s.connCount() == 0 && s.parked() == 0 })
}

func TestNoPark(t *testing.T) {
	b := core.NewBroker()
	b.AddVhost("/")
	s := &Server{Broker: b, Users: auth.NewDefaultStore(), NoPark: true, parkAfter: time.Millisecond}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		<-served
	}()
	r := dialRaw(t, l.Addr().String(), "")
	time.Sleep(20 * time.Millisecond) // twenty times the quiet time that would park it
	if s.poller != nil || s.parked() != 0 {
		t.Fatal("parked with NoPark")
	}
	r.write("SEND\ndestination:/queue/np\nreceipt:1\n\nx\x00")
	r.expect(frame.RECEIPT)
}

// Kills (the management API's core.Conn.Kill) and shutdown reach parked
// connections.
func TestParkKill(t *testing.T) {
	s, b, addr := startParkServer(t, 5*time.Millisecond, nil)
	r := dialRaw(t, addr, "")
	keep := dialRaw(t, addr, "")
	waitParked(t, s, 2)
	local := r.nc.LocalAddr().String()
	killed := 0
	for _, cc := range b.Connections() {
		if cc.Info().Peer == local {
			if !cc.Kill("killed by a test") {
				t.Fatal("STOMP connection not killable")
			}
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("%d connections killed", killed)
	}
	r.expectClosed("connection_forced")
	waitUntil(t, "the killed connection's end", func() bool { return s.connCount() == 1 && len(b.Connections()) == 1 })
	waitParked(t, s, 1)
	keep.write("SEND\ndestination:/queue/k\nreceipt:1\n\nx\x00")
	keep.expect(frame.RECEIPT)
}

// Shutdown ends 1,000 parked connections promptly, each with an ERROR.
func TestParkShutdown(t *testing.T) {
	const n = 1000
	if runtime.GOOS != "linux" {
		t.Skip("connections park on Linux only")
	}
	b := core.NewBroker()
	b.AddVhost("/")
	s := &Server{Broker: b, Users: auth.NewDefaultStore(), parkAfter: 5 * time.Millisecond}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	clients := make([]*rawClient, n)
	var wg sync.WaitGroup
	var dialMu sync.Mutex
	for i := range n {
		wg.Go(func() {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { nc.Close() })
			nc.SetDeadline(time.Now().Add(parkWait))
			if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")); err != nil {
				t.Error(err)
				return
			}
			fr := frame.NewReader(nc)
			if f, err := fr.Read(); err != nil || f == nil || f.Command != frame.CONNECTED {
				t.Errorf("connect: %v %v", f, err)
				return
			}
			dialMu.Lock()
			clients[i] = &rawClient{t: t, nc: nc, fr: fr}
			dialMu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitParked(t, s, n)
	ctx, cancel := context.WithTimeout(context.Background(), parkWait)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if err := <-served; err != ErrServerClosed {
		t.Errorf("serve: %v", err)
	}
	for _, c := range clients {
		f, err := c.read()
		if err != nil || f.Command != frame.ERROR || !strings.Contains(string(f.Body), "shutting down") {
			t.Fatalf("after shutdown: %v %v", f, err)
		}
	}
	if s.connCount() != 0 || s.parked() != 0 {
		t.Fatalf("%d connections, %d parked after shutdown", s.connCount(), s.parked())
	}
}

// 200 clients send, receive and go quiet at random, so that wakes, parks,
// receipts from the store's completion and deliveries from the pump all
// overlap (run with -race).
func TestParkRandomCycles(t *testing.T) {
	const clients, rounds = 200, 8
	_, _, addr := startParkServer(t, 2*time.Millisecond, nil)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"),
				stomp.ConnOpt.HeartBeat(0, 50*time.Millisecond), stomp.ConnOpt.Logger(quiet{}))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.MustDisconnect()
			q := fmt.Sprintf("/queue/cycle-%d", i)
			sub, err := c.Subscribe(q, stomp.AckClient)
			if err != nil {
				t.Error(err)
				return
			}
			for r := range rounds {
				body := fmt.Sprintf("%d-%d", i, r)
				var opts []func(*frame.Frame) error
				if rand.IntN(2) == 0 {
					opts = append(opts, stomp.SendOpt.Receipt)
				}
				if err := c.Send(q, "text/plain", []byte(body), opts...); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
				select {
				case m := <-sub.C:
					if m.Err != nil || string(m.Body) != body {
						t.Errorf("got %q %v, want %q", m.Body, m.Err, body)
						return
					}
					time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
					if err := c.Ack(m); err != nil {
						t.Error(err)
						return
					}
				case <-time.After(parkWait):
					t.Errorf("client %d: no message %d", i, r)
					return
				}
			}
		})
	}
	wg.Wait()
}

// syncBuffer is a log written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// quiet drops go-stomp's logs (a subscription ended by DISCONNECT logs an
// error).
type quiet struct{}

func (quiet) Debugf(string, ...any)   {}
func (quiet) Infof(string, ...any)    {}
func (quiet) Warningf(string, ...any) {}
func (quiet) Errorf(string, ...any)   {}
func (quiet) Debug(string)            {}
func (quiet) Info(string)             {}
func (quiet) Warning(string)          {}
func (quiet) Error(string)            {}
