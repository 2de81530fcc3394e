package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/notify"
)

var leanSecret = []byte("lean-secret")

// leanSender returns a sender that may reach loopback and uses the lean
// client.
func leanSender(t testing.TB, change func(*Config)) *Sender {
	t.Helper()
	cfg := Config{Secret: leanSecret, Timeout: 5 * time.Second, AllowHTTP: true, AllowPrivate: true}
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.lean == nil {
		t.Fatal("the lean client is not used")
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func leanMessage(to, id string) *notify.Message {
	return &notify.Message{ID: id, Channel: "webhook", To: to, Body: []byte(`{"id":"` + id + `"}`), Attempt: 1}
}

// connCounter counts a test server's connections.
type connCounter struct {
	opened, closed atomic.Int32
}

func (c *connCounter) track(srv *httptest.Server) {
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.closed.Add(1)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawServer accepts connections and runs serve on each; it returns the
// http URL of its listener.
func rawServer(t testing.TB, serve func(conn net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				serve(conn, bufio.NewReader(conn))
			})
		}
	})
	return "http://" + ln.Addr().String() + "/hook"
}

// quickServer is a raw server that answers every request 200 at once,
// reading it without allocating: requests with Content-Length only.
func quickServer(t testing.TB) string {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	return rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		for {
			// Headers up to the empty line, then the body.
			length := 0
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
					for _, c := range bytes.TrimSpace(v) {
						length = length*10 + int(c-'0')
					}
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := br.Discard(length); err != nil {
				return
			}
			if _, err := conn.Write(answer); err != nil {
				return
			}
		}
	})
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// The lean client sends what net/http sent for deliver's request, less
// Accept-Encoding, which net/http adds to decompress answers for itself.
func TestLeanRequestMatchesNetHTTP(t *testing.T) {
	heads := make(chan string, 2)
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		for {
			var head bytes.Buffer
			length := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line != "Accept-Encoding: gzip\r\n" {
					head.WriteString(line)
				}
				fmt.Sscanf(line, "Content-Length: %d", &length)
				if line == "\r\n" {
					break
				}
			}
			body := make([]byte, length)
			io.ReadFull(br, body)
			heads <- head.String() + string(body)
			io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
		}
	})
	now := func() time.Time { return time.Unix(1700000000, 0) }
	lean := leanSender(t, func(c *Config) { c.Now = now })
	// A dial function of its own keeps a transport on net/http.
	old, err := New(Config{Secret: leanSecret, AllowHTTP: true, AllowPrivate: true, Now: now,
		Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if old.lean != nil {
		t.Fatal("a transport with its own dial function uses the lean client")
	}
	for _, c := range []struct {
		path, body string
		want       []string
	}{
		{"/x%20y?a=1&b=%2F", `{"id":"n-1"}`, []string{
			"POST /hook/x%20y?a=1&b=%2F HTTP/1.1\r\n", "\r\nX-Ums-Id: n-1\r\n", "\r\nContent-Type: application/json\r\n",
			"\r\nUser-Agent: UMS-Webhook/1\r\n", "\r\nContent-Length: 12\r\n", "\r\nX-Ums-Signature: t=1700000000,v1=",
		}},
		{"?", "", []string{"POST /hook? HTTP/1.1\r\n", "\r\nContent-Length: 0\r\n"}},
	} {
		m := leanMessage(to+c.path, "n-1")
		m.Body = []byte(c.body)
		for _, s := range []*Sender{old, lean} {
			if _, err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		want, got := <-heads, <-heads
		if got != want {
			t.Errorf("lean request\n%s\nnet/http request\n%s", got, want)
		}
		for _, h := range c.want {
			if !strings.Contains(got, h) {
				t.Errorf("request lacks %q:\n%s", h, got)
			}
		}
	}
}

func TestRequestHost(t *testing.T) {
	for raw, want := range map[string]string{
		"http://example.com/":          "example.com",
		"http://example.com:80/":       "example.com",
		"http://example.com:/":         "example.com",
		"http://example.com:443/":      "example.com:443",
		"https://example.com:443/":     "example.com",
		"https://example.com:8443/":    "example.com:8443",
		"https://[2001:db8::1]:443/":   "[2001:db8::1]",
		"http://[2001:db8::1]:8080/x":  "[2001:db8::1]:8080",
		"https://example.com:4430/x?y": "example.com:4430",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := requestHost(u); got != want {
			t.Errorf("%s: Host %q, want %q", raw, got, want)
		}
	}
}

// URLs the lean client would send differently from net/http stay with
// net/http.
func TestLeanURL(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://example.com/hook?a=b": true,
		"https://user:pw@example.com/": false,
		"https://bücher.example/":      false,
		"https://example.com/?q=a b":   false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := leanURL(u); got != want {
			t.Errorf("%s: leanURL = %v", raw, got)
		}
	}
}

func TestLeanKeepAlive(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			var protos atomic.Value
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("X-Request-Id", r.Header.Get(HeaderID))
				io.WriteString(w, "ok")
			}))
			var conns connCounter
			conns.track(srv)
			var change func(*Config)
			if tlsOn {
				srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					protos.Store(strings.Join(h.SupportedProtos, ","))
					return nil, nil
				}}
				srv.StartTLS()
				change = func(c *Config) {
					c.AllowHTTP = false
					c.Transport = &http.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
				}
			} else {
				srv.Start()
			}
			defer srv.Close()
			s := leanSender(t, change)
			for i := range 50 {
				id := fmt.Sprintf("n-%d", i)
				res, err := s.Send(context.Background(), leanMessage(srv.URL+"/hook", id))
				if err != nil {
					t.Fatal(err)
				}
				if res.ProviderID != id || res.Answer != "200 OK: ok" {
					t.Fatalf("result %+v", res)
				}
			}
			if n := conns.opened.Load(); n != 1 {
				t.Errorf("%d connections for 50 sequential sends, want 1", n)
			}
			if tlsOn {
				if p := protos.Load(); p != "http/1.1" {
					t.Errorf("ALPN offered %q, want http/1.1", p)
				}
			}
			s.Close()
			waitFor(t, "the idle connection to close", func() bool { return conns.closed.Load() == 1 })
		})
	}
}

func TestLeanUntrustedCertificate(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, err := leanSender(t, nil).Send(context.Background(), leanMessage(srv.URL, "n-1"))
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("untrusted certificate: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the request was sent")
	}
}

func TestLeanConnectionClose(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	var conns connCounter
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	s := leanSender(t, nil)
	for i := range 5 {
		res, err := s.Send(context.Background(), leanMessage(srv.URL, fmt.Sprint(i)))
		if err != nil || res.Answer != "200 OK: bye" {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	if n := conns.opened.Load(); n != 5 {
		t.Errorf("%d connections for 5 answers with Connection: close", n)
	}
	if n := s.lean.idleCount(); n != 0 {
		t.Errorf("%d idle connections kept", n)
	}
}

func TestLeanChunked(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, part := range []string{"busy", ", ", "come back"} {
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	var conns connCounter
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	s := leanSender(t, func(c *Config) { c.Now = fixedClock })
	for range 3 {
		_, err := s.Send(context.Background(), leanMessage(srv.URL, "n-1"))
		if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "503 Service Unavailable: busy, come back") {
			t.Fatalf("chunked 503: %v", err)
		}
		if d, ok := notify.RetryAfterOf(err); !ok || d != 3*time.Second {
			t.Fatalf("Retry-After %v %v", d, ok)
		}
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("%d connections, want the chunked answers to keep 1", n)
	}
}

func fixedClock() time.Time { return time.Unix(1700000000, 0) }

// Raw answers, each sent on its own connection, and what deliver makes of
// them.
func TestLeanRawAnswers(t *testing.T) {
	cases := []struct {
		name, answer string
		ok           bool   // sent
		transient    bool   // a transient error otherwise
		say          string // in the answer or error
	}{
		{"http10 until close", "HTTP/1.0 200 OK\r\nX-Request-Id: r1\r\n\r\nhello\nworld", true, false, "200 OK: hello world"},
		{"http10 keep-alive", "HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", true, false, "201 Created: hi"},
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, false, "200 OK: ok"},
		{"no reason", "HTTP/1.1 202\r\nContent-Length: 0\r\n\r\n", true, false, "202"},
		{"odd reason", "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n", true, false, "200 Fine Thanks"},
		{"trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", true, false, "200 OK: abc"},
		{"folded", "HTTP/1.1 301 Moved\r\nLocation: /a\r\n b\r\nContent-Length: 0\r\n\r\n", false, false, "redirect to /a b"},
		{"lf only", "HTTP/1.1 404 Not Found\nContent-Length: 4\n\nnope", false, false, "404 Not Found: nope"},
		{"bad status line", "HTPT/1.1 200 OK\r\n\r\n", false, true, "malformed"},
		{"http2 status line", "HTTP/2.0 200 OK\r\n\r\n", false, true, "malformed"},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", false, true, "malformed"},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false, true, "malformed"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false, true, "Content-Length"},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, true, "Transfer-Encoding"},
		{"huge header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", false, true, "too large"},
		{"many headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 10000) + "\r\n", false, true, "too large"},
		{"endless 100", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 10), false, true, "1xx"},
		{"closed", "", false, true, "EOF"},
		{"cut head", "HTTP/1.1 200 OK\r\nContent-Le", false, true, "EOF"},
		// The status decides when only the body is broken, as it did
		// with net/http.
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true, false, "200 OK"},
		{"short body", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\n\r\noops", false, true, "500 Internal Server Error: oops"},
	}
	answers := make(chan string, 1)
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(conn, <-answers)
	})
	s := leanSender(t, nil)
	for _, c := range cases {
		answers <- c.answer
		res, err := s.Send(context.Background(), leanMessage(to, "n-1"))
		s.Close() // each answer on a new connection
		switch {
		case c.ok:
			if err != nil || res.Answer != c.say {
				t.Errorf("%s: %+v %v, want answer %q", c.name, res, err, c.say)
			}
		case err == nil:
			t.Errorf("%s: sent (%+v)", c.name, res)
		case notify.IsPermanent(err) == c.transient || !strings.Contains(err.Error(), c.say):
			t.Errorf("%s: %v, want transient=%v saying %q", c.name, err, c.transient, c.say)
		}
	}
}

// A server closing a kept connection while it is idle costs the next send
// a retry on a new connection, not a failure.
func TestLeanServerClosesIdle(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
	}))
	var conns connCounter
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	s := leanSender(t, nil)
	for i := range 3 {
		if _, err := s.Send(context.Background(), leanMessage(srv.URL, fmt.Sprint(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if s.lean.idleCount() != 1 {
			t.Fatalf("send %d: the connection was not kept", i)
		}
		srv.CloseClientConnections()
		waitFor(t, "the server to close", func() bool { return conns.closed.Load() == int32(i+1) })
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	// The same when the server's FIN has not arrived yet: a server that
	// answers one request per connection and closes it without saying so.
	var served atomic.Int32
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		served.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	for i := range 20 {
		if _, err := s.Send(context.Background(), leanMessage(to, fmt.Sprint(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if n := served.Load(); n != 20 {
		t.Errorf("%d requests served, want 20", n)
	}
}

// The retry of a send on a dead kept connection happens once, on a new
// connection, and only then.
func TestLeanRetriesOnce(t *testing.T) {
	var requests atomic.Int32
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			if requests.Add(1) > 1 {
				return // closed without an answer
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	s := leanSender(t, nil)
	if _, err := s.Send(context.Background(), leanMessage(to, "n-1")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(context.Background(), leanMessage(to, "n-2"))
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("no answer twice: %v", err)
	}
	if n := requests.Load(); n != 3 {
		t.Fatalf("the server read %d requests, want 1 and 2 for the second send", n)
	}
	// A new connection that fails is not retried.
	if _, err := s.Send(context.Background(), leanMessage(to, "n-3")); err == nil {
		t.Fatal("no error")
	}
	if n := requests.Load(); n != 4 {
		t.Fatalf("the server read %d requests, want 4", n)
	}
}

func TestLeanTimeout(t *testing.T) {
	stalled := func(conn net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.Copy(io.Discard, br) // until the client gives up
	}
	to := rawServer(t, stalled)
	s := leanSender(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := s.Send(context.Background(), leanMessage(to, "n-1"))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Send took %v with a 200ms timeout", took)
	}
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("stalled server: %v", err)
	}

	// A slow trickle does not extend the timeout.
	to = rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range 100 {
			if _, err := io.WriteString(conn, "1\r\nx\r\n"); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	start = time.Now()
	res, err := s.Send(context.Background(), leanMessage(to, "n-1"))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Send took %v with a 200ms timeout", took)
	}
	// The status had arrived: it decides.
	if err != nil || !strings.HasPrefix(res.Answer, "200 OK") {
		t.Fatalf("trickle: %+v %v", res, err)
	}
}

func TestLeanCallerCancels(t *testing.T) {
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.Copy(io.Discard, br)
	})
	s := leanSender(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.Send(ctx, leanMessage(to, "n-1"))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Send took %v after the caller cancelled", took)
	}
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := s.Send(ctx, leanMessage(to, "n-1")); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("already cancelled: %v", err)
	}
}

// An answer longer than what is read of it closes the connection rather
// than reading it all; a shorter one keeps it.
func TestLeanLongAnswer(t *testing.T) {
	for _, c := range []struct {
		size  int
		chunk bool
		conns int32
	}{
		{maxAnswer + maxDrain, false, 1},
		{maxAnswer + maxDrain, true, 1},
		{maxAnswer + maxDrain + 1, false, 3},
		{maxAnswer + maxDrain + 1, true, 3},
		{8 << 20, false, 3},
		{8 << 20, true, 3},
	} {
		body := strings.Repeat("x", c.size)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !c.chunk {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			}
			io.WriteString(w, body[:1000])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[1000:])
		}))
		var conns connCounter
		conns.track(srv)
		srv.Start()
		s := leanSender(t, nil)
		for range 3 {
			res, err := s.Send(context.Background(), leanMessage(srv.URL, "n-1"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Answer != "200 OK: "+body[:maxAnswer] {
				t.Fatalf("answer of %d bytes", len(res.Answer))
			}
		}
		if n := conns.opened.Load(); n != c.conns {
			t.Errorf("%d bytes, chunked %v: %d connections, want %d", c.size, c.chunk, n, c.conns)
		}
		srv.Close()
	}
}

func TestLeanIdleTimeout(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	var conns connCounter
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	s := leanSender(t, nil)
	s.lean.mu.Lock()
	s.lean.idleTimeout = 50 * time.Millisecond
	s.lean.mu.Unlock()
	if _, err := s.Send(context.Background(), leanMessage(srv.URL, "n-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle connection to be closed", func() bool { return conns.closed.Load() == 1 })
	if n := s.lean.idleCount(); n != 0 {
		t.Fatalf("%d idle connections", n)
	}
	if _, err := s.Send(context.Background(), leanMessage(srv.URL, "n-2")); err != nil {
		t.Fatal(err)
	}

	// An expired connection found by a send is not used.
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s.Close()
	s.lean.mu.Lock() // the reaper reads both
	s.lean.now = func() time.Time { return time.Unix(0, now.Load()) }
	s.lean.idleTimeout = time.Hour
	s.lean.mu.Unlock()
	if _, err := s.Send(context.Background(), leanMessage(srv.URL, "n-3")); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Hour))
	if _, err := s.Send(context.Background(), leanMessage(srv.URL, "n-4")); err != nil {
		t.Fatal(err)
	}
	if n := conns.opened.Load(); n != 4 {
		t.Errorf("%d connections, want 4", n)
	}
}

func TestLeanMaxIdle(t *testing.T) {
	for _, c := range []struct {
		perHost, all int
		want         int
	}{
		{3, 0, 3},
		{3, 2, 2},
		{0, 0, http.DefaultMaxIdleConnsPerHost},
		{-1, 0, 0},
	} {
		release := make(chan struct{})
		var arrived sync.WaitGroup
		arrived.Add(8)
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			arrived.Done()
			<-release
		}))
		s := leanSender(t, func(cfg *Config) {
			cfg.Transport = &http.Transport{MaxIdleConnsPerHost: c.perHost, MaxIdleConns: c.all}
		})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if _, err := s.Send(context.Background(), leanMessage(srv.URL, fmt.Sprint(i))); err != nil {
					t.Error(err)
				}
			})
		}
		arrived.Wait()
		close(release)
		wg.Wait()
		if n := s.lean.idleCount(); n != c.want {
			t.Errorf("MaxIdleConnsPerHost %d, MaxIdleConns %d: %d idle connections, want %d", c.perHost, c.all, n, c.want)
		}
		srv.Close()
	}
}

// 32 senders sharing the pool: every notification arrives exactly once.
func TestLeanConcurrent(t *testing.T) {
	const workers, each = 32, 200
	var mu sync.Mutex
	seen := make(map[string]int)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if Verify(leanSecret, r.Header.Get(HeaderSignature), body, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(HeaderID)
		mu.Lock()
		seen[id]++
		mu.Unlock()
		w.Header().Set("X-Request-Id", id)
	}))
	var conns connCounter
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	s := leanSender(t, nil)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("n-%d-%d", w, i)
				res, err := s.Send(context.Background(), leanMessage(srv.URL, id))
				if err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
				if res.ProviderID != id {
					t.Errorf("%s: answered for %q", id, res.ProviderID)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("%d notifications arrived, want %d", len(seen), workers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
	if n := conns.opened.Load(); n > workers {
		t.Errorf("%d connections for %d senders", n, workers)
	}
}

// A transport the lean client cannot honour keeps net/http: here a proxy.
func TestLeanFallsBackForProxy(t *testing.T) {
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String())
	}))
	defer proxy.Close()
	s, err := New(Config{Secret: leanSecret, AllowHTTP: true, AllowPrivate: true,
		Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, proxy.URL))}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.lean != nil {
		t.Fatal("a proxy is configured but the lean client is used")
	}
	const to = "http://webhook.example/hook"
	if _, err := s.Send(context.Background(), leanMessage(to, "n-1")); err != nil {
		t.Fatal(err)
	}
	if got := proxied.Load(); got != to {
		t.Fatalf("the proxy saw %v, want %s", got, to)
	}

	// Without AllowPrivate the guard replaces the proxy, and the lean
	// client can be used.
	s2, err := New(Config{Secret: leanSecret, Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, proxy.URL))}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.lean == nil {
		t.Fatal("the guarded sender does not use the lean client")
	}
}

// BenchmarkSend posts to a local server that answers 200 at once,
// through the lean client and through net/http's. The server is
// net/http's (httptest), or a raw one that costs next to nothing, so that
// the client's share shows.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	quick := quickServer(b)
	for _, c := range []struct {
		name      string
		transport *http.Transport
	}{
		{"lean", nil},
		// A dial function of its own keeps a transport on net/http.
		{"net-http", &http.Transport{DialContext: (&net.Dialer{}).DialContext, MaxIdleConnsPerHost: 256}},
	} {
		for _, to := range []struct{ name, url string }{{"httptest", srv.URL + "/hook"}, {"raw", quick}} {
			b.Run(c.name+"/"+to.name, func(b *testing.B) {
				s, err := New(Config{Secret: leanSecret, AllowHTTP: true, AllowPrivate: true, Transport: c.transport})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				body := bytes.Repeat([]byte("x"), 300)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					m := &notify.Message{ID: "n-1", Channel: "webhook", To: to.url, Body: body}
					for pb.Next() {
						if _, err := s.Send(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
