// Package procs adapts the number of processors Go schedules on
// (GOMAXPROCS) to the server's load.
//
// At a moderate steady rate a message wakes a few goroutines, and with
// idle processors each wake-up also wakes a spinning OS thread that looks
// for more work, finds none and sleeps again: measured at 5,000 msg/s on a
// 2-core machine, that is 15–20% of the server's CPU per message (MQTT
// QoS 1 12 µs against 10 µs with one processor, AMQP 20 µs against 16 µs).
// One processor serves such a load with no such hand-offs, the way a
// single-threaded broker does. Under load the governor gives back every
// processor at once.
//
// The governor samples the process's CPU time (user and system, every
// thread) each Interval. With one processor it raises to the runtime's
// default as soon as one interval used RaiseAt of a core; with more it
// lowers to one only after LowerAfter intervals in a row each used less
// than LowerAt of a core. A burst thus runs on one processor for at most
// one interval; a load between the two marks keeps what it has.
//
// A load paced by the disk is treated apart (Batches): clients that wait
// for each message to be stored before they send the next (a STOMP
// publisher waiting for each RECEIPT, an AMQP publisher for each confirm)
// make the message store write many small batches, each a round trip of
// fsync, callbacks, the client's turn and the next frame. There the
// server's time goes to waking goroutines on other processors, not to
// work that needs them: measured with 4 STOMP publishers each waiting for
// its receipt on a 2-core machine, one processor carried 10,700–11,000
// msg/s at 0.69 of a core against 8,700–9,500 msg/s at 0.76 with two.
// Such a load runs on one processor up to PacedRaiseAt of a core (it
// lowers to one under PacedLowerAt).
package procs

import (
	"log/slog"
	"runtime"
	"syscall"
	"time"
)

// Governor decides the number of processors. The zero value is not
// usable: use New.
type Governor struct {
	// Interval between samples (default 100 ms).
	Interval time.Duration
	// RaiseAt is the CPU use, in cores, at which one processor is raised
	// to all (default 0.5).
	RaiseAt float64
	// LowerAt is the CPU use, in cores, under which all processors are
	// lowered to one after LowerAfter samples (default 0.25, 30 samples).
	LowerAt    float64
	LowerAfter int

	// Batches, when set, returns the message store's batches (fsyncs)
	// and the records they held so far. A sample in which the store
	// wrote at least PacedSyncs batches a second of at most PacedRecords
	// records each is paced by the disk: with all processors it lowers
	// under PacedLowerAt of a core, and with one it raises only at
	// PacedRaiseAt (defaults 500 a second, 32 records, 0.9 and 0.95).
	Batches      func() (syncs, records uint64)
	PacedSyncs   float64
	PacedRecords float64
	PacedLowerAt float64
	PacedRaiseAt float64

	log *slog.Logger
	// cpu returns the process's CPU time so far; set and raise change the
	// number of processors (to one, and back to the runtime's default).
	cpu   func() time.Duration
	lower func()
	raise func()

	one         bool          // running on one processor
	last        time.Duration // cpu at the previous sample
	lastSyncs   uint64        // Batches at the previous sample
	lastRecords uint64
	lastAt      time.Time
	quiet       int // samples in a row under LowerAt
	started     bool
}

// New returns a governor of this process's GOMAXPROCS.
func New(log *slog.Logger) *Governor {
	return &Governor{
		log:   log,
		cpu:   processCPU,
		lower: func() { runtime.GOMAXPROCS(1) },
		raise: func() { runtime.SetDefaultGOMAXPROCS() },
	}
}

func (g *Governor) defaults() {
	orDefault(&g.Interval, 100*time.Millisecond)
	orDefault(&g.RaiseAt, 0.5)
	orDefault(&g.LowerAt, 0.25)
	orDefault(&g.LowerAfter, 30)
	orDefault(&g.PacedSyncs, 500)
	orDefault(&g.PacedRecords, 32)
	orDefault(&g.PacedLowerAt, 0.9)
	orDefault(&g.PacedRaiseAt, 0.95)
}

// orDefault sets *v to d unless *v is positive.
func orDefault[T int | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Run samples until stop is closed, then gives back every processor. It
// does nothing when the runtime has only one processor to begin with.
func (g *Governor) Run(stop <-chan struct{}) {
	g.defaults()
	if runtime.GOMAXPROCS(0) <= 1 {
		return
	}
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if g.one {
				g.raise()
				g.one = false
			}
			return
		case now := <-t.C:
			g.Sample(now)
		}
	}
}

// Sample takes one sample at now and changes the number of processors if
// the load calls for it. Run calls it each Interval; tests call it with
// their own times.
func (g *Governor) Sample(now time.Time) {
	g.defaults()
	cpu := g.cpu()
	if cpu < 0 {
		// No reading: keep every processor.
		if g.one {
			g.raise()
			g.one = false
		}
		g.started, g.quiet = false, 0
		return
	}
	var syncs, records uint64
	if g.Batches != nil {
		syncs, records = g.Batches()
	}
	if !g.started {
		g.started, g.last, g.lastAt = true, cpu, now
		g.lastSyncs, g.lastRecords = syncs, records
		return
	}
	wall := now.Sub(g.lastAt)
	if wall <= 0 {
		return
	}
	cores := float64(cpu-g.last) / float64(wall)
	paced := g.paced(syncs-g.lastSyncs, records-g.lastRecords, wall)
	g.last, g.lastAt = cpu, now
	g.lastSyncs, g.lastRecords = syncs, records
	raiseAt, lowerAt := g.RaiseAt, g.LowerAt
	if paced {
		raiseAt, lowerAt = g.PacedRaiseAt, g.PacedLowerAt
	}
	switch {
	case g.one && cores >= raiseAt:
		g.raise()
		g.one, g.quiet = false, 0
		g.debug("raised", cores)
	case g.one:
	case cores < lowerAt:
		g.quiet++
		if g.quiet >= g.LowerAfter {
			g.lower()
			g.one, g.quiet = true, 0
			g.debug("lowered to one", cores)
		}
	default:
		g.quiet = 0
	}
}

// paced reports whether syncs batches holding records records in wall
// make a load paced by the disk (see Batches).
func (g *Governor) paced(syncs, records uint64, wall time.Duration) bool {
	if syncs == 0 {
		return false
	}
	return float64(syncs)/wall.Seconds() >= g.PacedSyncs &&
		float64(records)/float64(syncs) <= g.PacedRecords
}

// One reports whether the governor has lowered the processors to one.
func (g *Governor) One() bool { return g.one }

func (g *Governor) debug(what string, cores float64) {
	if g.log != nil {
		g.log.Debug("processors "+what, "gomaxprocs", runtime.GOMAXPROCS(0), "cpu_cores", cores)
	}
}

// processCPU is the CPU time of every thread of the process so far, or
// -1 when it cannot be read.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
