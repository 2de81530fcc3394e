// Package clock lets code that expires, schedules or retries take its time
// from a Clock that tests can replace: Real is the system clock, and a Fake
// moves only when the test advances it, running the timers that fall due
// in order, so tests check time-based behaviour without sleeping.
package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in the goroutine
	// that advances the clock (Fake) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc; its methods behave as time.Timer's.
type Timer interface {
	// Stop prevents the call and reports whether it was still pending.
	Stop() bool
	// Reset makes the call happen d from now and reports whether it was
	// still pending.
	Reset(d time.Duration) bool
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Or returns c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}

// Fake is a Clock that stands still until Advance or Set moves it. The
// zero value is not usable; call NewFake. A Fake is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  fakeHeap
	seq     uint64
	changed chan struct{} // closed and replaced whenever a timer is added
}

// NewFake returns a fake clock showing start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc arranges for fn to run when the clock is advanced past d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn, index: -1}
	f.mu.Lock()
	f.scheduleLocked(t, d)
	f.mu.Unlock()
	return t
}

func (f *Fake) scheduleLocked(t *fakeTimer, d time.Duration) {
	t.when = f.now.Add(d)
	f.seq++
	t.seq = f.seq
	heap.Push(&f.timers, t)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Advance moves the clock forward by d, running every timer that falls due
// on the way in the order of their due times, each with the clock showing
// its due time. Timers armed by those functions run too when they fall
// due within d. The functions run in the caller's goroutine.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.Set(target)
}

// Set moves the clock to t (never backwards), running due timers as Advance does.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		if len(f.timers) == 0 || f.timers[0].when.After(t) {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		next := heap.Pop(&f.timers).(*fakeTimer)
		if next.when.After(f.now) {
			f.now = next.when
		}
		f.mu.Unlock()
		next.fn()
	}
}

// Pending returns the number of timers waiting to run.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Changed returns a channel that is closed when the next timer is armed,
// so a test can wait for code under test to schedule something.
func (f *Fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Next returns the due time of the earliest pending timer.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	return f.timers[0].when, true
}

type fakeTimer struct {
	f     *Fake
	fn    func()
	when  time.Time
	seq   uint64
	index int // in the heap, -1 when not pending
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.f.timers, t.index)
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.index >= 0
	if was {
		heap.Remove(&t.f.timers, t.index)
	}
	t.f.scheduleLocked(t, d)
	return was
}

// fakeHeap orders timers by due time, then by when they were armed.
type fakeHeap []*fakeTimer

func (h fakeHeap) Len() int { return len(h) }
func (h fakeHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h fakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *fakeHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *fakeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
