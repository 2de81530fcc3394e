package broker

import (
	"testing"
	"time"
)

// fakeRuntime stands in for the Go runtime: how much it holds, how many
// collections ran, and what a reclaim gives back.
type fakeRuntime struct {
	mapped, cycles uint64
	keep           uint64 // what a reclaim leaves mapped
	reclaims       int
}

func (f *fakeRuntime) reclaimer() *reclaimer {
	r := newReclaimer()
	r.read = func() (uint64, uint64) { return f.mapped, f.cycles }
	r.free = func() { f.reclaims++; f.cycles++; f.mapped = f.keep }
	return r
}

func TestReclaimerGivesBackAfterABurst(t *testing.T) {
	f := &fakeRuntime{mapped: 20 << 20}
	r := f.reclaimer()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func(s int) { r.check(t0.Add(time.Duration(s) * time.Second)) }

	// Under load the runtime collects on its own: nothing is forced.
	for s := 0; s < 120; s++ {
		f.mapped, f.cycles = 600<<20, f.cycles+1
		tick(s)
	}
	if f.reclaims != 0 {
		t.Fatalf("%d reclaims while the runtime collected by itself", f.reclaims)
	}
	// The burst is over: no more collections. After the quiet time, one
	// reclaim gives the memory back; none before.
	f.keep = 30 << 20
	for s := 120; s < 119+int(reclaimQuiet/time.Second); s++ { // the last collection was at 119
		tick(s)
	}
	if f.reclaims != 0 {
		t.Fatalf("reclaimed before %v without a collection", reclaimQuiet)
	}
	tick(119 + int(reclaimQuiet/time.Second))
	if f.reclaims != 1 || f.mapped != 30<<20 {
		t.Fatalf("after the quiet time: %d reclaims, %d MB mapped", f.reclaims, f.mapped>>20)
	}
	// Small: nothing more to do.
	f.keep = 30 << 20
	for s := 140; s < 400; s++ {
		tick(s)
	}
	if f.reclaims != 1 {
		t.Fatalf("%d reclaims of a small runtime", f.reclaims)
	}
}

func TestReclaimerBacksOffOnALargeLiveHeap(t *testing.T) {
	// 500 MB live: a reclaim frees nothing, so they come further apart.
	f := &fakeRuntime{mapped: 500 << 20, keep: 500 << 20}
	r := f.reclaimer()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var at []int
	for s := 0; s < 3600; s++ {
		before := f.reclaims
		r.check(t0.Add(time.Duration(s) * time.Second))
		if f.reclaims != before {
			at = append(at, s)
		}
	}
	if len(at) < 3 || len(at) > 12 {
		t.Fatalf("%d reclaims in an hour at %v: want a few, further and further apart", len(at), at)
	}
	for i := 2; i < len(at); i++ {
		if at[i]-at[i-1] < at[i-1]-at[i-2] {
			t.Fatalf("reclaims at %v: the gaps shrink", at)
		}
	}
	if gap := at[len(at)-1] - at[len(at)-2]; gap > int((reclaimMaxBackoff+reclaimQuiet)/time.Second)+1 {
		t.Fatalf("reclaims at %v: a gap of %ds exceeds the maximum backoff", at, gap)
	}
}
