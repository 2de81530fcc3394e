package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/testutil"
)

// notifyT0 is the fake clock's start: 22:00 in Seoul (13:00 UTC).
var notifyT0 = time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)

// A webhook answering 503 twice is retried and then sent; the history
// shows the three attempts.
func TestNotifyRetryThenSent(t *testing.T) {
	e := startNotify(t)
	e.hook.setAnswer(func(n int, _ []byte) (int, http.Header) {
		if n <= 2 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	events := eventQueue(t, e.b.AMQPURL)
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	got := strings.Join(eventsOf(t, events, a.ID, "sent"), ",")
	if got != "queued,sending,retrying,sending,retrying,sending,sent" {
		t.Fatalf("events %s", got)
	}
	r := waitStatus(t, e.b, a.ID, "sent")
	if len(r.Attempts) != 3 || r.Attempts[0].Status != "retrying" || !strings.Contains(r.Attempts[0].Error, "503") ||
		r.Attempts[2].Status != "sent" || r.Attempts[2].Attempt != 3 {
		t.Fatalf("history %+v", r.Attempts)
	}
	if n := len(e.hook.received()); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

// A 429 with Retry-After is retried no sooner than asked (fake clock).
func TestNotifyRetryAfter(t *testing.T) {
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk))
	e.hook.setAnswer(func(n int, _ []byte) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}}
		}
		return http.StatusOK, nil
	})
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, a.ID, "retrying")
	clk.Advance(29 * time.Second)
	// A second notification sent meanwhile arrives, the first is not
	// retried yet.
	b := submit(t, e.b, webhookNote(e.hook.URL+"/marker", nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, b.ID, "sent")
	if n := len(e.hook.received()); n != 2 {
		t.Fatalf("%d calls before Retry-After passed, want 2", n)
	}
	clk.Advance(time.Second)
	waitStatus(t, e.b, a.ID, "sent")
}

// After max attempts a notification is dead-lettered with its last error;
// retrying it by id sends it.
func TestNotifyDeadLetterAndRetry(t *testing.T) {
	e := startNotify(t, testutil.WithConfig(func(c *config.Config) { c.NotifyMaxAttempts = 3 }))
	e.hook.setAnswer(func(int, []byte) (int, http.Header) { return http.StatusBadGateway, nil })
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	r := waitStatus(t, e.b, a.ID, "dead_lettered")
	if !strings.Contains(r.Error, "502") || len(r.Attempts) != 3 {
		t.Fatalf("dead-lettered record %+v", r)
	}
	var dead struct {
		IDs []string `json:"ids"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(dead.IDs) == 0 && time.Now().Before(deadline) {
		apiCall(t, e.b, "GET", "/api/v1/dead-letters", nil, nil, &dead)
	}
	if len(dead.IDs) != 1 || dead.IDs[0] != a.ID {
		t.Fatalf("dead letters %v", dead.IDs)
	}
	// Retrying one that is not dead-lettered is refused.
	if got := apiCall(t, e.b, "POST", "/api/v1/notifications/nope/retry", nil, nil, nil); got != http.StatusConflict {
		t.Fatalf("retry of an unknown id: %d", got)
	}
	e.hook.setAnswer(nil)
	var again accepted
	if got := apiCall(t, e.b, "POST", "/api/v1/notifications/"+a.ID+"/retry", nil, nil, &again); got != http.StatusAccepted {
		t.Fatalf("retry: %d", got)
	}
	waitStatus(t, e.b, a.ID, "sent")
	if n := len(e.hook.received()); n != 4 {
		t.Fatalf("%d calls, want 4", n)
	}
}

// A permanent webhook failure falls back to email at once.
func TestNotifyFallback(t *testing.T) {
	e := startNotify(t)
	e.hook.setAnswer(func(int, []byte) (int, http.Header) { return http.StatusGone, nil })
	a := submit(t, e.b, map[string]any{"channels": []string{"webhook", "email"},
		"to":      map[string]any{"webhook": e.hook.URL, "email": "park@example.com"},
		"content": map[string]any{"subject": "Alarm", "text": "pressure high"}}, http.StatusAccepted, nil)
	r := waitStatus(t, e.b, a.ID, "sent")
	if r.Channel != "email" || len(r.Attempts) != 2 || r.Attempts[0].Channel != "webhook" || r.Attempts[0].Status != "failed" {
		t.Fatalf("record %+v", r)
	}
	if m := e.smtp.Wait(t, 1, 10*time.Second); m[0].Subject != "Alarm" {
		t.Fatalf("mail %+v", m[0])
	}
	if n := len(e.hook.received()); n != 1 {
		t.Fatalf("permanent failure tried %d times", n)
	}
}

// A priority 9 notification overtakes a backlog of 100,000 queued ones.
func TestNotifyPriorityOvertakesBacklog(t *testing.T) {
	backlog := 100_000
	if testing.Short() || raceEnabled {
		backlog = 10_000
		t.Logf("-short or -race: a backlog of %d (scripts/test.sh runs the full 100,000 without -race)", backlog)
	}
	e := startNotify(t, testutil.WithConfig(func(c *config.Config) {
		c.NotifyWorkers = "webhook=1"
		// The first call waits for the whole backlog to be queued.
		c.WebhookTimeout, c.NotifySendTimeout = 10*time.Minute, 10*time.Minute
	}))
	release := make(chan struct{})
	e.hook.setAnswer(func(n int, _ []byte) (int, http.Header) {
		if n == 1 {
			<-release
		}
		return http.StatusOK, nil
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	batch := make([]map[string]any, 1000)
	for i := range batch {
		batch[i] = webhookNote(e.hook.URL+"/campaign", map[string]any{"class": "advertising", "priority": 1})
	}
	for range backlog / len(batch) {
		var out struct {
			Results []accepted `json:"results"`
		}
		if got := apiCall(t, e.b, "POST", "/api/v1/notifications/batch", map[string]any{"notifications": batch}, nil, &out); got != http.StatusOK || len(out.Results) != len(batch) {
			t.Fatalf("batch: %d, %d results", got, len(out.Results))
		}
	}
	otp := submit(t, e.b, webhookNote(e.hook.URL+"/otp", map[string]any{"priority": 9}), http.StatusAccepted, nil)
	n0 := len(e.hook.received())
	close(release)
	// The worker holds at most its prefetch (2) of the backlog, and one
	// call may be under way.
	calls := e.hook.wait(t, n0+4)
	for i, c := range calls[:n0+4] {
		if c.Header.Get("X-UMS-Id") == otp.ID {
			t.Logf("the priority 9 notification was call %d after a backlog of %d (%d calls before it was queued)", i+1, backlog, n0)
			return
		}
	}
	t.Fatalf("the priority 9 notification did not overtake the backlog (%d calls before it was queued)", n0)
}

// Quiet hours hold an advertising notification until the window ends;
// a critical one goes at once (fake clock at 22:00 in Seoul).
func TestNotifyQuietHours(t *testing.T) {
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk))
	if got := apiCall(t, e.b, "PUT", "/api/v1/tenants/shop", map[string]any{"quiet_hours": map[string]any{
		"start": "21:00", "end": "08:00", "time_zone": "Asia/Seoul"}}, nil, nil); got != http.StatusOK {
		t.Fatalf("PUT tenant: %d", got)
	}
	if got := apiCall(t, e.b, "PUT", "/api/v1/tenants/bad", map[string]any{"quiet_hours": map[string]any{
		"start": "25:00", "end": "08:00"}}, nil, nil); got != http.StatusUnprocessableEntity {
		t.Fatalf("PUT tenant with 25:00: %d", got)
	}
	ad := submit(t, e.b, webhookNote(e.hook.URL+"/ad", map[string]any{"tenant": "shop", "class": "advertising"}), http.StatusAccepted, nil)
	crit := submit(t, e.b, webhookNote(e.hook.URL+"/alert", map[string]any{"tenant": "shop", "class": "critical"}), http.StatusAccepted, nil)
	waitStatus(t, e.b, crit.ID, "sent")
	waitStatus(t, e.b, ad.ID, "scheduled")
	clk.Advance(9*time.Hour + 59*time.Minute) // 07:59 in Seoul
	marker := submit(t, e.b, webhookNote(e.hook.URL+"/marker", nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, marker.ID, "sent")
	if n := len(e.hook.received()); n != 2 {
		t.Fatalf("%d calls before the window ended, want 2", n)
	}
	clk.Advance(time.Minute) // 08:00
	waitStatus(t, e.b, ad.ID, "sent")
	if c := e.hook.received()[2]; c.Header.Get("X-UMS-Id") != ad.ID {
		t.Fatal("third call is not the held notification")
	}
}

// An opted-out address gets no advertising (failed, opted_out) but still
// gets transactional notifications.
func TestNotifyOptOut(t *testing.T) {
	e := startNotify(t)
	if got := apiCall(t, e.b, "PUT", "/api/v1/optouts/shop/Kim@Example.com", nil, nil, nil); got != http.StatusCreated {
		t.Fatalf("PUT optout: %d", got)
	}
	mail := func(class string) map[string]any {
		return map[string]any{"channel": "email", "to": map[string]any{"email": "kim@example.com"}, "tenant": "shop",
			"class": class, "content": map[string]any{"subject": class, "text": "x"}}
	}
	ad := submit(t, e.b, mail("advertising"), http.StatusAccepted, nil)
	r := waitStatus(t, e.b, ad.ID, "failed")
	if r.Error != "opted_out" {
		t.Fatalf("record %+v", r)
	}
	tx := submit(t, e.b, mail("transactional"), http.StatusAccepted, nil)
	waitStatus(t, e.b, tx.ID, "sent")
	if m := e.smtp.Mails(); len(m) != 1 || m[0].Subject != "transactional" {
		t.Fatalf("mails %+v", m)
	}
	if got := apiCall(t, e.b, "DELETE", "/api/v1/optouts/shop/kim@example.com", nil, nil, nil); got != http.StatusNoContent {
		t.Fatalf("DELETE optout: %d", got)
	}
	ad2 := submit(t, e.b, mail("advertising"), http.StatusAccepted, nil)
	waitStatus(t, e.b, ad2.ID, "sent")
}

// send_at holds a notification until then; one past expires_at is not
// sent (fake clock).
func TestNotifySendAtAndExpiry(t *testing.T) {
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk))
	later := submit(t, e.b, webhookNote(e.hook.URL+"/later", map[string]any{
		"send_at": notifyT0.Add(time.Hour).Format(time.RFC3339)}), http.StatusAccepted, nil)
	if later.Status != "scheduled" {
		t.Fatalf("answer %+v", later)
	}
	e.hook.setAnswer(func(n int, body []byte) (int, http.Header) {
		if strings.Contains(string(body), "expiring") {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"120"}}
		}
		return http.StatusOK, nil
	})
	exp := submit(t, e.b, map[string]any{"channel": "webhook", "to": map[string]any{"webhook": e.hook.URL},
		"content": map[string]any{"text": "expiring"}, "expires_at": notifyT0.Add(time.Minute).Format(time.RFC3339)}, http.StatusAccepted, nil)
	waitStatus(t, e.b, exp.ID, "retrying")
	clk.Advance(2 * time.Minute)
	waitStatus(t, e.b, exp.ID, "expired")
	if n := len(e.hook.received()); n != 1 {
		t.Fatalf("%d calls, want 1 (the expired one not retried)", n)
	}
	clk.Advance(58 * time.Minute)
	waitStatus(t, e.b, later.ID, "sent")
}

// Webhook URLs to loopback and private networks, and http://, are refused
// at submission unless allowed.
func TestNotifySSRF(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.HTTP), testutil.WithConfig(func(c *config.Config) {
		c.WebhookSecret = hookSecret
	}))
	for _, u := range []string{"https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://[::1]/x", "http://example.com/hook",
		"https://169.254.169.254/latest/meta-data", "ftp://example.com/x"} {
		a := submit(t, b, webhookNote(u, nil), http.StatusUnprocessableEntity, nil)
		if a.Field != "to.webhook" {
			t.Errorf("%s: field %q (%s)", u, a.Field, a.Reason)
		}
	}
}

// Each limit (per channel, per recipient, per tenant) of 2 per hour sends
// two and holds the third until the limiter allows it (fake clock);
// nothing is dropped.
func TestNotifyRateLimits(t *testing.T) {
	for _, c := range []struct {
		name  string
		set   func(*config.Config)
		other func(e *notifyEnv) map[string]any // a notification the limit does not hold
	}{
		{"channel", func(c *config.Config) { c.NotifyRateLimit = "webhook=2/h" }, func(e *notifyEnv) map[string]any {
			return map[string]any{"channel": "email", "to": map[string]any{"email": "a@example.com"}, "content": map[string]any{"text": "x"}}
		}},
		{"recipient", func(c *config.Config) { c.NotifyRecipientLimit = "webhook=2/h" }, func(e *notifyEnv) map[string]any {
			return webhookNote(e.hook.URL+"/other", map[string]any{"tenant": "acme"})
		}},
		{"tenant", func(c *config.Config) { c.NotifyTenantLimit = "webhook=2/h" }, func(e *notifyEnv) map[string]any {
			return webhookNote(e.hook.URL, map[string]any{"tenant": "globex"})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewFake(notifyT0)
			e := startNotify(t, testutil.WithClock(clk), testutil.WithConfig(c.set))
			var ids []string
			for i := range 3 {
				ids = append(ids, submit(t, e.b, webhookNote(e.hook.URL, map[string]any{"tenant": "acme",
					"content": map[string]any{"text": fmt.Sprint(i)}}), http.StatusAccepted, nil).ID)
			}
			e.hook.wait(t, 2)
			limited := ""
			for _, id := range ids {
				var r record
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					apiCall(t, e.b, "GET", "/api/v1/notifications/"+id, nil, nil, &r)
					if r.Status == "sent" || r.Status == "rate_limited" {
						break
					}
				}
				if r.Status == "rate_limited" {
					limited = id
				}
			}
			if limited == "" {
				t.Fatal("no notification was rate-limited")
			}
			clk.Advance(29 * time.Minute)
			other := submit(t, e.b, c.other(e), http.StatusAccepted, nil)
			waitStatus(t, e.b, other.ID, "sent")
			if n := len(e.hook.received()) + len(e.smtp.Mails()); n != 3 {
				t.Fatalf("%d sends before the limit allowed, want 3", n)
			}
			clk.Advance(time.Minute) // 2 per hour: one every 30 minutes
			waitStatus(t, e.b, limited, "sent")
		})
	}
}

// A notification scheduled for later survives a restart and goes out at
// its time (fake clock).
func TestNotifyScheduledSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk), testutil.WithDataDir(dir))
	a := submit(t, e.b, webhookNote(e.hook.URL, map[string]any{
		"send_at": notifyT0.Add(time.Hour).Format(time.RFC3339)}), http.StatusAccepted, nil)
	e.b.Stop()
	clk2 := clock.NewFake(notifyT0.Add(time.Minute))
	b2 := testutil.StartBroker(t, testutil.WithClock(clk2), testutil.WithDataDir(dir), testutil.WithProtocols(testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) {
			c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = hookSecret, true, true
		}))
	clk2.Advance(58 * time.Minute)
	marker := submit(t, b2, webhookNote(e.hook.URL+"/marker", nil), http.StatusAccepted, nil)
	waitStatus(t, b2, marker.ID, "sent")
	if n := len(e.hook.received()); n != 1 {
		t.Fatalf("%d calls before send_at, want 1 (the marker)", n)
	}
	clk2.Advance(time.Minute)
	calls := e.hook.wait(t, 2)
	if id := calls[1].Header.Get("X-UMS-Id"); id != a.ID {
		t.Fatalf("second call is %s, want the scheduled %s", id, a.ID)
	}
}
