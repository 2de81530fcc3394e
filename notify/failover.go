package notify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// Defaults of FailoverOptions.
const (
	DefaultProbeEvery = 5 * time.Second
	DefaultLogEvery   = time.Minute
)

// FailoverOptions configures [NewFailover].
type FailoverOptions struct {
	// FailOpen: while the primary is down, answer from the fallback
	// (duplicates and bursts are then only caught per node). Otherwise
	// calls fail with ErrGuardUnavailable and notifications wait.
	FailOpen bool
	Clock    clock.Clock  // nil: the system clock
	Logger   *slog.Logger // nil: slog.Default()
	// ProbeEvery is how often the primary is tried again while it is
	// down (0: DefaultProbeEvery); calls in between do not wait for it.
	ProbeEvery time.Duration
	// LogEvery bounds how often failures and recoveries are logged (0:
	// DefaultLogEvery).
	LogEvery time.Duration
}

// Failover is Guards that use a primary (Redis) and, when it fails,
// either a fallback (the embedded guards, FailOpen) or ErrGuardUnavailable.
// Any error of the primary other than the caller's own cancellation counts
// as the primary being down; it is tried again every ProbeEvery, and used
// again as soon as it answers.
//
// Claims are recorded in the fallback as well (the node's durable
// record), so no key is claimed twice on one node across an outage and
// its end. Keys claimed during an outage are not copied to the primary:
// another node may claim one of them again once the primary is back.
// Rate-limit state is not shared either: during an outage each node
// limits on its own.
type Failover struct {
	primary, fallback Guards
	o                 FailoverOptions

	mu        sync.Mutex
	down      bool
	since     time.Time // when the primary went down
	lastProbe time.Time
	lastLog   time.Time
	logged    bool // lastLog is set
	lastErr   error
	failures  int // primary failures not yet logged
}

var (
	_ Guards       = (*Failover)(nil)
	_ MultiLimiter = (*Failover)(nil)
	_ MultiDeduper = (*Failover)(nil)
)

// NewFailover returns guards over primary with fallback behind it.
func NewFailover(primary, fallback Guards, o FailoverOptions) *Failover {
	o.Clock = clock.Or(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = DefaultProbeEvery
	}
	if o.LogEvery <= 0 {
		o.LogEvery = DefaultLogEvery
	}
	return &Failover{primary: primary, fallback: fallback, o: o}
}

// Claim implements Deduper.
func (f *Failover) Claim(ctx context.Context, key, id string, ttl time.Duration) (holder string, claimed bool, err error) {
	if ttl <= 0 {
		return "", false, fmt.Errorf("notify: claim %q: ttl %v is not positive", key, ttl)
	}
	if !f.o.FailOpen {
		err = f.do(ctx, func(g Guards) (err error) {
			holder, claimed, err = g.Claim(ctx, key, id, ttl)
			return err
		})
		if err == nil {
			// Recorded here too, so that the key stays taken on this node
			// through an outage of the primary.
			f.fallback.Claim(ctx, key, holder, ttl)
		}
		return holder, claimed, err
	}
	// Fail-open: every claim is recorded in the fallback first, so a key
	// this node took before an outage of the primary stays taken during
	// it, and one taken during it stays taken after it.
	holder, claimed, err = f.fallback.Claim(ctx, key, id, ttl)
	if err != nil || (!claimed && holder != id) {
		return holder, claimed, err
	}
	err = f.do(ctx, func(g Guards) error {
		if g == f.fallback {
			return nil // done above
		}
		h, c, err := g.Claim(ctx, key, id, ttl)
		if err == nil {
			holder, claimed = h, c
		}
		return err
	})
	return holder, claimed, err
}

// ClaimAll implements MultiDeduper as Claim does, with one call to each
// guard for all of reqs.
func (f *Failover) ClaimAll(ctx context.Context, reqs []ClaimRequest, ttl time.Duration) []ClaimResult {
	if ttl <= 0 {
		return ClaimTTLRefused("notify", reqs, ttl)
	}
	if !f.o.FailOpen {
		var out []ClaimResult
		err := f.do(ctx, func(g Guards) error {
			out = ClaimAll(ctx, g, reqs, ttl)
			return FirstClaimErr(out)
		})
		if err != nil {
			out = make([]ClaimResult, len(reqs))
			for i := range out {
				out[i].Err = err
			}
			return out
		}
		// Recorded here too (see Claim).
		held := make([]ClaimRequest, len(reqs))
		for i, r := range reqs {
			held[i] = ClaimRequest{Key: r.Key, ID: out[i].Holder}
		}
		ClaimAll(ctx, f.fallback, held, ttl)
		return out
	}
	// Fail-open: the fallback first (see Claim), then the primary for the
	// claims the fallback let through.
	out := ClaimAll(ctx, f.fallback, reqs, ttl)
	var idx []int
	var rest []ClaimRequest
	for i, r := range out {
		if r.Err == nil && (r.Claimed || r.Holder == reqs[i].ID) {
			idx = append(idx, i)
			rest = append(rest, reqs[i])
		}
	}
	if len(rest) == 0 {
		return out
	}
	err := f.do(ctx, func(g Guards) error {
		if g == f.fallback {
			return nil // done above
		}
		res := ClaimAll(ctx, g, rest, ttl)
		if err := FirstClaimErr(res); err != nil {
			return err
		}
		for k, i := range idx {
			out[i] = res[k]
		}
		return nil
	})
	if err != nil {
		for _, i := range idx {
			out[i].Err = err
		}
	}
	return out
}

// Allow implements Limiter.
func (f *Failover) Allow(ctx context.Context, key string, l Limit) (ok bool, retryAfter time.Duration, err error) {
	if _, _, err := l.GCRA(); err != nil {
		return false, 0, err
	}
	err = f.do(ctx, func(g Guards) (err error) {
		ok, retryAfter, err = g.Allow(ctx, key, l)
		return err
	})
	return ok, retryAfter, err
}

// AllowAll implements MultiLimiter: one call to the primary (or the
// fallback) for every check.
func (f *Failover) AllowAll(ctx context.Context, checks []LimitCheck) (ok bool, retryAfter time.Duration, err error) {
	for _, c := range checks {
		if _, _, err := c.Limit.GCRA(); err != nil {
			return false, 0, err
		}
	}
	err = f.do(ctx, func(g Guards) (err error) {
		ok, retryAfter, err = AllowAll(ctx, g, checks)
		return err
	})
	return ok, retryAfter, err
}

func (f *Failover) do(ctx context.Context, op func(Guards) error) error {
	if f.tryPrimary() {
		err := op(f.primary)
		if err == nil {
			f.up()
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		f.fail(err)
	}
	if !f.o.FailOpen {
		f.mu.Lock()
		err := f.lastErr
		f.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrGuardUnavailable, err)
	}
	return op(f.fallback)
}

// tryPrimary reports whether to call the primary: always while it is up,
// once per ProbeEvery while it is down.
func (f *Failover) tryPrimary() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down {
		return true
	}
	now := f.o.Clock.Now()
	if now.Sub(f.lastProbe) < f.o.ProbeEvery {
		return false
	}
	f.lastProbe = now
	return true
}

// mayLog reports whether a log line is due, and records it.
//
// REQUIRES: f.mu
func (f *Failover) mayLog(now time.Time) bool {
	if f.logged && now.Sub(f.lastLog) < f.o.LogEvery {
		return false
	}
	f.logged, f.lastLog = true, now
	return true
}

func (f *Failover) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.o.Clock.Now()
	if !f.down {
		f.down, f.since, f.lastProbe = true, now, now
	}
	f.lastErr = err
	f.failures++
	if f.mayLog(now) {
		then := "notifications are held until it answers"
		if f.o.FailOpen {
			then = "using the embedded guards"
		}
		f.o.Logger.Warn("notification guards: primary store unavailable, "+then,
			"err", err, "down_since", f.since, "failures", f.failures)
		f.failures = 0
	}
}

func (f *Failover) up() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down {
		return
	}
	now := f.o.Clock.Now()
	f.down, f.lastErr = false, nil
	if f.mayLog(now) {
		f.o.Logger.Info("notification guards: primary store answers again", "down_for", now.Sub(f.since))
	}
}

// Healthy reports whether the primary answers, and a sentence for the
// overview when it does not.
func (f *Failover) Healthy() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down {
		return true, "ok"
	}
	then := "notifications are held until it answers"
	if f.o.FailOpen {
		then = "using the embedded guards (fail-open)"
	}
	return false, fmt.Sprintf("dedup and rate-limit store unavailable since %s (%v); %s",
		f.since.UTC().Format(time.RFC3339), f.lastErr, then)
}
