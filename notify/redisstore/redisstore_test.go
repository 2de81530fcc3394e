package redisstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/testutil/redisserver"
	"github.com/unifiedms/ums/notify"
	"github.com/unifiedms/ums/notify/guardtest"
	"github.com/unifiedms/ums/notify/memstore"
	"github.com/unifiedms/ums/notify/redisstore"
)

var epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// shiftTTLs makes d pass for the TTLs of every ums: key: keys expire on
// Redis' own clock, so a test on a fake clock moves them itself.
var shiftTTLs = redis.NewScript(`
local d = tonumber(ARGV[1])
for _, k in ipairs(redis.call('KEYS', 'ums:*')) do
  local p = redis.call('PTTL', k)
  if p > 0 then
    if p <= d then redis.call('DEL', k) else redis.call('PEXPIRE', k, p - d) end
  end
end
return 0
`)

func client(t testing.TB, addr string) *redis.Client {
	rdb, err := redisstore.NewClient("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestRedisConformance(t *testing.T) {
	srv := redisserver.Start(t)
	rdb := client(t, srv.Addr)
	ctx := context.Background()
	guardtest.Run(t, func(t *testing.T) *guardtest.Harness {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		clk := clock.NewFake(epoch)
		return &guardtest.Harness{
			Guards: redisstore.New(rdb, clk),
			Clock:  clk,
			Advance: func(d time.Duration) {
				clk.Advance(d)
				if err := shiftTTLs.Run(ctx, rdb, nil, d.Milliseconds()).Err(); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// The keys are where the package documentation says, with the TTLs that
// make Redis expire them on time.
func TestRedisKeyLayout(t *testing.T) {
	srv := redisserver.Start(t)
	rdb := client(t, srv.Addr)
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	s := redisstore.New(rdb, clk)
	if _, ok, err := s.Claim(ctx, "acme/order-1", "n1", 90*time.Second); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, err := s.Claim(ctx, "acme/order-2", "n2", 1500*time.Millisecond); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ok, _, err := s.Allow(ctx, "acme/email", notify.Limit{Rate: 5, Per: time.Hour}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	check := func(key, val string, ttl time.Duration) {
		t.Helper()
		got, err := rdb.Get(ctx, key).Result()
		if err != nil || got != val {
			t.Errorf("GET %s = %q, %v; want %q", key, got, err, val)
		}
		pttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || pttl > ttl || pttl < ttl-time.Second {
			t.Errorf("PTTL %s = %v, %v; want about %v", key, pttl, err, ttl)
		}
	}
	check("ums:dedup:acme/order-1", "n1", 90*time.Second)
	check("ums:dedup:acme/order-2", "n2", 1500*time.Millisecond)
	// One event of 5 per hour: back at a full burst in 12 minutes; the key
	// lasts RateKeySlack longer.
	check("ums:rate:acme/email", strconv.FormatInt(epoch.Add(12*time.Minute).UnixMicro(), 10), 12*time.Minute+redisstore.RateKeySlack)
}

// Redis goes away mid-test and comes back on the same port.
func TestRedisFailover(t *testing.T) {
	srv := redisserver.Start(t)
	rdb := client(t, srv.Addr)
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	primary := redisstore.New(rdb, clk)
	fallback, err := memstore.Open(t.TempDir(), memstore.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer fallback.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := notify.NewFailover(primary, fallback, notify.FailoverOptions{FailOpen: true, Clock: clk, Logger: logger})
	closed := notify.NewFailover(primary, fallback, notify.FailoverOptions{Clock: clk, Logger: logger})
	lim := notify.Limit{Rate: 2, Per: time.Minute}

	for _, f := range []*notify.Failover{open, closed} {
		if _, _, err := f.Claim(ctx, "before", "n0", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.Exists(ctx, "ums:dedup:before").Val(); n != 1 {
		t.Fatal("the claim did not reach Redis")
	}

	srv.Stop()
	holder, claimed, err := open.Claim(ctx, "k", "n1", time.Hour)
	if err != nil || !claimed || holder != "n1" {
		t.Fatalf("fail-open Claim with Redis down = %q, %v, %v", holder, claimed, err)
	}
	if holder, claimed, err := open.Claim(ctx, "k", "n2", time.Hour); err != nil || claimed || holder != "n1" {
		t.Fatalf("fail-open duplicate Claim with Redis down = %q, %v, %v", holder, claimed, err)
	}
	for i, want := range []bool{true, true, false} {
		if ok, _, err := open.Allow(ctx, "email", lim); err != nil || ok != want {
			t.Fatalf("fail-open Allow #%d with Redis down = %v, %v", i, ok, err)
		}
	}
	if h, why := open.Healthy(); h {
		t.Fatal("fail-open guards healthy with Redis down")
	} else {
		t.Logf("Healthy: %s", why)
	}
	if _, _, err := closed.Claim(ctx, "k", "n1", time.Hour); !errors.Is(err, notify.ErrGuardUnavailable) {
		t.Fatalf("fail-closed Claim with Redis down: %v", err)
	}
	if _, _, err := closed.Allow(ctx, "email", lim); !errors.Is(err, notify.ErrGuardUnavailable) {
		t.Fatalf("fail-closed Allow with Redis down: %v", err)
	}
	if h, _ := closed.Healthy(); h {
		t.Fatal("fail-closed guards healthy with Redis down")
	}

	srv.Restart()
	// Not before the next probe...
	if _, _, err := closed.Claim(ctx, "k", "n1", time.Hour); !errors.Is(err, notify.ErrGuardUnavailable) {
		t.Fatalf("fail-closed Claim before the next probe: %v", err)
	}
	// ...then back on Redis (empty: it persists nothing).
	clk.Advance(notify.DefaultProbeEvery)
	for name, f := range map[string]*notify.Failover{"fail-open": open, "fail-closed": closed} {
		holder, claimed, err := f.Claim(ctx, "back/"+name, "n3", time.Hour)
		if err != nil || !claimed || holder != "n3" {
			t.Fatalf("%s Claim after Redis restarted = %q, %v, %v", name, holder, claimed, err)
		}
		if h, why := f.Healthy(); !h {
			t.Fatalf("%s unhealthy after Redis restarted: %s", name, why)
		}
		if n := rdb.Exists(ctx, "ums:dedup:back/"+name).Val(); n != 1 {
			t.Fatalf("%s: the claim after the restart is not in Redis", name)
		}
	}
	if ok, _, err := open.Allow(ctx, "email", lim); err != nil || !ok {
		t.Fatalf("Allow on the restarted Redis = %v, %v", ok, err)
	}
}

func TestNewClient(t *testing.T) {
	rdb, err := redisstore.NewClient("redis://:secret@127.0.0.1:6380/2?dial_timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	o := rdb.Options()
	if o.Addr != "127.0.0.1:6380" || o.DB != 2 || o.Password != "secret" || o.DialTimeout != 3*time.Second ||
		o.ReadTimeout != redisstore.IOTimeout || o.DialerRetries != 1 || o.MaxRetries > 0 {
		t.Fatalf("options %+v", o)
	}
	if _, err := redisstore.NewClient("http://127.0.0.1"); err == nil {
		t.Fatal("NewClient accepted an http URL")
	}
}

func BenchmarkRedisClaimAllow(b *testing.B) {
	srv := redisserver.Start(b)
	guardtest.Bench(b, redisstore.New(client(b, srv.Addr), nil))
}

func BenchmarkRedisClaimAllowParallel(b *testing.B) {
	srv := redisserver.Start(b)
	guardtest.BenchParallel(b, redisstore.New(client(b, srv.Addr), nil))
}

// Calls made together share round trips; each still gets its own answer,
// a script Redis forgot (SCRIPT FLUSH, a restart) is sent again in full,
// and a caller whose context has ended is answered at once.
func TestRedisBatchedCalls(t *testing.T) {
	srv := redisserver.Start(t)
	rdb := client(t, srv.Addr)
	ctx := context.Background()
	s := redisstore.New(rdb, clock.NewFake(epoch))
	lim := notify.Limit{Rate: 1, Per: time.Hour}
	for round := range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		const callers = 64
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				key := "r" + strconv.Itoa(round) + "/" + strconv.Itoa(i)
				if holder, claimed, err := s.Claim(ctx, key, "n"+strconv.Itoa(i), time.Hour); err != nil || !claimed || holder != "n"+strconv.Itoa(i) {
					t.Errorf("Claim %s = %q, %v, %v", key, holder, claimed, err)
				}
				for j, want := range []bool{true, false} {
					if ok, wait, err := s.Allow(ctx, key, lim); err != nil || ok != want || (!ok && wait <= 0) {
						t.Errorf("Allow %s #%d = %v, %v, %v; want %v", key, j, ok, wait, err, want)
					}
				}
			})
		}
		wg.Wait()
		// The limit checks made together went as shared script runs.
		runs := scriptRuns(t, rdb)
		t.Logf("round %d: %d limit checks in %d script runs", round, 2*callers, runs)
		if runs >= 2*callers {
			t.Fatalf("round %d: %d limit checks in %d script runs", round, 2*callers, runs)
		}
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Allow(done, "cancelled", lim); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with an ended context: %v", err)
	}
}

// Callers whose contexts end while their calls wait in the queue, or just
// as the lead is handed to them, all return: with an answer or with their
// context's error, and the batches of the others go on.
func TestRedisBatchedCallsCancelled(t *testing.T) {
	srv := redisserver.Start(t)
	s := redisstore.New(client(t, srv.Addr), clock.NewFake(epoch))
	lim := notify.Limit{Rate: 1000000, Per: time.Second}
	var wg sync.WaitGroup
	var answered, cancelled atomic.Int64
	for i := range 400 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%8)*100*time.Microsecond)
			defer cancel()
			_, _, err := s.Allow(ctx, "k"+strconv.Itoa(i%16), lim)
			switch {
			case err == nil:
				answered.Add(1)
			case errors.Is(err, context.DeadlineExceeded):
				cancelled.Add(1)
			default:
				t.Errorf("Allow: %v", err)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("callers still waiting after 30 s")
	}
	if ok, _, err := s.Allow(context.Background(), "after", lim); err != nil || !ok {
		t.Fatalf("Allow after the cancellations: %v, %v", ok, err)
	}
	t.Logf("%d answered, %d cancelled while queued", answered.Load(), cancelled.Load())
}

// scriptRuns returns the scripts Redis ran (EVAL and EVALSHA, failed ones
// included) since its statistics were last reset.
func scriptRuns(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_eval:") && !strings.HasPrefix(line, "cmdstat_evalsha:") {
			continue
		}
		// cmdstat_evalsha:calls=12,usec=...,rejected_calls=0,failed_calls=1
		for _, f := range strings.Split(line[strings.IndexByte(line, ':')+1:], ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				c, _ := strconv.Atoi(strings.TrimSpace(v))
				n += c
			}
		}
	}
	return n
}
