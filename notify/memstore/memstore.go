// Package memstore is the embedded notify.Deduper and notify.Limiter, used
// when no Redis is configured and as the fallback when Redis is down.
package memstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/notify"
)

// DefaultSweepEvery is how often a Store drops expired state.
const DefaultSweepEvery = time.Minute

// Options configures [Open].
type Options struct {
	FS         store.FS      // nil: the operating system's
	Clock      clock.Clock   // nil: the system clock
	Logger     *slog.Logger  // nil: slog.Default()
	SweepEvery time.Duration // 0: DefaultSweepEvery
}

// Store is the embedded Deduper and Limiter.
//
// Rate-limit state lives in memory only: after a restart every key starts
// with a full burst. Claims are durable: each is appended to a file in dir
// and fsynced before Claim returns, with the claims of concurrent callers
// sharing one write and fsync (group commit); a key claimed before a
// restart or a crash is still held after it, until its TTL runs out.
// Expired claims are dropped at open and, like idle limiter keys, swept on
// the clock every SweepEvery; the file is rewritten when most of it is
// expired, so memory and disk follow the live keys.
//
// Time comes from the injected clock, for TTLs and limits alike.
type Store struct {
	clk   clock.Clock
	log   *slog.Logger
	every time.Duration
	fs    store.FS
	dir   string

	// fmu serializes use of the file (appends, rewrites, close). When
	// both are held, fmu is taken first.
	fmu sync.Mutex
	f   store.File

	mu       sync.Mutex
	claims   map[string]*claim
	live     int64  // bytes of the records of the claims held
	size     int64  // bytes in the file
	pending  []byte // records not yet handed to a flush
	cur      *batch // the batch pending's records belong to
	spare    []byte
	flushing bool       // a caller is flushing
	idle     *sync.Cond // signalled when flushing ends
	err      error      // a write failed: no more claims
	closed   bool
	timer    clock.Timer

	lmu  sync.Mutex
	tats map[string]int64 // key → TAT, µs since the epoch
}

type claim struct {
	id      string
	expires int64  // unix ns
	batch   *batch // not nil until written
}

// batch is the claims written by one write and fsync.
type batch struct {
	done chan struct{} // closed when written (or failed)
	err  error
	keys []string
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

var (
	_ notify.Guards       = (*Store)(nil)
	_ notify.MultiDeduper = (*Store)(nil)
)

// Open opens (creating if needed) the embedded guards whose claims are
// stored in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.FS == nil {
		o.FS = store.OS()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = DefaultSweepEvery
	}
	if err := o.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s := &Store{
		clk: clock.Or(o.Clock), log: o.Logger, every: o.SweepEvery, fs: o.FS, dir: dir,
		cur: newBatch(), tats: map[string]int64{},
	}
	s.idle = sync.NewCond(&s.mu)
	all, cut, err := loadClaims(o.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("memstore: claims file: %w", err)
	}
	now := s.clk.Now().UnixNano()
	s.claims = make(map[string]*claim, len(all))
	var records []byte
	for k, c := range all {
		if c.expires > now {
			s.claims[k] = c
			records = appendRecord(records, k, c)
		}
	}
	if s.f, err = writeClaims(o.FS, dir, records); err != nil {
		return nil, fmt.Errorf("memstore: claims file: %w", err)
	}
	s.live, s.size = int64(len(records)), int64(headerLen+len(records))
	if cut > 0 {
		s.log.Warn("dedup store: cut off a torn or corrupt tail", "dir", dir, "bytes", cut)
	}
	if dropped := len(all) - len(s.claims); dropped > 0 {
		s.log.Info("dedup store: dropped expired claims", "dir", dir, "expired", dropped, "held", len(s.claims))
	}
	s.timer = s.clk.AfterFunc(s.every, s.sweep)
	return s, nil
}

// Claim implements notify.Deduper: ClaimAll of one.
func (s *Store) Claim(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	r := s.ClaimAll(ctx, []notify.ClaimRequest{{Key: key, ID: id}}, ttl)[0]
	return r.Holder, r.Claimed, r.Err
}

// addLocked records a new claim of key by id, expiring at expires (unix
// ns), in the batch being gathered, and returns that batch.
// REQUIRES: s.mu.
func (s *Store) addLocked(key, id string, expires int64) *batch {
	c := &claim{id: id, expires: expires, batch: s.cur}
	if old, ok := s.claims[key]; ok {
		s.live -= recordLen(key, old.id)
	}
	s.claims[key] = c
	s.live += recordLen(key, id)
	s.pending = appendRecord(s.pending, key, c)
	c.batch.keys = append(c.batch.keys, key)
	return c.batch
}

// ClaimAll implements notify.MultiDeduper: every new claim of reqs goes
// into the same write and fsync, and the call waits once for it.
func (s *Store) ClaimAll(ctx context.Context, reqs []notify.ClaimRequest, ttl time.Duration) []notify.ClaimResult {
	if ttl <= 0 {
		return notify.ClaimTTLRefused("memstore", reqs, ttl)
	}
	out := make([]notify.ClaimResult, len(reqs))
	todo := make([]int, 0, len(reqs))
	for i, r := range reqs {
		if recordLen(r.Key, r.ID) > frameLen+maxRecord {
			out[i].Err = errTooLong
			continue
		}
		todo = append(todo, i)
	}
	// held[i] is the batch still writing the claim that holds reqs[i]'s
	// key (another caller's, or one of this call's own).
	var held map[int]*batch
	for len(todo) > 0 {
		now := s.clk.Now().UnixNano()
		var mine *batch
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			for _, i := range todo {
				out[i].Err = fmt.Errorf("memstore: %w", store.ErrClosed)
			}
			return out
		}
		for _, i := range todo {
			key, id := reqs[i].Key, reqs[i].ID
			if c, ok := s.claims[key]; ok && c.expires > now {
				out[i] = notify.ClaimResult{Holder: c.id}
				if c.batch != nil {
					if held == nil {
						held = make(map[int]*batch)
					}
					held[i] = c.batch
				}
				continue
			}
			if s.err != nil {
				out[i].Err = s.err
				continue
			}
			mine = s.addLocked(key, id, now+int64(ttl))
			out[i] = notify.ClaimResult{Holder: id, Claimed: true}
		}
		leader := mine != nil && !s.flushing
		if mine != nil {
			s.flushing = true
		}
		s.mu.Unlock()
		if leader {
			s.flush()
		}
		var again []int
		for _, i := range todo {
			switch b := held[i]; {
			case out[i].Claimed:
				<-mine.done
				if mine.err != nil {
					out[i] = notify.ClaimResult{Err: mine.err}
				}
			case b != nil:
				// Held by a claim still being written: answer once it
				// is durable, or claim again if writing it failed.
				<-b.done
				delete(held, i)
				if b.err != nil {
					again = append(again, i)
				}
			}
		}
		todo = again
	}
	return out
}

// flush writes and fsyncs pending records, batch after batch, until there
// are none.
func (s *Store) flush() {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.flushing = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		data, b := s.pending, s.cur
		s.pending, s.cur = s.spare[:0], newBatch()
		s.mu.Unlock()

		s.fmu.Lock()
		var err error
		n := 0
		if s.f == nil {
			err = store.ErrClosed
		} else if n, err = s.f.Write(data); err == nil {
			err = s.f.Sync()
		}
		s.mu.Lock()
		s.size += int64(n)
		for _, k := range b.keys {
			c, ok := s.claims[k]
			if !ok || c.batch != b {
				continue
			}
			if err != nil {
				delete(s.claims, k)
				s.live -= recordLen(k, c.id)
			} else {
				c.batch = nil
			}
		}
		if err != nil {
			// As with the message log, a failed fsync cannot be retried:
			// what reached the disk is unknown.
			err = fmt.Errorf("memstore: claims file: %w: %w", store.ErrPoisoned, err)
			if s.err == nil {
				s.err = err
				s.log.Error("dedup store stopped: every later claim fails until restart", "dir", s.dir, "err", err)
			}
		}
		b.err = err
		close(b.done)
		s.spare = data[:0]
		s.mu.Unlock()
		s.fmu.Unlock()
	}
}

// Allow implements notify.Limiter.
func (g *Store) Allow(ctx context.Context, key string, l notify.Limit) (bool, time.Duration, error) {
	interval, tolerance, err := l.GCRA()
	if err != nil {
		return false, 0, err
	}
	now := g.clk.Now().UnixMicro()
	g.lmu.Lock()
	defer g.lmu.Unlock()
	tat, ok, wait := notify.GCRAStep(g.tats[key], now, interval, tolerance)
	if !ok {
		return false, time.Duration(wait) * time.Microsecond, nil
	}
	g.tats[key] = tat
	return true, 0, nil
}

// sweep drops expired claims and limiter keys back at a full burst,
// rewrites the claims file when most of it is dead, then arms itself again.
func (s *Store) sweep() {
	now := s.clk.Now()
	nowMicro := now.UnixMicro()
	s.lmu.Lock()
	for k, tat := range s.tats {
		if tat <= nowMicro {
			delete(s.tats, k)
		}
	}
	s.lmu.Unlock()

	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	nowNano := now.UnixNano()
	var records []byte
	for k, c := range s.claims {
		if c.batch != nil {
			continue // written by its flush, to whichever file is current then
		}
		if c.expires <= nowNano {
			delete(s.claims, k)
			s.live -= recordLen(k, c.id)
			continue
		}
		records = appendRecord(records, k, c)
	}
	dead := s.size - int64(headerLen) - s.live
	rewrite := s.err == nil && s.size >= rewriteMin && dead > s.live
	s.timer = s.clk.AfterFunc(s.every, s.sweep)
	s.mu.Unlock()
	if !rewrite {
		return
	}
	f, err := writeClaims(s.fs, s.dir, records)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Unless the rename happened, the old file is intact and still in
		// use; after it, which file a crash leaves is unknown.
		s.log.Warn("dedup store: rewriting the claims file", "dir", s.dir, "err", err)
		return
	}
	s.f.Close()
	s.f = f
	s.size = int64(headerLen + len(records))
}

// Len returns the number of claims and limiter keys held in memory.
func (s *Store) Len() (claims, limits int) {
	s.mu.Lock()
	claims = len(s.claims)
	s.mu.Unlock()
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return claims, len(s.tats)
}

// FileSize returns the size of the claims file.
func (s *Store) FileSize() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Close waits for claims being written, stops the sweeps and closes the
// claims file. Later claims fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.timer.Stop()
	for s.flushing {
		s.idle.Wait()
	}
	err := s.err
	s.mu.Unlock()
	s.fmu.Lock()
	defer s.fmu.Unlock()
	cerr := s.f.Close()
	s.f = nil
	if err != nil {
		return err
	}
	return cerr
}
