package test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/testutil"
	"github.com/unifiedms/ums/internal/testutil/redisserver"
)

// With Redis stopped mid-run (fail-open), notifications keep flowing on the
// embedded guards; across the outage and its end every idempotency key is
// sent exactly once and answered with its first id, and the overview shows
// the outage.
func TestNotifyRedisOutage(t *testing.T) {
	rs := redisserver.Start(t)
	e := startNotify(t, testutil.WithConfig(func(c *config.Config) {
		c.RedisURL = "redis://" + rs.Addr + "/0"
		c.NotifyRateLimit = "webhook=100000/s" // every send also passes a limiter check
	}))
	ids := map[string]string{} // key -> id
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			key := fmt.Sprintf("k%d", i)
			want := http.StatusAccepted
			if _, seen := ids[key]; seen {
				want = http.StatusOK
			}
			a := submit(t, e.b, webhookNote(e.hook.URL, nil), want, map[string]string{"Idempotency-Key": key})
			if first, seen := ids[key]; seen && (a.ID != first || !a.Deduplicated) {
				t.Fatalf("%s again: %+v, first id %s", key, a, first)
			}
			ids[key] = a.ID
		}
	}
	guardsOK := func() bool {
		var ov struct {
			Notifications struct {
				GuardsOK bool   `json:"guards_ok"`
				Guards   string `json:"guards"`
			} `json:"notifications"`
		}
		apiCall(t, e.b, "GET", "/api/overview", nil, nil, &ov)
		return ov.Notifications.GuardsOK
	}
	send(0, 20)
	if !guardsOK() {
		t.Fatal("guards reported down with Redis up")
	}
	rs.Stop()
	send(10, 30) // 10 repeats from before the outage, 10 new
	if guardsOK() {
		t.Fatal("the outage is not shown in the overview")
	}
	rs.Restart()
	send(20, 40) // 10 repeats from during the outage, 10 new
	calls := e.hook.wait(t, 40)
	seen := map[string]int{}
	for _, c := range calls {
		seen[c.Header.Get("X-UMS-Id")]++
	}
	for key, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s (%s) sent %d times", key, id, seen[id])
		}
	}
	if len(calls) != 40 {
		t.Fatalf("%d sends, want 40", len(calls))
	}
}

// Fail-closed (--redis-fail-open=false): with Redis down, submissions that
// need a dedup check are refused with 503 and nothing is queued; once
// Redis answers again they are taken (fake clock for the probe).
func TestNotifyRedisFailClosed(t *testing.T) {
	rs := redisserver.Start(t)
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk), testutil.WithConfig(func(c *config.Config) {
		c.RedisURL = "redis://" + rs.Addr + "/0"
		c.RedisFailOpen = false
	}))
	submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, map[string]string{"Idempotency-Key": "a"})
	rs.Stop()
	submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusServiceUnavailable, map[string]string{"Idempotency-Key": "b"})
	rs.Restart()
	clk.Advance(5 * time.Second) // the next probe
	b := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, map[string]string{"Idempotency-Key": "b"})
	waitStatus(t, e.b, b.ID, "sent")
	if n := len(e.hook.wait(t, 2)); n != 2 {
		t.Fatalf("%d sends, want 2", n)
	}
}
