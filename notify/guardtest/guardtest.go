// Package guardtest is the conformance suite every notify.Deduper and
// notify.Limiter passes, so the embedded and the Redis guards keep the
// same semantics. It is for tests only.
package guardtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/notify"
)

// Harness is one fresh implementation under test.
type Harness struct {
	Guards notify.Guards
	// Clock is the fake clock the guards were built with.
	Clock *clock.Fake
	// Advance moves time forward by d as the guards see it; nil means
	// Clock.Advance. Redis, whose keys expire on its own clock, also
	// shortens the TTLs of its keys by d.
	Advance func(d time.Duration)
}

func (h *Harness) advance(d time.Duration) {
	if h.Advance != nil {
		h.Advance(d)
		return
	}
	h.Clock.Advance(d)
}

// step is one call and what it must answer.
type step struct {
	advance time.Duration // first move time forward

	claim string // Claim(claim, id, ttl) when set
	id    string
	ttl   time.Duration
	// want for Claim
	holder  string
	claimed bool

	allow string // Allow(allow, limit) when set
	limit notify.Limit
	// want for Allow
	ok    bool
	retry time.Duration

	times   int  // repeat the call (default 1)
	wantErr bool // the call must fail
}

var (
	hourly = notify.Limit{Rate: 5, Per: time.Hour}              // 5 at once, then one every 12m
	tenPS  = notify.Limit{Rate: 10, Per: time.Second, Burst: 2} // 2 at once, then one every 100ms
	fast   = notify.Limit{Rate: 500, Per: time.Second}          // one every 2ms
	minute = notify.Limit{Rate: 3, Per: time.Minute, Burst: 1}  // strictly one every 20s
	bad    = notify.Limit{Rate: 0, Per: time.Second}            // invalid
	badPer = notify.Limit{Rate: 3, Per: -time.Second, Burst: 1} // invalid
)

var cases = []struct {
	name  string
	steps []step
}{
	{"claim then duplicate", []step{
		{claim: "k", id: "a", ttl: time.Minute, holder: "a", claimed: true},
		{claim: "k", id: "b", ttl: time.Minute, holder: "a"},
		{claim: "k", id: "a", ttl: time.Minute, holder: "a"}, // the same id retried
	}},
	{"claim expires after its ttl", []step{
		{claim: "k", id: "a", ttl: time.Minute, holder: "a", claimed: true},
		{advance: 58 * time.Second, claim: "k", id: "b", ttl: time.Minute, holder: "a"},
		{advance: 3 * time.Second, claim: "k", id: "b", ttl: time.Minute, holder: "b", claimed: true},
		{claim: "k", id: "c", ttl: time.Minute, holder: "b"},
	}},
	{"a duplicate does not extend the claim", []step{
		{claim: "k", id: "a", ttl: time.Minute, holder: "a", claimed: true},
		{advance: 40 * time.Second, claim: "k", id: "b", ttl: time.Hour, holder: "a"},
		{advance: 21 * time.Second, claim: "k", id: "b", ttl: time.Minute, holder: "b", claimed: true},
	}},
	{"claim keys are independent", []step{
		{claim: "t1/k", id: "a", ttl: time.Hour, holder: "a", claimed: true},
		{claim: "t2/k", id: "b", ttl: time.Hour, holder: "b", claimed: true},
		{claim: "t1/k", id: "c", ttl: time.Hour, holder: "a"},
		{claim: "t2/k", id: "c", ttl: time.Hour, holder: "b"},
	}},
	{"claim needs a positive ttl", []step{
		{claim: "k", id: "a", ttl: 0, wantErr: true},
		{claim: "k", id: "a", ttl: time.Minute, holder: "a", claimed: true},
	}},
	{"burst then denial", []step{
		{allow: "k", limit: hourly, ok: true, times: 5},
		{allow: "k", limit: hourly, retry: 12 * time.Minute},
		{advance: 2 * time.Minute, allow: "k", limit: hourly, retry: 10 * time.Minute},
	}},
	{"recovery as time passes", []step{
		{allow: "k", limit: hourly, ok: true, times: 5},
		{advance: 12 * time.Minute, allow: "k", limit: hourly, ok: true},
		{allow: "k", limit: hourly, retry: 12 * time.Minute},
		{advance: time.Hour, allow: "k", limit: hourly, ok: true, times: 5},
		{allow: "k", limit: hourly, retry: 12 * time.Minute},
	}},
	{"explicit burst", []step{
		{allow: "k", limit: tenPS, ok: true, times: 2},
		{allow: "k", limit: tenPS, retry: 100 * time.Millisecond},
		{advance: 50 * time.Millisecond, allow: "k", limit: tenPS, retry: 50 * time.Millisecond},
		{advance: 50 * time.Millisecond, allow: "k", limit: tenPS, ok: true},
		{allow: "k", limit: tenPS, retry: 100 * time.Millisecond},
	}},
	{"denials are not counted", []step{
		{allow: "k", limit: minute, ok: true},
		{allow: "k", limit: minute, retry: 20 * time.Second, times: 10},
		{advance: 20 * time.Second, allow: "k", limit: minute, ok: true},
		{allow: "k", limit: minute, retry: 20 * time.Second},
	}},
	{"high rates", []step{
		{allow: "k", limit: fast, ok: true, times: 500},
		{allow: "k", limit: fast, retry: 2 * time.Millisecond},
		{advance: time.Second, allow: "k", limit: fast, ok: true, times: 500},
	}},
	{"limit keys are independent", []step{
		{allow: "t1/email", limit: minute, ok: true},
		{allow: "t1/email", limit: minute, retry: 20 * time.Second},
		{allow: "t2/email", limit: minute, ok: true},
		{allow: "t1/sms", limit: minute, ok: true},
		{allow: "t2/email", limit: minute, retry: 20 * time.Second},
	}},
	{"claim and limit keys do not collide", []step{
		{claim: "k", id: "a", ttl: time.Hour, holder: "a", claimed: true},
		{allow: "k", limit: minute, ok: true},
		{claim: "k", id: "b", ttl: time.Hour, holder: "a"},
	}},
	{"invalid limits", []step{
		{allow: "k", limit: bad, wantErr: true},
		{allow: "k", limit: badPer, wantErr: true},
	}},
}

// Run runs the suite; newHarness returns a fresh implementation with an
// empty state for each case.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			for i, s := range c.steps {
				if s.advance > 0 {
					h.advance(s.advance)
				}
				n := max(s.times, 1)
				for j := range n {
					if s.claim != "" {
						holder, claimed, err := h.Guards.Claim(ctx, s.claim, s.id, s.ttl)
						if (err != nil) != s.wantErr {
							t.Fatalf("step %d (#%d): Claim(%q, %q, %v): err %v, want error %v", i, j, s.claim, s.id, s.ttl, err, s.wantErr)
						}
						if err == nil && (holder != s.holder || claimed != s.claimed) {
							t.Fatalf("step %d (#%d): Claim(%q, %q, %v) = %q, %v; want %q, %v", i, j, s.claim, s.id, s.ttl, holder, claimed, s.holder, s.claimed)
						}
					}
					if s.allow != "" {
						ok, retry, err := h.Guards.Allow(ctx, s.allow, s.limit)
						if (err != nil) != s.wantErr {
							t.Fatalf("step %d (#%d): Allow(%q, %v): err %v, want error %v", i, j, s.allow, s.limit, err, s.wantErr)
						}
						if err == nil && (ok != s.ok || retry != s.retry) {
							t.Fatalf("step %d (#%d): Allow(%q, %v) = %v, %v; want %v, %v", i, j, s.allow, s.limit, ok, retry, s.ok, s.retry)
						}
					}
				}
			}
		})
	}
	allowAll(t, newHarness)
	claimAll(t, newHarness)
	concurrent(t, newHarness)
}

func cr(key, id string) notify.ClaimRequest { return notify.ClaimRequest{Key: key, ID: id} }

// claimAll: several claims in one call answer as that many Claim calls.
func claimAll(t *testing.T, newHarness func(t *testing.T) *Harness) {
	t.Run("several claims in one call", func(t *testing.T) {
		h := newHarness(t)
		ctx := context.Background()
		if _, _, err := h.Guards.Claim(ctx, "held", "0", time.Hour); err != nil {
			t.Fatal(err)
		}
		reqs := []notify.ClaimRequest{cr("a", "1"), cr("b", "2"), cr("a", "3"), cr("held", "4"), cr("held", "0"), cr("c", "5")}
		want := []notify.ClaimResult{{Holder: "1", Claimed: true}, {Holder: "2", Claimed: true}, {Holder: "1"},
			{Holder: "0"}, {Holder: "0"}, {Holder: "5", Claimed: true}}
		got := notify.ClaimAll(ctx, h.Guards, reqs, time.Minute)
		if len(got) != len(want) {
			t.Fatalf("ClaimAll answered %d claims, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ClaimAll claim %d (%v) = %+v, want %+v", i, reqs[i], got[i], want[i])
			}
		}
		for _, k := range []string{"a", "b", "c"} {
			if holder, claimed, err := h.Guards.Claim(ctx, k, "x", time.Minute); err != nil || claimed || holder == "x" {
				t.Fatalf("Claim(%q) after ClaimAll = %q, %v, %v; want it held", k, holder, claimed, err)
			}
		}
		h.advance(61 * time.Second)
		got = notify.ClaimAll(ctx, h.Guards, []notify.ClaimRequest{cr("a", "6"), cr("held", "7")}, time.Minute)
		if got[0] != (notify.ClaimResult{Holder: "6", Claimed: true}) || got[1] != (notify.ClaimResult{Holder: "0"}) {
			t.Fatalf("ClaimAll after a's claim expired = %+v", got)
		}
		for i, r := range notify.ClaimAll(ctx, h.Guards, []notify.ClaimRequest{cr("d", "8"), cr("e", "9")}, 0) {
			if r.Err == nil {
				t.Fatalf("ClaimAll with ttl 0: claim %d = %+v, want an error", i, r)
			}
		}
		if holder, claimed, err := h.Guards.Claim(ctx, "d", "10", time.Minute); err != nil || !claimed || holder != "10" {
			t.Fatalf("Claim(d) after a refused ClaimAll = %q, %v, %v; want it free", holder, claimed, err)
		}
	})
	t.Run("concurrent claim calls have one winner per key", func(t *testing.T) {
		h := newHarness(t)
		const callers, keys = 8, 20
		holders := make([][]string, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				holders[i] = make([]string, keys)
				if i%2 == 0 { // half claim one at a time
					for k := range keys {
						holder, _, err := h.Guards.Claim(context.Background(), "k"+itoa(k), "id"+itoa(i), time.Hour)
						if err != nil {
							t.Error(err)
						}
						holders[i][k] = holder
					}
					return
				}
				reqs := make([]notify.ClaimRequest, keys)
				for k := range keys {
					reqs[k] = notify.ClaimRequest{Key: "k" + itoa(k), ID: "id" + itoa(i)}
				}
				for k, r := range notify.ClaimAll(context.Background(), h.Guards, reqs, time.Hour) {
					if r.Err != nil {
						t.Error(r.Err)
					}
					holders[i][k] = r.Holder
				}
			})
		}
		wg.Wait()
		for k := range keys {
			for i := range callers {
				if holders[i][k] != holders[0][k] || holders[i][k] == "" {
					t.Fatalf("key %d: caller %d saw holder %q, caller 0 %q", k, i, holders[i][k], holders[0][k])
				}
			}
		}
	})
}

// allowAll: several limits in one call count as that many Allow calls.
func allowAll(t *testing.T, newHarness func(t *testing.T) *Harness) {
	t.Run("several limits in one call", func(t *testing.T) {
		h := newHarness(t)
		ctx := context.Background()
		both := []notify.LimitCheck{{Key: "a", Limit: minute}, {Key: "b", Limit: hourly}}
		if ok, wait, err := notify.AllowAll(ctx, h.Guards, both); err != nil || !ok || wait != 0 {
			t.Fatalf("first AllowAll = %v, %v, %v", ok, wait, err)
		}
		// a is exhausted: b is not counted.
		if ok, wait, err := notify.AllowAll(ctx, h.Guards, both); err != nil || ok || wait != 20*time.Second {
			t.Fatalf("AllowAll over a's limit = %v, %v, %v; want false, 20s", ok, wait, err)
		}
		for range hourly.Rate - 1 {
			if ok, _, err := h.Guards.Allow(ctx, "b", hourly); err != nil || !ok {
				t.Fatalf("b counted by a refused AllowAll: %v, %v", ok, err)
			}
		}
		if ok, wait, err := h.Guards.Allow(ctx, "b", hourly); err != nil || ok || wait != 12*time.Minute {
			t.Fatalf("Allow b past its burst = %v, %v, %v", ok, wait, err)
		}
		// b is exhausted now: a is counted before b refuses.
		h.advance(20 * time.Second)
		if ok, wait, err := notify.AllowAll(ctx, h.Guards, both); err != nil || ok || wait != 12*time.Minute-20*time.Second {
			t.Fatalf("AllowAll over b's limit = %v, %v, %v", ok, wait, err)
		}
		if ok, wait, err := h.Guards.Allow(ctx, "a", minute); err != nil || ok || wait != 20*time.Second {
			t.Fatalf("a not counted by an AllowAll that b refused: %v, %v, %v", ok, wait, err)
		}
		if ok, _, err := notify.AllowAll(ctx, h.Guards, []notify.LimitCheck{{Key: "a", Limit: bad}}); err == nil || ok {
			t.Fatalf("AllowAll with an invalid limit = %v, %v", ok, err)
		}
	})
}

// concurrent: many callers at once; the store decides atomically.
func concurrent(t *testing.T, newHarness func(t *testing.T) *Harness) {
	const callers = 16
	t.Run("concurrent claims have one winner", func(t *testing.T) {
		h := newHarness(t)
		var wins atomic.Int32
		holders := make([]string, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				holder, claimed, err := h.Guards.Claim(context.Background(), "k", "id"+itoa(i), time.Hour)
				if err != nil {
					t.Error(err)
				}
				if claimed {
					wins.Add(1)
				}
				holders[i] = holder
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d callers claimed the key, want 1", wins.Load())
		}
		for i, h := range holders {
			if h != holders[0] {
				t.Fatalf("caller %d saw holder %q, caller 0 %q", i, h, holders[0])
			}
		}
	})
	t.Run("concurrent events count once each", func(t *testing.T) {
		h := newHarness(t)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for range 2 {
					ok, _, err := h.Guards.Allow(context.Background(), "k", hourly)
					if err != nil {
						t.Error(err)
					}
					if ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if allowed.Load() != int32(hourly.Rate) {
			t.Fatalf("%d events allowed, want the burst of %d", allowed.Load(), hourly.Rate)
		}
	})
}

// Bench measures one Claim of a new key and one Allow per iteration.
func Bench(b *testing.B, g notify.Guards) {
	ctx := context.Background()
	l := notify.Limit{Rate: 1 << 30, Per: time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench/" + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, claimed, err := g.Claim(ctx, keys[i%len(keys)]+"/"+itoa(i), "id", time.Hour); err != nil || !claimed {
			b.Fatalf("Claim: %v, %v", claimed, err)
		}
		if _, _, err := g.Allow(ctx, keys[i%len(keys)], l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchParallel is Bench from many goroutines at once.
func BenchParallel(b *testing.B, g notify.Guards) {
	var seq atomic.Int64
	l := notify.Limit{Rate: 1 << 30, Per: time.Second}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := int(seq.Add(1))
			if _, claimed, err := g.Claim(ctx, "bench/"+itoa(n), "id", time.Hour); err != nil || !claimed {
				b.Errorf("Claim: %v, %v", claimed, err)
				return
			}
			if _, _, err := g.Allow(ctx, "bench/"+itoa(n%1024), l); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[n:])
		}
	}
}
