package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/webhook"
	"github.com/unifiedms/ums/notify"
)

var (
	secret = []byte("test-secret")
	clock  = time.Unix(1700000000, 0)
)

func fixedNow() time.Time { return clock }

// newSender returns a sender allowed to reach loopback test servers.
func newSender(t *testing.T, change func(*webhook.Config)) *webhook.Sender {
	t.Helper()
	cfg := webhook.Config{
		Secret:       secret,
		Timeout:      5 * time.Second,
		AllowHTTP:    true,
		AllowPrivate: true,
		Now:          fixedNow,
	}
	if change != nil {
		change(&cfg)
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(to string) *notify.Message {
	return &notify.Message{
		ID:      "n-42",
		Channel: "webhook",
		To:      to,
		Body:    []byte(`{"id":"n-42","event":"order.shipped"}`),
		Attempt: 1,
	}
}

// classified returns err's *notify.Error or fails the test.
func classified(t *testing.T, err error) *notify.Error {
	t.Helper()
	var e *notify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *notify.Error", err, err)
	}
	return e
}

func TestSendRequest(t *testing.T) {
	type seen struct {
		method, path string
		header       http.Header
		body         []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Clone(), body}
		w.Header().Set("X-Request-Id", "req-7")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	m := message(srv.URL + "/hooks/ums")
	res, err := newSender(t, nil).Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "req-7" {
		t.Errorf("ProviderID = %q, want req-7", res.ProviderID)
	}
	if res.Answer != `200 OK: {"ok":true}` {
		t.Errorf("Answer = %q", res.Answer)
	}

	r := <-got
	if r.method != http.MethodPost || r.path != "/hooks/ums" {
		t.Errorf("request %s %s", r.method, r.path)
	}
	if string(r.body) != string(m.Body) {
		t.Errorf("body %q, want %q", r.body, m.Body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "UMS-Webhook/1",
		"X-UMS-Id":     "n-42",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	sig := r.header.Get("X-UMS-Signature")
	if want := webhook.Sign(secret, clock, m.Body); sig != want {
		t.Errorf("X-UMS-Signature = %q, want %q", sig, want)
	}
	if !strings.HasPrefix(sig, "t=1700000000,v1=") {
		t.Errorf("X-UMS-Signature = %q, want the clock's unix seconds first", sig)
	}
	if err := webhook.Verify(secret, sig, r.body, clock.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("receiver cannot verify the signature: %v", err)
	}
	if err := webhook.Verify(secret, sig, append(r.body, ' '), clock, 5*time.Minute); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Errorf("tampered body: Verify = %v", err)
	}
	if err := webhook.Verify(secret, sig, r.body, clock.Add(time.Hour), 5*time.Minute); !errors.Is(err, webhook.ErrSignatureTimestamp) {
		t.Errorf("old timestamp: Verify = %v", err)
	}
}

func TestSendStatuses(t *testing.T) {
	httpDate := clock.Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	cases := []struct {
		path       string
		status     int
		header     map[string]string
		body       string
		ok         bool
		permanent  bool
		retryAfter time.Duration
		say        string // in the answer or the error
	}{
		{path: "/200", status: 200, body: "accepted", ok: true, say: "200 OK: accepted"},
		{path: "/204", status: 204, ok: true, say: "204 No Content"},
		{path: "/301", status: 301, header: map[string]string{"Location": "/moved"}, permanent: true, say: "redirect to /moved not followed"},
		{path: "/302", status: 302, header: map[string]string{"Location": "http://127.0.0.1:1/x"}, permanent: true, say: "redirect to http://127.0.0.1:1/x"},
		{path: "/400", status: 400, body: "bad payload", permanent: true, say: "400 Bad Request: bad payload"},
		{path: "/404", status: 404, permanent: true, say: "404 Not Found"},
		{path: "/410", status: 410, permanent: true, say: "410 Gone"},
		{path: "/408", status: 408, say: "408 Request Timeout"},
		{path: "/429s", status: 429, header: map[string]string{"Retry-After": "7"}, retryAfter: 7 * time.Second, say: "429"},
		{path: "/429d", status: 429, header: map[string]string{"Retry-After": httpDate}, retryAfter: 2 * time.Minute, say: "429"},
		{path: "/429", status: 429, say: "429 Too Many Requests"},
		{path: "/500", status: 500, body: "oops", say: "500 Internal Server Error: oops"},
		{path: "/502", status: 502, say: "502 Bad Gateway"},
		{path: "/503", status: 503, header: map[string]string{"Retry-After": "30"}, retryAfter: 30 * time.Second, say: "503 Service Unavailable"},
		{path: "/503past", status: 503, header: map[string]string{"Retry-After": clock.Add(-time.Hour).UTC().Format(http.TimeFormat)}, say: "503"},
		{path: "/503bad", status: 503, header: map[string]string{"Retry-After": "soon"}, say: "503"},
	}
	var moved atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { moved.Add(1) })
	for _, c := range cases {
		mux.HandleFunc(c.path, func(w http.ResponseWriter, r *http.Request) {
			for k, v := range c.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := newSender(t, nil)

	for _, c := range cases {
		res, err := s.Send(context.Background(), message(srv.URL+c.path))
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.path, err)
			} else if res.Answer != c.say {
				t.Errorf("%s: Answer = %q, want %q", c.path, res.Answer, c.say)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error (answer %q)", c.path, res.Answer)
			continue
		}
		e := classified(t, err)
		if e.Permanent != c.permanent || e.Code != c.status || e.RetryAfter != c.retryAfter {
			t.Errorf("%s: permanent=%v code=%d retryAfter=%v, want %v %d %v (%v)",
				c.path, e.Permanent, e.Code, e.RetryAfter, c.permanent, c.status, c.retryAfter, err)
		}
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.path, err, c.say)
		}
		if d, ok := notify.RetryAfterOf(err); c.retryAfter > 0 && (!ok || d != c.retryAfter) {
			t.Errorf("%s: RetryAfterOf = %v, %v", c.path, d, ok)
		}
	}
	if n := moved.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

func TestSendAnswerIsBounded(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	}))
	defer srv.Close()
	res, err := newSender(t, nil).Send(context.Background(), message(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Answer) > 4<<10+len("200 OK: ") {
		t.Fatalf("answer of %d bytes", len(res.Answer))
	}
	if !strings.HasPrefix(res.Answer, "200 OK: xxx") {
		t.Fatalf("answer %.40q", res.Answer)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	s := newSender(t, func(c *webhook.Config) { c.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := s.Send(context.Background(), message(srv.URL))
	took := time.Since(start)
	if err == nil {
		t.Fatal("a stalled server did not time out")
	}
	if e := classified(t, err); e.Permanent {
		t.Fatalf("timeout classified permanent: %v", err)
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	if took > 3*time.Second {
		t.Fatalf("Send took %v with a 200ms timeout", took)
	}
}

func TestSendHonoursCallerContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newSender(t, nil).Send(ctx, message(srv.URL))
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("want a transient failure, got %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Send took %v past the caller's deadline", took)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	_, err = newSender(t, nil).Send(context.Background(), message("http://"+addr+"/hook"))
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if e := classified(t, err); e.Permanent || e.Code != 0 {
		t.Fatalf("refused connection: permanent=%v code=%d: %v", e.Permanent, e.Code, err)
	}
}

func TestSendRefusesPrivateDestinations(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	s := newSender(t, func(c *webhook.Config) { c.AllowPrivate = false })
	for _, to := range []string{
		srv.URL,                                   // http://127.0.0.1:port
		"http://localhost:" + port + "/hook",      // a name for loopback
		"http://[::1]:" + port + "/hook",          // IPv6 loopback
		"http://169.254.169.254/latest/meta-data", // never dialled
	} {
		_, err := s.Send(context.Background(), message(to))
		if err == nil {
			t.Errorf("%s: sent", to)
			continue
		}
		if e := classified(t, err); !e.Permanent {
			t.Errorf("%s: refusal not permanent: %v", to, err)
		}
		if !errors.Is(err, webhook.ErrDestinationRefused) {
			t.Errorf("%s: error %v does not wrap ErrDestinationRefused", to, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
}

func TestSendRefusesHTTPUnlessAllowed(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()

	s := newSender(t, func(c *webhook.Config) { c.AllowHTTP = false })
	_, err := s.Send(context.Background(), message(srv.URL))
	if !notify.IsPermanent(err) || !strings.Contains(fmt.Sprint(err), "http is not allowed") {
		t.Fatalf("http URL: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the server got a request")
	}
}

func TestSendHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-UMS-Signature") == "" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()

	s := newSender(t, func(c *webhook.Config) {
		c.AllowHTTP = false
		c.Transport = srv.Client().Transport.(*http.Transport)
	})
	if _, err := s.Send(context.Background(), message(srv.URL)); err != nil {
		t.Fatal(err)
	}
	// The default transport does not trust the test certificate.
	_, err := newSender(t, func(c *webhook.Config) { c.AllowHTTP = false }).Send(context.Background(), message(srv.URL))
	if err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

func TestSendInvalidMessages(t *testing.T) {
	s := newSender(t, nil)
	if _, err := s.Send(context.Background(), nil); !notify.IsPermanent(err) {
		t.Errorf("nil message: %v", err)
	}
	for _, to := range []string{"", "/relative", "ftp://127.0.0.1/x", "http://"} {
		if _, err := s.Send(context.Background(), message(to)); !notify.IsPermanent(err) {
			t.Errorf("To %q: %v", to, err)
		}
	}
	m := message("http://127.0.0.1:1/")
	m.ID = "n-1\r\nX-Injected: 1"
	if _, err := s.Send(context.Background(), m); !notify.IsPermanent(err) {
		t.Errorf("id with CRLF: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := webhook.New(webhook.Config{}); err == nil {
		t.Error("no secret accepted")
	}
	if _, err := webhook.New(webhook.Config{Secret: secret, Timeout: -time.Second}); err == nil {
		t.Error("negative timeout accepted")
	}
	if _, err := webhook.New(webhook.Config{Secret: secret}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestSendConcurrent(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(secret, r.Header.Get("X-UMS-Signature"), body, clock, time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		hits.Add(1)
		w.Header().Set("X-Request-Id", r.Header.Get("X-UMS-Id"))
	}))
	defer srv.Close()

	s := newSender(t, nil)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			m := message(srv.URL)
			m.ID = fmt.Sprintf("n-%d", i)
			m.Body = []byte(fmt.Sprintf(`{"id":"n-%d"}`, i))
			res, err := s.Send(context.Background(), m)
			if err != nil {
				t.Errorf("%s: %v", m.ID, err)
			} else if res.ProviderID != m.ID {
				t.Errorf("%s: ProviderID %q", m.ID, res.ProviderID)
			}
		})
	}
	wg.Wait()
	if n := hits.Load(); n != 32 {
		t.Fatalf("%d verified requests, want 32", n)
	}
}
