package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/unifiedms/ums/notify"
)

// These tests skip ValidateURL (deliver instead of Send) to show that the
// dialer alone refuses the connection, as it must for host names that
// resolve to non-public addresses.

func countingServer(t *testing.T, network, addr string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func deliverTo(t *testing.T, s *Sender, to string) error {
	t.Helper()
	_, err := s.deliver(context.Background(), &notify.Message{ID: "n-1", To: to, Body: []byte(`{}`)}, mustParse(t, to))
	return err
}

func wantRefused(t *testing.T, to string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: connection not refused", to)
		return
	}
	if !notify.IsPermanent(err) || !errors.Is(err, ErrDestinationRefused) {
		t.Errorf("%s: want a permanent refusal, got %v", to, err)
	}
}

func TestDialGuardRefusesLoopback(t *testing.T) {
	srv4, hits4 := countingServer(t, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(srv4.Listener.Addr().String())

	s, err := New(Config{Secret: []byte("k"), AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, to := range []string{srv4.URL, "http://localhost:" + port + "/hook"} {
		wantRefused(t, to, deliverTo(t, s, to))
	}
	if n := hits4.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}

	srv6, hits6 := countingServer(t, "tcp6", "[::1]:0")
	wantRefused(t, srv6.URL, deliverTo(t, s, srv6.URL))
	if n := hits6.Load(); n != 0 {
		t.Fatalf("the IPv6 server got %d requests", n)
	}
}

func TestDialGuardAllowsPrivateWhenConfigured(t *testing.T) {
	srv, hits := countingServer(t, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s, err := New(Config{Secret: []byte("k"), AllowHTTP: true, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, to := range []string{srv.URL, "http://localhost:" + port + "/hook"} {
		if err := deliverTo(t, s, to); err != nil {
			t.Errorf("%s: %v", to, err)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("the server got %d requests, want 2", n)
	}
}

// A transport given in Config cannot carry a way around the guard.
func TestDialGuardAppliesToTransportOverride(t *testing.T) {
	srv, hits := countingServer(t, "tcp4", "127.0.0.1:0")
	var dialled atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialled.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		// A proxy would otherwise be the address the dialer checks.
		Proxy: http.ProxyURL(mustURL(t, srv.URL)),
	}
	s, err := New(Config{Secret: []byte("k"), AllowHTTP: true, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantRefused(t, srv.URL, deliverTo(t, s, srv.URL))
	if dialled.Load() != 0 || hits.Load() != 0 {
		t.Fatalf("the override was used: dialled %d, requests %d", dialled.Load(), hits.Load())
	}
	if tr.Proxy == nil || tr.DialContext == nil {
		t.Fatal("New changed the caller's transport")
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
