package procs

import (
	"testing"
	"time"
)

// fake drives a governor with a CPU clock the test advances.
type fake struct {
	g              *Governor
	now            time.Time
	cpu            time.Duration
	lowers, raises int
	unreadable     bool
	// The message store's batches and their records so far; syncRate
	// batches a second of batchRecords records each are added per sample.
	syncs, records         uint64
	syncRate, batchRecords float64
}

func newFake() *fake {
	f := &fake{now: time.Unix(1000, 0)}
	f.g = &Governor{
		cpu: func() time.Duration {
			if f.unreadable {
				return -1
			}
			return f.cpu
		},
		lower:   func() { f.lowers++ },
		raise:   func() { f.raises++ },
		Batches: func() (uint64, uint64) { return f.syncs, f.records },
	}
	f.g.Sample(f.now) // the first sample only sets the baseline
	return f
}

// run takes n samples 100 ms apart, each after the process used cores of CPU.
func (f *fake) run(n int, cores float64) {
	for range n {
		f.now = f.now.Add(100 * time.Millisecond)
		f.cpu += time.Duration(cores * float64(100*time.Millisecond))
		n := uint64(f.syncRate / 10)
		f.syncs += n
		f.records += n * uint64(f.batchRecords)
		f.g.Sample(f.now)
	}
}

// idle runs 3 s without load, after which the governor must have lowered.
func (f *fake) idle(t *testing.T) {
	t.Helper()
	f.run(30, 0)
	if !f.g.One() {
		t.Fatal("idle server not lowered")
	}
}

func TestGovernorLowersOnlyAfterAQuietSpell(t *testing.T) {
	f := newFake()
	f.run(29, 0.1)
	if f.lowers != 0 {
		t.Fatalf("lowered after 2.9 s of light load")
	}
	f.run(1, 0.4) // one busier sample starts the count again
	f.run(29, 0.1)
	if f.lowers != 0 || f.g.One() {
		t.Fatalf("lowered although the quiet spell was broken")
	}
	f.run(1, 0.1)
	if f.lowers != 1 || !f.g.One() {
		t.Fatalf("not lowered after 3 s under a quarter of a core: %d", f.lowers)
	}
	f.run(100, 0.1)
	if f.lowers != 1 || f.raises != 0 {
		t.Fatalf("changed again under steady light load: %d lowers, %d raises", f.lowers, f.raises)
	}
}

func TestGovernorRaisesAtOnceUnderLoad(t *testing.T) {
	f := newFake()
	f.idle(t)
	f.run(1, 0.45) // between the marks: stays
	if f.raises != 0 {
		t.Fatal("raised below half a core")
	}
	f.run(1, 0.9)
	if f.raises != 1 || f.g.One() {
		t.Fatalf("not raised by one busy sample: %d", f.raises)
	}
	// A load between the marks keeps every processor.
	f.run(100, 0.3)
	if f.lowers != 1 {
		t.Fatalf("lowered under a load above a quarter of a core: %d", f.lowers)
	}
}

// Clients that wait for each message to be stored make many small
// batches: such a load stays on one processor until it nearly fills it,
// and lowers to one from a higher CPU use than other loads.
func TestGovernorKeepsOneProcessorForAPacedLoad(t *testing.T) {
	f := newFake()
	f.idle(t)
	f.syncRate, f.batchRecords = 2700, 7 // 4 STOMP publishers, each waiting for its receipt
	f.run(100, 0.7)
	if f.raises != 0 || !f.g.One() {
		t.Fatalf("a paced load at 0.7 of a core raised: %d", f.raises)
	}
	f.run(1, 1.0)
	if f.raises != 1 || f.g.One() {
		t.Fatalf("a paced load filling its processor did not raise: %d", f.raises)
	}
	f.run(29, 0.85)
	if f.lowers != 1 {
		t.Fatal("lowered before a full spell")
	}
	f.run(1, 0.85)
	if f.lowers != 2 || !f.g.One() {
		t.Fatalf("a paced load at 0.85 of a core did not lower: %d", f.lowers)
	}

	// The same CPU with large batches (publishers streaming with a window
	// of confirms) or with few of them is not paced: it raises.
	for _, c := range []struct{ rate, records float64 }{{600, 150}, {100, 2}} {
		f := newFake()
		f.idle(t)
		f.syncRate, f.batchRecords = c.rate, c.records
		f.run(1, 0.7)
		if f.raises != 1 {
			t.Fatalf("%v batches a second of %v records: not raised at 0.7 of a core", c.rate, c.records)
		}
	}
}

func TestGovernorKeepsEveryProcessorWithoutReadings(t *testing.T) {
	f := newFake()
	f.idle(t)
	f.unreadable = true
	f.run(1, 0)
	if f.raises != 1 || f.g.One() {
		t.Fatalf("kept one processor without a CPU reading: %d raises", f.raises)
	}
	f.run(100, 0)
	if f.lowers != 1 {
		t.Fatalf("lowered without readings: %d", f.lowers)
	}
}

func TestProcessCPUCountsWork(t *testing.T) {
	before := processCPU()
	if before < 0 {
		t.Fatal("the process's CPU time cannot be read")
	}
	x := 0
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	if after := processCPU(); after-before < 10*time.Millisecond {
		t.Fatalf("50 ms of spinning counted as %v of CPU (%d)", after-before, x)
	}
}
