package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
	rs, clk, e := startFailClosed(t)
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

// Fail-closed, submissions published over AMQP while Redis is down stay
// in the intake queue (they cannot be deduplicated), none is sent or
// lost, and once Redis answers again each is sent once.
func TestNotifyIntakeWaitsForRedis(t *testing.T) {
	rs, clk, e := startFailClosed(t)
	rs.Stop()
	conn, err := amqp.Dial(e.b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := confirmChannel(t, conn)
	const n = 20
	for i := range n {
		body, _ := json.Marshal(webhookNote(e.hook.URL, nil))
		publishConfirmed(t, ch, "ums.notify", "webhook", amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body,
			Headers: amqp.Table{"idempotency-key": fmt.Sprintf("k%d", i)}})
	}
	intake := func() int {
		ready, unacked := queueDepth(t, e.b, "ums.notify.intake")
		return ready + unacked
	}
	// Taken and held back: still in the intake queue, nothing sent.
	for range 5 {
		clk.Advance(time.Second) // the intake's pauses before requeueing
		time.Sleep(20 * time.Millisecond)
	}
	if got := intake(); got != n {
		t.Fatalf("%d of %d submissions in the intake queue while Redis is down", got, n)
	}
	if got := len(e.hook.received()); got != 0 {
		t.Fatalf("%d sent while Redis is down (fail-closed)", got)
	}
	rs.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for len(e.hook.received()) < n || intake() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after Redis came back: %d of %d sent, %d left in the intake queue", len(e.hook.received()), n, intake())
		}
		clk.Advance(time.Second) // the guards' next probe, the intake's pauses
		time.Sleep(10 * time.Millisecond)
	}
	ids := map[string]bool{}
	for _, c := range e.hook.received() {
		ids[c.Header.Get("X-UMS-Id")] = true
	}
	if len(e.hook.received()) != n || len(ids) != n {
		t.Fatalf("%d sends of %d notifications, want %d", len(e.hook.received()), len(ids), n)
	}
}

// startFailClosed starts the notification server with Redis guards that
// hold submissions while Redis is down (--redis-fail-open=false) and a
// fake clock (for the guards' probes).
func startFailClosed(t *testing.T) (*redisserver.Server, *clock.Fake, *notifyEnv) {
	t.Helper()
	rs := redisserver.Start(t)
	clk := clock.NewFake(notifyT0)
	e := startNotify(t, testutil.WithClock(clk), testutil.WithConfig(func(c *config.Config) {
		c.RedisURL = "redis://" + rs.Addr + "/0"
		c.RedisFailOpen = false
	}))
	return rs, clk, e
}
