package store

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLogRoundTrip(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, rep := mustOpen(t, fsys, dir, Options{SegmentSize: 4 << 10})
		if rep.Records != 0 || rep.Segments != 0 {
			t.Fatalf("fresh log report: %+v", rep)
		}
		// Parts counts on both sides of the 64-part mask boundary.
		partsOf := []int{1, 3, 64, 65, 130}
		var ids []uint64
		for i := range 40 {
			ids = append(ids, l.Append(payload(i, i*13), partsOf[i%len(partsOf)], nil))
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("ids not increasing: %v", ids)
			}
		}
		// Release: every part of record 0, part 0 of the 3-part records,
		// parts 63 and 64 of the 130-part ones. Repeats are no-ops.
		for range 2 {
			l.Release(ids[0], 0)
			for i, id := range ids {
				switch partsOf[i%len(partsOf)] {
				case 3:
					l.Release(id, 0)
				case 130:
					l.Release(id, 63)
					l.Release(id, 64)
				}
			}
		}
		l.Release(999999, 0)  // unknown id
		l.Release(ids[1], 5)  // part out of range
		l.Release(ids[1], -1) // negative part
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		want := func(i int) []int {
			if i == 0 {
				return nil
			}
			var live []int
			for p := range partsOf[i%len(partsOf)] {
				switch {
				case partsOf[i%len(partsOf)] == 3 && p == 0:
				case partsOf[i%len(partsOf)] == 130 && (p == 63 || p == 64):
				default:
					live = append(live, p)
				}
			}
			return live
		}
		check := func(l *Log) {
			t.Helper()
			got := replayAll(t, l)
			if len(got) != len(ids)-1 {
				t.Fatalf("replayed %d records, want %d: %s", len(got), len(ids)-1, describe(got))
			}
			for j, r := range got {
				i := j + 1
				if r.id != ids[i] {
					t.Fatalf("record %d: id %d, want %d", i, r.id, ids[i])
				}
				if !slices.Equal(r.live, want(i)) {
					t.Fatalf("record %d: live %v, want %v", i, r.live, want(i))
				}
				if !bytes.Equal(r.data, payload(i, i*13)) {
					t.Fatalf("record %d: data differs", i)
				}
			}
		}
		check(l)
		if st := l.Stats(); st.LiveRecords != len(ids)-1 {
			t.Fatalf("stats: %+v", st)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}

		l, rep = mustOpen(t, fsys, dir, Options{SegmentSize: 4 << 10})
		if rep.LiveRecords != len(ids)-1 || rep.TruncatedBytes != 0 || len(rep.Corrupt) != 0 {
			t.Fatalf("report after reopen: %+v", rep)
		}
		check(l)
		// Ids keep growing after a restart.
		next := appendSync(t, l, []byte("after"), 1)
		if next <= ids[len(ids)-1] {
			t.Fatalf("id after restart %d, last before %d", next, ids[len(ids)-1])
		}
		// Release after restart, then reopen once more.
		l.Release(ids[1], 2)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, _ = mustOpen(t, fsys, dir, Options{SegmentSize: 4 << 10})
		defer l.Close()
		got := replayAll(t, l)
		if got[0].id != ids[1] || !slices.Equal(got[0].live, []int{1}) {
			t.Fatalf("after release across restart: %s", describe(got[:1]))
		}
		if last := got[len(got)-1]; last.id != next || string(last.data) != "after" {
			t.Fatalf("last record %d %q", last.id, last.data)
		}
	})
}

// Ids are never reused, even after every record was released and every
// segment holding them deleted.
func TestLogIDsNeverReused(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		o := Options{SegmentSize: 4 << 10}
		l, _ := mustOpen(t, fsys, dir, o)
		var last uint64
		for i := range 200 {
			last = l.Append(payload(i, 100), 1, nil)
			l.Release(last, 0)
		}
		settle(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			l, rep := mustOpen(t, fsys, dir, o)
			if rep.LiveRecords != 0 {
				t.Fatalf("live records after releasing all: %+v", rep)
			}
			id := appendSync(t, l, nil, 1)
			if id <= last {
				t.Fatalf("id %d reused (last was %d)", id, last)
			}
			last = id
			l.Release(id, 0)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(segFiles(t, fsys, dir)); n > 2 {
			t.Fatalf("%d segment files left: %v", n, segFiles(t, fsys, dir))
		}
	})
}

func TestLogDoneExactlyOnce(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _ := mustOpen(t, fsys, dir, Options{SegmentSize: 8 << 10})
		const writers, each = 8, 200
		var calls [writers * each]atomic.Int32
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					n := w*each + i
					done := make(chan struct{})
					l.Append(payload(n, n%300), 1+n%3, func(err error) {
						if err != nil {
							t.Errorf("done(%v)", err)
						}
						calls[n].Add(1)
						close(done)
					})
					if i%10 == 0 {
						<-done
					}
				}
			})
		}
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for n := range calls {
			if c := calls[n].Load(); c != 1 {
				t.Fatalf("done of append %d called %d times", n, c)
			}
		}
	})
}

func TestLogInvalidAndClosed(t *testing.T) {
	l, _ := mustOpen(t, NewMemFS(), "/l", Options{})
	for _, parts := range []int{0, -1, MaxParts + 1} {
		ch := make(chan error, 1)
		if id := l.Append([]byte("x"), parts, func(err error) { ch <- err }); id != 0 {
			t.Fatalf("parts %d: id %d", parts, id)
		}
		if err := wait(t, ch); !errors.Is(err, ErrInvalid) {
			t.Fatalf("parts %d: %v", parts, err)
		}
	}
	ok := appendSync(t, l, []byte("ok"), 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ch := make(chan error, 2)
	if id := l.Append([]byte("late"), 1, func(err error) { ch <- err }); id != 0 {
		t.Fatalf("append after close returned id %d", id)
	}
	l.Barrier(func(err error) { ch <- err })
	for range 2 {
		if err := wait(t, ch); !errors.Is(err, ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	}
	l.Release(ok, 0) // ignored, must not panic
}

func TestReplayErrorStops(t *testing.T) {
	fsys := NewMemFS()
	l, _ := mustOpen(t, fsys, "/l", Options{})
	for i := range 5 {
		l.Append(payload(i, 10), 1, nil)
	}
	l.Close()
	l, _ = mustOpen(t, fsys, "/l", Options{})
	defer l.Close()
	stop := errors.New("stop")
	n := 0
	err := l.Replay(func(id uint64, live []int, data []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Replay returned %v after %d calls", err, n)
	}
}

// Release from inside Replay (as the broker does for expired messages) is
// allowed and becomes durable with the next Append.
func TestReleaseDuringReplay(t *testing.T) {
	fsys := NewMemFS()
	l, _ := mustOpen(t, fsys, "/l", Options{SegmentSize: 4 << 10})
	for i := range 100 {
		l.Append(payload(i, 200), 2, nil)
	}
	l.Close()
	l, _ = mustOpen(t, fsys, "/l", Options{SegmentSize: 4 << 10})
	err := l.Replay(func(id uint64, live []int, data []byte) error {
		l.Release(id, 0)
		l.Release(id, 1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, l, []byte("x"), 1)
	st := settle(t, l)
	if st.LiveRecords != 1 || st.Segments > 2 {
		t.Fatalf("after releasing everything during replay: %+v", st)
	}
	l.Close()
	l, rep := mustOpen(t, fsys, "/l", Options{SegmentSize: 4 << 10})
	defer l.Close()
	if rep.LiveRecords != 1 {
		t.Fatalf("report: %+v", rep)
	}
}

// Append allocates nothing per record in steady state (the callback is
// reused, buffers are recycled between batches).
func TestAppendAllocs(t *testing.T) {
	l, _ := mustOpen(t, NewMemFS(), "/l", Options{SegmentSize: 1 << 30})
	defer l.Close()
	data := make([]byte, 64)
	ch := make(chan error, 1)
	done := func(err error) { ch <- err }
	for range 2000 { // warm up buffers and the index map
		l.Append(data, 1, done)
		<-ch
	}
	allocs := testing.AllocsPerRun(2000, func() {
		l.Append(data, 1, done)
		<-ch
	})
	if allocs > 1 {
		t.Fatalf("%.2f allocations per synced append, want at most 1 (amortized map and file growth)", allocs)
	}
}

// A callback may append even when the queue is full: the flusher never
// waits for itself.
func TestAppendFromCallback(t *testing.T) {
	l, _ := mustOpen(t, NewMemFS(), "/l", Options{MaxPendingBytes: 4 << 10})
	defer l.Close()
	data := make([]byte, 1024)
	finished := make(chan error, 1)
	var chain func(n int) func(error)
	chain = func(n int) func(error) {
		return func(err error) {
			if err != nil || n == 0 {
				finished <- err
				return
			}
			for range 8 { // overfill the queue from the flusher goroutine
				l.Append(data, 1, nil)
			}
			l.Append(data, 1, chain(n-1))
		}
	}
	l.Append(data, 1, chain(200))
	for range 2000 { // and keep it full from outside
		l.Append(data, 1, nil)
	}
	if err := wait(t, finished); err != nil {
		t.Fatal(err)
	}
}

// ReleaseAll releases the given part of each record, as Release would, and
// the releases survive a reopen.
func TestLogReleaseAll(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _ := mustOpen(t, fsys, dir, Options{})
		var ids []uint64
		for i := 0; i < 6; i++ {
			ids = append(ids, appendSync(t, l, payload(i, 32), 2))
		}
		l.ReleaseAll([]uint64{ids[0], ids[2], ids[4], 999999}, 0)
		l.ReleaseAll([]uint64{ids[0], ids[1]}, 1)
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, _ = mustOpen(t, fsys, dir, Options{})
		defer l.Close()
		got := map[uint64][]int{}
		for _, r := range replayAll(t, l) {
			got[r.id] = r.live
		}
		want := map[uint64][]int{ids[1]: {0}, ids[2]: {1}, ids[3]: {0, 1}, ids[4]: {1}, ids[5]: {0, 1}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("live parts after reopen %v, want %v", got, want)
		}
	})
}
