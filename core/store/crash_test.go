package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash test runs writers against a log on a MemFS, crashes the file
// system at a random moment while the flusher is busy, reopens the crashed
// copy and checks the log's promises against a model of what the writers
// did:
//
//   - every record whose done(nil) ran before the crash is present, unless
//     all its parts were released;
//   - nothing appears that was not appended, and data is intact;
//   - a part released before an Append (by the same writer) whose
//     done(nil) ran before the crash stays released;
//   - a part never released is live; a record or part gone after one
//     recovery never comes back after a later one.
//
// Segments are tiny so that rotation, deletion and compaction all happen
// while the crash can strike. Each round runs several generations (crash,
// reopen, verify, carry on), half of them with torn unsynced tails.
func TestCrashRecovery(t *testing.T) {
	rounds := 24
	if testing.Short() {
		rounds = 8
		t.Logf("-short: %d crash rounds instead of 24", rounds)
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("seed base %d", base)
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			crashRound(t, base+uint64(round)*7919)
		})
	}
}

// crashModel is what the writers know they did. Records are keyed by a tag
// written at the start of their payload, because a crash can keep a record
// whose Append had not yet returned its id.
type crashModel struct {
	mu      sync.Mutex
	frozen  bool // the crash snapshot was taken: later actions do not count
	recs    map[uint64]*modelRec
	byID    map[uint64]*modelRec
	present []*modelRec // records known to exist, for writers to release
	writers []*crashWriter
}

type modelRec struct {
	tag       uint64
	id        uint64 // 0 until Append returned
	size      int
	parts     int
	acked     atomic.Bool // done(nil) ran
	requested []bool      // Release was called for the part
	durable   []bool      // that release is known durable
	dead      []bool      // a recovery showed the part released
	gone      bool        // a recovery showed the record gone
	survived  bool        // a recovery showed the record present

	ackedAtCrash bool
}

type crashWriter struct {
	n          int
	rels       []relRef // releases in call order
	durableRel int      // rels[:durableRel] are durable
}

type relRef struct {
	r    *modelRec
	part int
}

func recPayload(tag uint64, size int) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b, tag)
	for i := 8; i < size; i++ {
		b[i] = byte(tag) ^ byte(i*13)
	}
	return b
}

func crashRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	// Widen the gap between a batch's write and its fsync, so that crashes
	// often find unsynced (and, with CrashTorn, half-written) batches.
	var hookSeed atomic.Uint64
	hookSeed.Store(seed)
	slowSync := func(op, name string) {
		if op == "sync" {
			if d := hookSeed.Add(0x9e3779b97f4a7c15) >> 54; d < 400 {
				time.Sleep(time.Duration(d) * time.Microsecond)
			}
		}
	}
	mem := NewMemFS()
	mem.hook = slowSync
	const dir = "/crash"
	opts := Options{SegmentSize: int64(2<<10 + rng.IntN(8<<10)), Logger: quiet}
	l, _ := mustOpen(t, mem, dir, opts)
	m := &crashModel{recs: make(map[uint64]*modelRec), byID: make(map[uint64]*modelRec)}
	const nWriters = 4
	for w := range nWriters {
		m.writers = append(m.writers, &crashWriter{n: w})
	}
	var seq atomic.Uint64
	for gen := range 4 {
		m.mu.Lock()
		m.frozen = false
		m.mu.Unlock()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, cw := range m.writers {
			wseed := rng.Uint64()
			wg.Go(func() { m.write(l, cw, &seq, wseed, stop) })
		}
		time.Sleep(time.Duration(rng.IntN(15000)) * time.Microsecond)

		// Freeze the model, then crash. Anything acknowledged before the
		// freeze was synced before the crash.
		m.mu.Lock()
		m.frozen = true
		for _, r := range m.recs {
			r.ackedAtCrash = r.acked.Load()
		}
		for _, cw := range m.writers {
			for _, rel := range cw.rels[:cw.durableRel] {
				rel.r.durable[rel.part] = true
			}
		}
		m.mu.Unlock()
		var crashed *MemFS
		torn := rng.IntN(2) == 0
		if torn {
			crashed = mem.CrashTorn(rng.Uint64())
		} else {
			crashed = mem.Crash()
		}
		close(stop)
		wg.Wait()
		checkInvariants(t, l)
		st := l.Stats()
		l.Close() // the old log keeps running on mem until here; irrelevant to crashed

		mem = crashed
		mem.hook = slowSync
		if rng.IntN(3) == 0 {
			// Crash again in the middle of recovery (truncating the torn
			// tail, creating the new segment, deleting dead ones).
			k, n := 1+rng.IntN(10), 0
			var again *MemFS
			cur := mem
			cur.hook = func(op, name string) {
				if n++; n == k {
					again = cur.CrashTorn(uint64(k))
				}
			}
			l2, _ := mustOpen(t, cur, dir, opts)
			l2.Close()
			if again != nil {
				mem = again
			}
			mem.hook = slowSync
		}
		var rep RecoveryReport
		l, rep = mustOpen(t, mem, dir, opts)
		if len(rep.Corrupt) != 0 {
			t.Fatalf("gen %d: corruption reported after a crash: %v", gen, rep.Corrupt)
		}
		checkInvariants(t, l)
		got := replayAll(t, l)
		acked := 0
		for _, r := range m.recs {
			if r.ackedAtCrash {
				acked++
			}
		}
		t.Logf("gen %d: %d records appended in all, %d acknowledged at the crash, %d recovered live; before the crash %d segments, %d syncs, %d compactions; torn %v, truncated %d bytes",
			gen, len(m.recs), acked, len(got), st.Segments, st.Syncs, st.Compactions, torn, rep.TruncatedBytes)
		m.verify(t, gen, got, torn)
		for _, cw := range m.writers {
			cw.rels, cw.durableRel = nil, 0
		}
	}
	// The log still works after all that.
	appendSync(t, l, []byte("final"), 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// write is one writer: appends (keeping a few in flight) and releases.
func (m *crashModel) write(l *Log, cw *crashWriter, seq *atomic.Uint64, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, uint64(cw.n)))
	inflight := make(chan struct{}, 8)
	for {
		select {
		case <-stop:
			return
		case inflight <- struct{}{}:
		}
		if rng.IntN(10) < 6 {
			m.release(l, cw, rng)
		}
		tag := seq.Add(1)
		size := 8 + rng.IntN(300)
		if rng.IntN(50) == 0 {
			size = 3000 + rng.IntN(3000) // crosses segment boundaries
		}
		parts := 1 + rng.IntN(3)
		if rng.IntN(20) == 0 {
			parts = 70
		}
		r := &modelRec{tag: tag, size: size, parts: parts,
			requested: make([]bool, parts), durable: make([]bool, parts), dead: make([]bool, parts)}
		m.mu.Lock()
		if m.frozen {
			m.mu.Unlock()
			<-inflight
			return
		}
		m.recs[tag] = r
		relBefore := len(cw.rels)
		m.mu.Unlock()
		id := l.Append(recPayload(tag, size), parts, func(err error) {
			if err == nil {
				r.acked.Store(true)
				m.mu.Lock()
				if !m.frozen && relBefore > cw.durableRel {
					cw.durableRel = relBefore
				}
				m.mu.Unlock()
			}
			<-inflight
		})
		m.mu.Lock()
		r.id = id
		m.byID[id] = r
		m.present = append(m.present, r)
		m.mu.Unlock()
	}
}

// release releases a random live part of a random known record.
func (m *crashModel) release(l *Log, cw *crashWriter, rng *rand.Rand) {
	m.mu.Lock()
	if m.frozen || len(m.present) == 0 {
		m.mu.Unlock()
		return
	}
	// Prefer recent records, but reach back to old ones too.
	i := len(m.present) - 1 - rng.IntN(min(len(m.present), 64))
	if rng.IntN(8) == 0 {
		i = rng.IntN(len(m.present))
	}
	r := m.present[i]
	if r.gone || r.id == 0 {
		m.mu.Unlock()
		return
	}
	// Usually release one part, sometimes all of them.
	var parts []int
	if rng.IntN(3) == 0 {
		for p := range r.parts {
			if !r.requested[p] {
				parts = append(parts, p)
			}
		}
	} else if p := rng.IntN(r.parts); !r.requested[p] {
		parts = append(parts, p)
	}
	for _, p := range parts {
		r.requested[p] = true
		cw.rels = append(cw.rels, relRef{r, p})
	}
	id := r.id
	m.mu.Unlock()
	for _, p := range parts {
		l.Release(id, p)
	}
}

// verify checks a recovery against the model and folds it in.
func (m *crashModel) verify(t *testing.T, gen int, got []replayed, torn bool) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[uint64]bool)
	for _, g := range got {
		if len(g.data) < 8 {
			t.Fatalf("gen %d: record %d with %d bytes of data", gen, g.id, len(g.data))
		}
		tag := binary.LittleEndian.Uint64(g.data)
		r := m.recs[tag]
		if r == nil {
			t.Fatalf("gen %d: record %d (tag %d) was never appended", gen, g.id, tag)
		}
		if r.id != 0 && r.id != g.id {
			t.Fatalf("gen %d: tag %d recovered as id %d, appended as %d", gen, tag, g.id, r.id)
		}
		if r.id == 0 {
			r.id = g.id
			m.byID[g.id] = r
		}
		if string(g.data) != string(recPayload(tag, r.size)) {
			t.Fatalf("gen %d: record %d: data differs", gen, g.id)
		}
		if r.gone {
			t.Fatalf("gen %d: record %d came back after a recovery lost it", gen, g.id)
		}
		seen[tag] = true
		live := make([]bool, r.parts)
		for _, p := range g.live {
			if p < 0 || p >= r.parts {
				t.Fatalf("gen %d: record %d: live part %d of %d", gen, g.id, p, r.parts)
			}
			live[p] = true
		}
		for p := range r.parts {
			switch {
			case live[p] && r.durable[p]:
				t.Fatalf("gen %d: record %d part %d: release was durable (a later append was acknowledged) but the part is live", gen, g.id, p)
			case live[p] && r.dead[p]:
				t.Fatalf("gen %d: record %d part %d: released in an earlier recovery, live again", gen, g.id, p)
			case !live[p] && !r.requested[p]:
				t.Fatalf("gen %d: record %d part %d: never released, but not live", gen, g.id, p)
			case !live[p]:
				r.dead[p] = true
			}
		}
		r.survived = true
	}
	kept := m.present[:0]
	for _, r := range m.recs {
		if seen[r.tag] || r.gone {
			continue
		}
		all := true
		for _, q := range r.requested {
			all = all && q
		}
		if !all && (r.ackedAtCrash || r.survived) {
			t.Fatalf("gen %d: record %d (tag %d, acked %v, survived an earlier crash %v, torn %v) lost; released %v",
				gen, r.id, r.tag, r.ackedAtCrash, r.survived, torn, r.requested)
		}
		r.gone = true
	}
	for _, r := range m.present {
		if !r.gone {
			kept = append(kept, r)
		}
	}
	m.present = kept
}
