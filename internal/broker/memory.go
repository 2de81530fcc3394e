package broker

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Memory given back after a burst.
//
// Go's collector runs when the heap grows to twice what was live after the
// previous collection. After a burst (a backlog queued in memory, then
// drained) the server allocates little, so no collection comes for up to
// two minutes, and the scavenger keeps the pages up to the heap goal the
// burst set: RSS stays at hundreds of megabytes on an idle server. The
// reclaimer notices a runtime that has not collected for a while while
// holding much more memory than it did when idle, and gives it back
// (debug.FreeOSMemory: a collection, then every free page returned). It
// does nothing under load (collections come on their own) and backs off
// when a reclaim finds nothing to return, so an idle server with a large
// live heap is not collected again and again.

// reclaimer decides when to give memory back. It runs on watchResources'
// goroutine.
type reclaimer struct {
	lastCycles uint64    // GC cycles seen at the last check
	lastGC     time.Time // when the cycle count last moved
	next       time.Time // no reclaim before
	backoff    time.Duration
	samples    []metrics.Sample
	free       func() // debug.FreeOSMemory
	// read returns the memory the runtime holds from the kernel and has
	// not released, and the collections so far.
	read func() (mapped, cycles uint64)
}

const (
	// reclaimQuiet is how long the runtime must have gone without a
	// collection before a reclaim.
	reclaimQuiet = 3 * time.Second
	// reclaimFloor is the mapped memory below which nothing is done.
	reclaimFloor      = 48 << 20
	reclaimMinBackoff = 15 * time.Second
	reclaimMaxBackoff = 10 * time.Minute
)

func newReclaimer() *reclaimer {
	r := &reclaimer{
		samples: []metrics.Sample{
			{Name: "/gc/cycles/total:gc-cycles"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
		},
		backoff: reclaimMinBackoff,
		free:    debug.FreeOSMemory,
	}
	r.read = r.readRuntime
	return r
}

func (r *reclaimer) readRuntime() (mapped, cycles uint64) {
	metrics.Read(r.samples)
	return r.samples[1].Value.Uint64() - r.samples[2].Value.Uint64(), r.samples[0].Value.Uint64()
}

// check is called every second with the time.
func (r *reclaimer) check(now time.Time) {
	mapped, cycles := r.read()
	if cycles != r.lastCycles || r.lastGC.IsZero() {
		r.lastCycles, r.lastGC = cycles, now
		return
	}
	if mapped < reclaimFloor || now.Sub(r.lastGC) < reclaimQuiet || now.Before(r.next) {
		return
	}
	r.free()
	after, cycles := r.read()
	r.lastCycles, r.lastGC = cycles, now
	if after < mapped-mapped/4 {
		// It gave back at least a quarter: look again soon.
		r.backoff = reclaimMinBackoff
	} else {
		// Little to give back (a large live heap): wait longer each time.
		r.backoff = min(2*r.backoff, reclaimMaxBackoff)
	}
	r.next = now.Add(r.backoff)
}

// processRSS returns the resident set size of the process as the kernel
// counts it (/proc/self/statm), or 0 when it cannot be read.
func processRSS() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// setMemoryLimit gives the runtime a soft memory limit at the memory
// alarm's watermark, so it collects harder before the alarm blocks
// publishers; GOMEMLIMIT, when set, wins.
func setMemoryLimit(limit uint64) {
	if limit == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(limit))
}
