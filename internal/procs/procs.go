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

	log *slog.Logger
	// cpu returns the process's CPU time so far; set and raise change the
	// number of processors (to one, and back to the runtime's default).
	cpu   func() time.Duration
	lower func()
	raise func()

	one     bool          // running on one processor
	last    time.Duration // cpu at the previous sample
	lastAt  time.Time
	quiet   int // samples in a row under LowerAt
	started bool
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
	if g.Interval <= 0 {
		g.Interval = 100 * time.Millisecond
	}
	if g.RaiseAt <= 0 {
		g.RaiseAt = 0.5
	}
	if g.LowerAt <= 0 {
		g.LowerAt = 0.25
	}
	if g.LowerAfter <= 0 {
		g.LowerAfter = 30
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
	if !g.started {
		g.started, g.last, g.lastAt = true, cpu, now
		return
	}
	wall := now.Sub(g.lastAt)
	if wall <= 0 {
		return
	}
	cores := float64(cpu-g.last) / float64(wall)
	g.last, g.lastAt = cpu, now
	switch {
	case g.one && cores >= g.RaiseAt:
		g.raise()
		g.one, g.quiet = false, 0
		g.debug("raised", cores)
	case g.one:
	case cores < g.LowerAt:
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
