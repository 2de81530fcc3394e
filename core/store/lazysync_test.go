package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// liveAfterCrash opens what m's durable state holds and returns its live
// records.
func liveAfterCrash(t *testing.T, m *MemFS, dir string) int {
	t.Helper()
	l, _ := mustOpen(t, m.Crash(), dir, Options{})
	defer l.Close()
	return len(replayAll(t, l))
}

func appendN(t *testing.T, l *Log, n int) []uint64 {
	t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = appendSync(t, l, payload(i, 100), 1)
	}
	return ids
}

// waitUntil polls cond until it holds, failing the test with what after
// 10 s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(time.Millisecond)
	}
}

// countOps counts m's writes and fsyncs from now on.
func countOps(t *testing.T, m *MemFS) (writes, syncs *atomic.Int64) {
	writes, syncs = new(atomic.Int64), new(atomic.Int64)
	m.SetHook(func(op, name string) {
		switch op {
		case "write":
			writes.Add(1)
		case "sync":
			syncs.Add(1)
		}
	})
	t.Cleanup(func() { m.SetHook(nil) })
	return writes, syncs
}

// Tombstones alone wait in the queue; the next append takes them along,
// and its done promises them.
func TestReleasesAloneWaitForTheNextAppend(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour})
	defer l.Close()
	ids := appendN(t, l, 50)
	writes, syncs := countOps(t, m)
	l.ReleaseAll(ids, 0)
	time.Sleep(50 * time.Millisecond)
	if w, s := writes.Load(), syncs.Load(); w != 0 || s != 0 {
		t.Fatalf("%d writes and %d fsyncs for tombstones alone; want them to wait", w, s)
	}
	// Nothing promised the releases yet: a crash may undo them.
	if n := liveAfterCrash(t, m, dir); n != 50 {
		t.Fatalf("%d records after a crash; want the 50 whose releases wait", n)
	}
	appendSync(t, l, []byte("later"), 1)
	if n := liveAfterCrash(t, m, dir); n != 1 {
		t.Fatalf("%d records after a crash; want only the later one (its done promises the releases)", n)
	}
	if w, s := writes.Load(), syncs.Load(); w != 1 || s != 1 {
		t.Fatalf("%d writes and %d fsyncs; want the releases and the append in one", w, s)
	}
}

// Tombstones that nothing follows are written and fsynced after
// ReleaseSyncDelay.
func TestReleasesAloneSyncedAfterTheDelay(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: 20 * time.Millisecond})
	defer l.Close()
	ids := appendN(t, l, 50)
	syncs := l.Stats().Syncs
	for _, id := range ids {
		l.Release(id, 0)
	}
	waitUntil(t, func() bool { return l.Stats().Syncs != syncs }, "the tombstones were never fsynced")
	if n := liveAfterCrash(t, m, dir); n != 0 {
		t.Fatalf("%d records after a crash; want none", n)
	}
	if got := l.Stats().Syncs - syncs; got != 1 {
		t.Fatalf("%d fsyncs for 50 releases in a row; want one", got)
	}
}

// A Barrier, and Close, end the wait: everything released before is
// durable when they return.
func TestBarrierAndCloseTakeReleasesAlong(t *testing.T) {
	for _, end := range []string{"barrier", "close"} {
		t.Run(end, func(t *testing.T) {
			m, dir := NewMemFS(), "/data/log"
			l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour})
			ids := appendN(t, l, 50)
			l.ReleaseAll(ids, 0)
			time.Sleep(10 * time.Millisecond) // the flusher is waiting
			if end == "barrier" {
				if err := barrier(t, l); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if n := liveAfterCrash(t, m, dir); n != 0 {
				t.Fatalf("%d records after the %s and a crash; want none", n, end)
			}
		})
	}
}

// Tombstones past half of MaxPendingBytes are written without waiting.
func TestManyReleasesDoNotWait(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour, MaxPendingBytes: 4 << 10})
	defer l.Close()
	ids := appendN(t, l, 400) // 400 tombstones: about 11 KiB
	_, syncs := countOps(t, m)
	l.ReleaseAll(ids, 0)
	waitUntil(t, func() bool { return syncs.Load() > 0 }, "a full queue of tombstones waited")
}

// A negative ReleaseSyncDelay writes tombstones alone at once.
func TestReleaseSyncDelayOff(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: -1})
	defer l.Close()
	ids := appendN(t, l, 50)
	l.ReleaseAll(ids, 0)
	waitUntil(t, func() bool { return liveAfterCrash(t, m, dir) == 0 }, "tombstones alone were not fsynced")
}

// A failed fsync of tombstones that waited stops the log, as any failed
// commit does: later appends fail, even once fsync works again.
func TestFailedReleaseSyncPoisons(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: 20 * time.Millisecond})
	defer l.Close()
	ids := appendN(t, l, 10)
	_, syncs := countOps(t, m)
	m.FailSync(errors.New("disk gone"))
	l.ReleaseAll(ids, 0)
	waitUntil(t, func() bool { return syncs.Load() > 0 }, "the tombstones were never fsynced")
	m.FailSync(nil)
	ch := make(chan error, 1)
	l.Append([]byte("after"), 1, func(err error) { ch <- err })
	if err := wait(t, ch); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("append after the tombstones' fsync failed: %v; want ErrPoisoned", err)
	}
}
