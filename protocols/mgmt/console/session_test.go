package console

import (
	"net/http"
	"testing"
	"time"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
)

func TestLocalTarget(t *testing.T) {
	for target, want := range map[string]string{
		"/queues?vhost=%2F":     "/queues?vhost=%2F",
		"/":                     "/",
		"":                      "/",
		"queues":                "/",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"https://evil.example/": "/",
		"/%2F%2Fevil.example":   "/%2F%2Fevil.example", // a path of this server
	} {
		if got := localTarget(target); got != want {
			t.Errorf("localTarget(%q) = %q, want %q", target, got, want)
		}
	}
}

func cookieRequest(token string) *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: cookieName, Value: token})
	return r
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ss := newSessions(clk, time.Hour)
	u := &auth.User{Name: "ops"}
	tok, err := ss.add("ops", "pw", u)
	if err != nil {
		t.Fatal(err)
	}
	if s := ss.fromRequest(cookieRequest(tok)); s == nil || s.name != "ops" {
		t.Fatalf("fresh session: %+v", s)
	}
	if ss.fromRequest(cookieRequest(tok+"x")) != nil || ss.fromRequest(cookieRequest("")) != nil {
		t.Fatal("an unknown token opened a session")
	}
	clk.Advance(59 * time.Minute)
	if ss.fromRequest(cookieRequest(tok)) == nil {
		t.Fatal("a session used within its idle time ended")
	}
	clk.Advance(61 * time.Minute)
	if ss.fromRequest(cookieRequest(tok)) != nil {
		t.Fatal("a session idle for longer than its time lives on")
	}

	// Logging in again and again keeps at most maxSessions; the least
	// recently used go first.
	first, _ := ss.add("ops", "pw", u)
	clk.Advance(time.Second)
	second, _ := ss.add("ops", "pw", u)
	for i := 0; i < maxSessions; i++ {
		clk.Advance(time.Millisecond)
		if i == 10 {
			ss.fromRequest(cookieRequest(first)) // used: kept
		}
		if _, err := ss.add("ops", "pw", u); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(ss.byID); n > maxSessions {
		t.Fatalf("%d sessions kept, at most %d", n, maxSessions)
	}
	if ss.fromRequest(cookieRequest(second)) != nil {
		t.Fatal("the least recently used session was kept over the bound")
	}
}
