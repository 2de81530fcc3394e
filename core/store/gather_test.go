package store

import (
	"sync"
	"testing"
	"time"
)

// gatherLog opens a log on a MemFS whose segment fsyncs take syncTime, and
// records how many records each batch held.
func gatherLog(t *testing.T, syncTime time.Duration) (*Log, func() []int) {
	t.Helper()
	fsys := NewMemFS()
	fsys.SetHook(func(op, name string) {
		if op == "sync" {
			time.Sleep(syncTime)
		}
	})
	var mu sync.Mutex
	var batches []int
	l, _ := mustOpen(t, fsys, "/data/log", Options{OnSync: func(_ time.Duration, records int) {
		mu.Lock()
		batches = append(batches, records)
		mu.Unlock()
	}})
	t.Cleanup(func() { l.Close() })
	// A Go timer shorter than a millisecond may sleep a millisecond; a
	// longer cap keeps the wait at one fsync's time however slow the
	// machine running the test is.
	l.gather.maxWait = time.Second
	return l, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), batches...)
	}
}

// writeRounds runs writers that each append a record, wait for it to be
// durable, take pause (a client's round trip) and go again, rounds times.
func writeRounds(t *testing.T, l *Log, writers, rounds int, pause time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			done := make(chan error, 1)
			for range rounds {
				if l.Append([]byte{byte(w)}, 1, func(err error) { done <- err }) == 0 {
					errs <- <-done
					return
				}
				if err := <-done; err != nil {
					errs <- err
					return
				}
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Writers that each wait for their record before the next one share one
// fsync per round, instead of splitting into halves that take turns.
func TestGatherWaitsForReturningWriters(t *testing.T) {
	l, batches := gatherLog(t, 10*time.Millisecond)
	const writers, rounds = 4, 15
	writeRounds(t, l, writers, rounds, time.Millisecond)
	b := batches()
	// Without gathering, the writer whose record started the first batch
	// comes back while the other three are being synced, and the two
	// groups alternate: two fsyncs per round.
	if len(b) > rounds+rounds/3 {
		t.Errorf("%d writers, %d rounds each: %d fsyncs %v, want about one per round", writers, rounds, len(b), b)
	}
	full := 0
	for _, n := range b {
		if n == writers {
			full++
		}
	}
	if full < rounds/2 {
		t.Errorf("%d of %d batches held all %d writers' records: %v", full, len(b), writers, b)
	}
	if st := l.Stats(); st.Gathers == 0 {
		t.Errorf("Stats().Gathers = 0 after %d batches", len(b))
	}
}

// A lone writer never waits for itself.
func TestGatherLoneWriterNotDelayed(t *testing.T) {
	l, batches := gatherLog(t, time.Millisecond)
	writeRounds(t, l, 1, 30, 0)
	if st := l.Stats(); st.Gathers != 0 {
		t.Errorf("a lone writer's log waited %d times (%d missed) over %d batches", st.Gathers, st.GatherMisses, len(batches()))
	}
}

// Writers that stop coming back cost a wait of one fsync's time, once:
// the record that was queued is written when the wait ends, and the next
// batches do not wait for the writers that left.
func TestGatherWritersThatLeave(t *testing.T) {
	l, batches := gatherLog(t, 5*time.Millisecond)
	writeRounds(t, l, 4, 5, time.Millisecond)
	writeRounds(t, l, 1, 20, 0)
	st := l.Stats()
	if st.GatherMisses == 0 {
		t.Errorf("the wait for writers that left did not end as a miss: %+v, batches %v", st, batches())
	}
	if st.GatherMisses > 2 {
		t.Errorf("the log waited %d times in vain for writers that left: %+v, batches %v", st.GatherMisses, st, batches())
	}
	if st.LiveRecords != 40 {
		t.Errorf("%d records written, want 40", st.LiveRecords)
	}
}
