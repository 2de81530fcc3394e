// Package memstore is the embedded notify.Deduper and notify.Limiter, used
// when no Redis is configured and as the fallback when Redis is down.
package memstore

import (
	"context"
	"encoding/binary"
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
// with a full burst. Claims are durable: each is written (and fsynced) to
// a store.Meta in dir before Claim returns, so a key claimed before a
// restart is still held after it, until its TTL runs out. Expired claims
// are dropped at open and, like idle limiter keys, swept on the clock
// every SweepEvery, so memory and the file follow the live keys.
//
// Time comes from the injected clock, for TTLs and limits alike.
type Store struct {
	clk   clock.Clock
	log   *slog.Logger
	every time.Duration

	dmu    sync.Mutex // guards claims, meta writes and timer
	claims map[string]claim
	meta   *store.Meta
	timer  clock.Timer
	closed bool

	lmu  sync.Mutex
	tats map[string]int64 // key → TAT, µs since the epoch
}

type claim struct {
	id      string
	expires int64 // unix ns
}

var _ notify.Guards = (*Store)(nil)

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
	meta, err := store.OpenMetaWith(o.FS, dir, store.MetaOptions{Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("memstore: dedup store: %w", err)
	}
	g := &Store{
		clk: clock.Or(o.Clock), log: o.Logger, every: o.SweepEvery,
		claims: map[string]claim{}, meta: meta, tats: map[string]int64{},
	}
	now := g.clk.Now().UnixNano()
	var expired []string
	for k, v := range meta.All() {
		c, ok := decodeClaim(v)
		if !ok || c.expires <= now {
			expired = append(expired, k)
			continue
		}
		g.claims[k] = c
	}
	for _, k := range expired {
		if err := meta.Delete(k); err != nil {
			meta.Close()
			return nil, fmt.Errorf("memstore: dedup store: %w", err)
		}
	}
	if len(expired) > 0 {
		g.log.Info("dedup store: dropped expired claims", "dir", dir, "expired", len(expired), "held", len(g.claims))
	}
	g.timer = g.clk.AfterFunc(g.every, g.sweep)
	return g, nil
}

// claim values: expiry (unix ns, 8 bytes big-endian), then the id.
func encodeClaim(c claim) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(c.id)), uint64(c.expires))
	return append(b, c.id...)
}

func decodeClaim(b []byte) (claim, bool) {
	if len(b) < 8 {
		return claim{}, false
	}
	return claim{id: string(b[8:]), expires: int64(binary.BigEndian.Uint64(b))}, true
}

// Claim implements notify.Deduper.
func (g *Store) Claim(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	if ttl <= 0 {
		return "", false, fmt.Errorf("memstore: claim %q: ttl %v is not positive", key, ttl)
	}
	now := g.clk.Now().UnixNano()
	g.dmu.Lock()
	defer g.dmu.Unlock()
	if g.closed {
		return "", false, fmt.Errorf("memstore: dedup store: %w", store.ErrClosed)
	}
	if c, ok := g.claims[key]; ok && c.expires > now {
		return c.id, false, nil
	}
	c := claim{id: id, expires: now + int64(ttl)}
	if err := g.meta.Put(key, encodeClaim(c)); err != nil {
		return "", false, fmt.Errorf("memstore: dedup store: %w", err)
	}
	g.claims[key] = c
	return id, true, nil
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

// sweep drops expired claims and limiter keys back at a full burst, then
// arms itself again.
func (g *Store) sweep() {
	now := g.clk.Now()
	nowMicro := now.UnixMicro()
	g.lmu.Lock()
	for k, tat := range g.tats {
		if tat <= nowMicro {
			delete(g.tats, k)
		}
	}
	g.lmu.Unlock()

	g.dmu.Lock()
	defer g.dmu.Unlock()
	if g.closed {
		return
	}
	nowNano := now.UnixNano()
	for k, c := range g.claims {
		if c.expires > nowNano {
			continue
		}
		if err := g.meta.Delete(k); err != nil {
			g.log.Warn("dedup store: sweeping expired claims", "err", err)
			break // kept in memory, retried at the next sweep
		}
		delete(g.claims, k)
	}
	g.timer = g.clk.AfterFunc(g.every, g.sweep)
}

// Len returns the number of claims and limiter keys held in memory.
func (g *Store) Len() (claims, limits int) {
	g.dmu.Lock()
	claims = len(g.claims)
	g.dmu.Unlock()
	g.lmu.Lock()
	defer g.lmu.Unlock()
	return claims, len(g.tats)
}

// Close stops the sweeps and closes the claims file.
func (g *Store) Close() error {
	g.dmu.Lock()
	defer g.dmu.Unlock()
	if g.closed {
		return store.ErrClosed
	}
	g.closed = true
	g.timer.Stop()
	return g.meta.Close()
}
