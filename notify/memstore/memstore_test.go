package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/notify"
	"github.com/unifiedms/ums/notify/guardtest"
	"github.com/unifiedms/ums/notify/memstore"
)

var epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func openMemory(t testing.TB, fsys store.FS, dir string, clk clock.Clock) *memstore.Store {
	t.Helper()
	g, err := memstore.Open(dir, memstore.Options{FS: fsys, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMemstoreConformance(t *testing.T) {
	guardtest.Run(t, func(t *testing.T) *guardtest.Harness {
		clk := clock.NewFake(epoch)
		g := openMemory(t, nil, t.TempDir(), clk)
		t.Cleanup(func() { g.Close() })
		return &guardtest.Harness{Guards: g, Clock: clk}
	})
}

// Claims survive a restart until their TTL runs out; expired ones are
// dropped when the store opens.
func TestMemstoreClaimsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	g := openMemory(t, nil, dir, clk)
	for _, c := range []struct {
		key, id string
		ttl     time.Duration
	}{{"long", "a", time.Hour}, {"short", "b", time.Minute}, {"mid", "c", 10 * time.Minute}} {
		if _, ok, err := g.Claim(ctx, c.key, c.id, c.ttl); err != nil || !ok {
			t.Fatalf("Claim(%s): %v %v", c.key, ok, err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Claim(ctx, "x", "y", time.Minute); err == nil {
		t.Fatal("Claim after Close succeeded")
	}

	clk.Advance(5 * time.Minute)
	g = openMemory(t, nil, dir, clk)
	if claims, _ := g.Len(); claims != 2 {
		t.Fatalf("%d claims after reopening, want 2 (the expired one dropped)", claims)
	}
	want := map[string]struct {
		holder  string
		claimed bool
	}{"long": {"a", false}, "mid": {"c", false}, "short": {"new", true}}
	for key, w := range want {
		holder, claimed, err := g.Claim(ctx, key, "new", time.Hour)
		if err != nil || holder != w.holder || claimed != w.claimed {
			t.Errorf("after restart Claim(%s) = %q, %v, %v; want %q, %v", key, holder, claimed, err, w.holder, w.claimed)
		}
	}
	g.Close()

	// Reopened much later: everything but the claim made after the first
	// restart (an hour from then) has expired.
	clk.Advance(59 * time.Minute)
	g = openMemory(t, nil, dir, clk)
	defer g.Close()
	if claims, _ := g.Len(); claims != 1 {
		t.Fatalf("%d claims after the second reopening, want 1", claims)
	}
	if holder, claimed, _ := g.Claim(ctx, "short", "z", time.Hour); holder != "new" || claimed {
		t.Fatalf("Claim(short) = %q, %v; want the claim made after the first restart", holder, claimed)
	}
	if holder, claimed, _ := g.Claim(ctx, "long", "z", time.Hour); holder != "z" || !claimed {
		t.Fatalf("Claim(long) = %q, %v; want it expired", holder, claimed)
	}
}

// A crash (unsynced data lost) keeps every claim that Claim reported.
func TestMemstoreClaimsSurviveCrash(t *testing.T) {
	ctx := context.Background()
	fsys := store.NewMemFS()
	clk := clock.NewFake(epoch)
	g := openMemory(t, fsys, "guards", clk)
	for _, k := range []string{"a", "b", "c"} {
		if _, ok, err := g.Claim(ctx, k, "id-"+k, time.Hour); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	after := fsys.Crash()
	g.Close()
	g = openMemory(t, after, "guards", clk)
	defer g.Close()
	for _, k := range []string{"a", "b", "c"} {
		if holder, claimed, err := g.Claim(ctx, k, "other", time.Hour); err != nil || claimed || holder != "id-"+k {
			t.Errorf("after a crash Claim(%s) = %q, %v, %v", k, holder, claimed, err)
		}
	}
}

// Expired claims and idle limiter keys are swept on the clock, so memory
// follows the live keys.
func TestMemstoreSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	g, err := memstore.Open(dir, memstore.Options{Clock: clk, SweepEvery: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l := notify.Limit{Rate: 1, Per: time.Second}
	for i := range 100 {
		key := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, ok, err := g.Claim(ctx, key, "id", 5*time.Second); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if ok, _, err := g.Allow(ctx, key, l); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	g.Claim(ctx, "kept", "id", time.Hour)
	if c, l := g.Len(); c != 101 || l != 100 {
		t.Fatalf("Len = %d, %d", c, l)
	}
	clk.Advance(10 * time.Second)
	if c, l := g.Len(); c != 1 || l != 0 {
		t.Fatalf("after a sweep Len = %d, %d; want 1, 0", c, l)
	}
	if clk.Pending() != 1 {
		t.Fatalf("%d timers pending, want the next sweep", clk.Pending())
	}
	g.Close()
	// The swept claims are gone from the file too.
	g = openMemory(t, nil, dir, clk)
	defer g.Close()
	if c, _ := g.Len(); c != 1 {
		t.Fatalf("%d claims after reopening, want 1", c)
	}
}

func BenchmarkMemstoreClaimAllow(b *testing.B) {
	g := openMemory(b, nil, b.TempDir(), clock.Real)
	defer g.Close()
	guardtest.Bench(b, g)
}

// The claims file on a file system without fsync cost: the guards' own
// overhead.
func BenchmarkMemstoreClaimAllowMemFS(b *testing.B) {
	g := openMemory(b, store.NewMemFS(), "guards", clock.Real)
	defer g.Close()
	guardtest.Bench(b, g)
}
