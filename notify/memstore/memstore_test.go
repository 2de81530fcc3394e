package memstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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

// A torn or corrupt tail is cut off; the claims before it stay held.
func TestMemstoreTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	g := openMemory(t, nil, dir, clk)
	for _, k := range []string{"a", "b"} {
		if _, ok, err := g.Claim(ctx, k, "id-"+k, time.Hour); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	g.Close()
	f, err := os.OpenFile(filepath.Join(dir, "claims.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{30, 0, 0, 0, 1, 2, 3, 4, 5, 6}) // a record cut short
	f.Close()
	for range 2 {
		g = openMemory(t, nil, dir, clk)
		for _, k := range []string{"a", "b"} {
			if holder, claimed, err := g.Claim(ctx, k, "other", time.Hour); err != nil || claimed || holder != "id-"+k {
				t.Fatalf("Claim(%s) after a torn tail = %q, %v, %v", k, holder, claimed, err)
			}
		}
		// Claimed on the first pass, held on the second.
		if holder, _, err := g.Claim(ctx, "c", "id-c", time.Hour); err != nil || holder != "id-c" {
			t.Fatalf("Claim(c) = %q, %v", holder, err)
		}
		g.Close()
	}
	g = openMemory(t, nil, dir, clk)
	defer g.Close()
	if c, _ := g.Len(); c != 3 {
		t.Fatalf("%d claims, want 3", c)
	}
	if err := os.WriteFile(filepath.Join(dir, "claims.log"), []byte("not a claims file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := memstore.Open(dir, memstore.Options{Clock: clk}); err == nil {
		t.Fatal("opened a file with a bad header")
	}
}

// Concurrent claims share writes, and every claim reported is durable.
func TestMemstoreConcurrentClaimsDurable(t *testing.T) {
	fsys := store.NewMemFS()
	clk := clock.NewFake(epoch)
	g := openMemory(t, fsys, "guards", clk)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := "k" + strconv.Itoa(i)
			if holder, ok, err := g.Claim(context.Background(), key, "id"+key, time.Hour); err != nil || !ok || holder != "id"+key {
				t.Errorf("Claim(%s) = %q, %v, %v", key, holder, ok, err)
			}
		})
	}
	wg.Wait()
	after := fsys.Crash()
	g.Close()
	g = openMemory(t, after, "guards", clk)
	defer g.Close()
	if c, _ := g.Len(); c != n {
		t.Fatalf("%d claims after a crash, want %d", c, n)
	}
}

// The file is rewritten when most of it has expired.
func TestMemstoreRewrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	g, err := memstore.Open(dir, memstore.Options{Clock: clk, SweepEvery: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i := range 3000 {
		ttl := time.Second
		if i%100 == 0 {
			ttl = time.Hour
		}
		if _, ok, err := g.Claim(ctx, "tenant-1/key-"+strconv.Itoa(i), "notification-id", ttl); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	before := g.FileSize()
	clk.Advance(time.Minute)
	if c, _ := g.Len(); c != 30 {
		t.Fatalf("%d claims after the sweep, want 30", c)
	}
	if after := g.FileSize(); after*10 > before {
		t.Fatalf("file of %d bytes after the sweep, %d before", after, before)
	}
	if st, err := os.Stat(filepath.Join(dir, "claims.log")); err != nil || st.Size() != g.FileSize() {
		t.Fatalf("claims.log: %v, %v; want %d bytes", st, err, g.FileSize())
	}
	// Still appending to the new file.
	if _, ok, err := g.Claim(ctx, "late", "id", time.Hour); err != nil || !ok {
		t.Fatal(ok, err)
	}
	g.Close()
	g = openMemory(t, nil, dir, clk)
	if c, _ := g.Len(); c != 31 {
		t.Fatalf("%d claims after reopening, want 31", c)
	}
}

// A failed fsync stops claims (what reached the disk is unknown) and the
// failed claim is not held; limits and earlier claims keep working.
func TestMemstoreFailedSync(t *testing.T) {
	ctx := context.Background()
	fsys := store.NewMemFS()
	clk := clock.NewFake(epoch)
	g := openMemory(t, fsys, "guards", clk)
	if _, ok, err := g.Claim(ctx, "a", "id-a", time.Hour); err != nil || !ok {
		t.Fatal(ok, err)
	}
	eio := errors.New("input/output error")
	fsys.FailSync(eio)
	if _, _, err := g.Claim(ctx, "b", "id-b", time.Hour); !errors.Is(err, store.ErrPoisoned) || !errors.Is(err, eio) {
		t.Fatalf("Claim with a failing fsync: %v", err)
	}
	fsys.FailSync(nil)
	if _, _, err := g.Claim(ctx, "c", "id-c", time.Hour); !errors.Is(err, store.ErrPoisoned) {
		t.Fatalf("Claim after a failed fsync: %v", err)
	}
	if holder, claimed, err := g.Claim(ctx, "a", "other", time.Hour); err != nil || claimed || holder != "id-a" {
		t.Fatalf("Claim of a held key after a failed fsync = %q, %v, %v", holder, claimed, err)
	}
	if ok, _, err := g.Allow(ctx, "k", notify.Limit{Rate: 1, Per: time.Second}); err != nil || !ok {
		t.Fatalf("Allow after a failed fsync = %v, %v", ok, err)
	}
	if c, _ := g.Len(); c != 1 {
		t.Fatalf("%d claims held, want 1", c)
	}
	if err := g.Close(); !errors.Is(err, store.ErrPoisoned) {
		t.Fatalf("Close: %v", err)
	}
	// Whether the failed claim reached the disk is unknown: retried with
	// its id after a restart, it is the caller's either way.
	g = openMemory(t, fsys, "guards", clk)
	defer g.Close()
	if holder, _, err := g.Claim(ctx, "b", "id-b", time.Hour); err != nil || holder != "id-b" {
		t.Fatalf("after reopening Claim(b) = %q, %v", holder, err)
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

// Concurrent callers share fsyncs.
func BenchmarkMemstoreClaimAllowParallel(b *testing.B) {
	g := openMemory(b, nil, b.TempDir(), clock.Real)
	defer g.Close()
	guardtest.BenchParallel(b, g)
}
