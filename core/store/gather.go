package store

import "time"

// gatherState is the flusher's adaptive group commit (see "Group commit"
// in the package documentation). Writers that wait for their record to be
// durable before they append the next one (a STOMP client waiting for each
// RECEIPT, an AMQP publisher waiting for each confirm) come back a round
// trip after their callback ran. Without waiting for them, the flusher
// starts the next fsync with only the records that arrived during the last
// one, and the writers that come back a moment later wait a whole fsync
// for the one after: the writers split into two alternating halves, each
// paying for its own fsync.
//
// So the flusher waits, up to one fsync's time, for as many waiting
// records as the last batch released plus those queued while it was
// written. Waiting for w to save a whole fsync pays off while w is shorter
// than the fsync. A wait that does not fill in time is a miss, and each
// miss in a row doubles the number of batches written before the next
// try, while a wait that fills takes one off the count of misses: writers
// that do not come back (a single writer, publishers that stream without
// waiting for each confirm) cost an occasional probe.
type gatherState struct {
	maxWait     time.Duration // longest wait; gatherMaxWait but for tests
	lastWaiters int           // ops with a callback in the last batch
	early       int           // ops with a callback queued before the last batch's callbacks ran
	fsync       time.Duration // moving average of a batch's write and fsync
	skip        int           // batches left before the next wait
	misses      int           // recent waits that did not fill in time
}

const (
	gatherMaxMisses = 10 // at most 1<<10 batches between waits
	gatherMaxWait   = time.Millisecond
)

// observe adds a batch's write and fsync time to the moving average.
func (g *gatherState) observe(d time.Duration) {
	if g.fsync == 0 {
		g.fsync = d
	} else {
		g.fsync += (d - g.fsync) / 8
	}
}

// gatherLocked waits, when gathering pays off, for the writers the last
// batch released to queue their next record. It returns with l.mu held.
//
// REQUIRES: l.mu, the flusher goroutine, a non-empty queue
func (l *Log) gatherLocked() {
	g := &l.gather
	want := g.early + g.lastWaiters
	if g.lastWaiters == 0 || l.mu.waiters >= want || l.mu.closing || l.mu.err != nil ||
		int64(len(l.mu.buf)) >= l.opts.MaxPendingBytes/2 {
		return
	}
	if g.skip > 0 {
		g.skip--
		return
	}
	wait := min(g.fsync, g.maxWait)
	l.mu.want = want
	l.mu.Unlock()
	l.gathers.Add(1)
	start := time.Now() // the wall clock: this is measured against the disk's
	l.window.Reset(wait)
	filled := false
	select {
	case <-l.enough:
		filled = true
	case <-l.window.C:
	case <-l.stop:
	}
	l.window.Stop()
	took := time.Since(start)
	l.mu.Lock()
	l.mu.want = 0
	select {
	case <-l.enough: // sent after the timer fired
	default:
	}
	if filled && took <= wait {
		g.misses = max(g.misses-1, 0)
		return
	}
	l.gatherMisses.Add(1)
	g.misses = min(g.misses+1, gatherMaxMisses)
	g.skip = 1 << g.misses
}
