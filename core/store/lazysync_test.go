package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// releaseAndWrite releases every id and waits until the flusher wrote the
// tombstones (the file system saw a write after the releases).
func releaseAndWrite(t *testing.T, m *MemFS, l *Log, ids []uint64) {
	t.Helper()
	var writes atomic.Int64
	m.SetHook(func(op, name string) {
		if op == "write" {
			writes.Add(1)
		}
	})
	defer m.SetHook(nil)
	l.ReleaseAll(ids, 0)
	deadline := time.Now().Add(10 * time.Second)
	for writes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tombstones were never written")
		}
		time.Sleep(time.Millisecond)
	}
}

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

// A batch of tombstones alone is written without an fsync; the next
// append's fsync makes it durable before that append's done runs.
func TestReleasesAloneWaitForTheNextSync(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour})
	defer l.Close()
	ids := appendN(t, l, 50)
	syncs := l.Stats().Syncs
	releaseAndWrite(t, m, l, ids)
	if got := l.Stats().Syncs; got != syncs {
		t.Fatalf("%d fsyncs for a batch of tombstones alone; want none", got-syncs)
	}
	// Nothing promised the releases yet: a crash may undo them.
	if n := liveAfterCrash(t, m, dir); n != 50 {
		t.Fatalf("%d records after a crash; want the 50 whose releases were not synced", n)
	}
	appendSync(t, l, []byte("later"), 1)
	if n := liveAfterCrash(t, m, dir); n != 1 {
		t.Fatalf("%d records after a crash; want only the later one (its done promises the releases)", n)
	}
}

// Tombstones that nothing follows are fsynced within ReleaseSyncDelay.
func TestReleasesAloneSyncedWithinTheDelay(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: 20 * time.Millisecond})
	defer l.Close()
	ids := appendN(t, l, 50)
	syncs := l.Stats().Syncs
	l.ReleaseAll(ids, 0)
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Syncs == syncs {
		if time.Now().After(deadline) {
			t.Fatal("the tombstones were never fsynced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := liveAfterCrash(t, m, dir); n != 0 {
		t.Fatalf("%d records after a crash; want none", n)
	}
}

// Close fsyncs tombstones written without one.
func TestCloseSyncsReleases(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour})
	ids := appendN(t, l, 50)
	releaseAndWrite(t, m, l, ids)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := liveAfterCrash(t, m, dir); n != 0 {
		t.Fatalf("%d records after close and a crash; want none", n)
	}
}

// A batch of tombstones alone that fills the active segment goes on in a
// new one: the full one is fsynced before it is left, so the next
// append's done (an fsync of the new segment only) promises every
// tombstone.
func TestRotationSyncsReleases(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour, SegmentSize: minSegmentSize})
	defer l.Close()
	// Many segments; a third of the records released, so that every
	// segment keeps most of its records (neither deleted nor compacted),
	// and more tombstones than a segment holds.
	ids := appendN(t, l, 900)
	var released []uint64
	for i, id := range ids {
		if i%3 == 0 {
			released = append(released, id)
		}
	}
	segs := l.Stats().Segments
	releaseAndWrite(t, m, l, released)
	appendSync(t, l, []byte("last"), 1)
	if st := l.Stats(); st.Segments <= segs {
		t.Fatalf("%d segments, %d before the releases; want the tombstones to start a new one", st.Segments, segs)
	}
	if n := liveAfterCrash(t, m, dir); n != 601 {
		t.Fatalf("%d records after a crash; want 601 (600 not released and the last one)", n)
	}
}

// A negative ReleaseSyncDelay fsyncs every batch, tombstones alone too.
func TestReleaseSyncDelayOff(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: -1})
	defer l.Close()
	ids := appendN(t, l, 50)
	releaseAndWrite(t, m, l, ids)
	deadline := time.Now().Add(10 * time.Second)
	for liveAfterCrash(t, m, dir) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("tombstones alone were not fsynced")
		}
		time.Sleep(time.Millisecond)
	}
}

// A failed fsync of tombstones written without one stops the log, as a
// failed commit does: later appends fail, even once fsync works again.
func TestFailedLazySyncPoisons(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: 20 * time.Millisecond})
	defer l.Close()
	ids := appendN(t, l, 10)
	var writes, syncs atomic.Int64
	m.SetHook(func(op, name string) {
		switch op {
		case "write":
			writes.Add(1)
		case "sync":
			if writes.Load() > 0 {
				syncs.Add(1)
			}
		}
	})
	m.FailSync(errors.New("disk gone"))
	l.ReleaseAll(ids, 0)
	deadline := time.Now().Add(10 * time.Second)
	for syncs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tombstones were never fsynced")
		}
		time.Sleep(time.Millisecond)
	}
	m.SetHook(nil)
	m.FailSync(nil)
	ch := make(chan error, 1)
	l.Append([]byte("after"), 1, func(err error) { ch <- err })
	if err := wait(t, ch); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("append after the tombstones' fsync failed: %v; want ErrPoisoned", err)
	}
}

// A Barrier after tombstones written without an fsync makes them durable
// before its done runs, though its own batch has no bytes to write.
func TestBarrierSyncsReleases(t *testing.T) {
	m, dir := NewMemFS(), "/data/log"
	l, _ := mustOpen(t, m, dir, Options{ReleaseSyncDelay: time.Hour})
	defer l.Close()
	ids := appendN(t, l, 50)
	releaseAndWrite(t, m, l, ids)
	if err := barrier(t, l); err != nil {
		t.Fatal(err)
	}
	if n := liveAfterCrash(t, m, dir); n != 0 {
		t.Fatalf("%d records after a barrier and a crash; want none", n)
	}
}
