package notify

// Guards: idempotency-key deduplication and rate limits. Two
// implementations share the semantics defined here (notify/guardtest
// checks them): the embedded one (notify/memstore, the default) and the
// Redis one (notify/redisstore). The
// Failover wrapper puts the embedded one behind Redis when Redis is down.
//
// Keys are chosen by the caller, which scopes them (by tenant, channel,
// recipient); the guards only namespace them by kind, so a dedup key and
// a limit key never collide.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Deduper records idempotency keys.
type Deduper interface {
	// Claim records id under key for ttl unless key is already held.
	// It returns the id holding key: id itself with claimed true when this
	// call recorded it, or the earlier id with claimed false (a caller
	// retrying its own claim sees holder == id and claimed false).
	Claim(ctx context.Context, key, id string, ttl time.Duration) (holder string, claimed bool, err error)
}

// ClaimRequest is one claim of a ClaimAll call: id for key.
type ClaimRequest struct {
	Key string
	ID  string
}

// ClaimResult answers one ClaimRequest as Claim would have.
type ClaimResult struct {
	Holder  string
	Claimed bool
	Err     error
}

// MultiDeduper is a Deduper that takes several claims in one call (the
// embedded guards: one write and fsync; Redis: one round trip).
type MultiDeduper interface {
	// ClaimAll makes every claim of reqs with ttl and answers each as
	// that many Claim calls in order would: a key given twice is claimed
	// by the first and held against the second. It returns once every
	// answer is known (claims recorded are durable).
	ClaimAll(ctx context.Context, reqs []ClaimRequest, ttl time.Duration) []ClaimResult
}

// ClaimAll makes reqs' claims with d's ClaimAll when it has one,
// otherwise with one Claim after another.
func ClaimAll(ctx context.Context, d Deduper, reqs []ClaimRequest, ttl time.Duration) []ClaimResult {
	if m, ok := d.(MultiDeduper); ok {
		return m.ClaimAll(ctx, reqs, ttl)
	}
	out := make([]ClaimResult, len(reqs))
	for i, r := range reqs {
		out[i].Holder, out[i].Claimed, out[i].Err = d.Claim(ctx, r.Key, r.ID, ttl)
	}
	return out
}

// ClaimTTLRefused answers every claim of reqs with the error of a ttl
// that is not positive, named as Claim names it (prefix: the guards').
func ClaimTTLRefused(prefix string, reqs []ClaimRequest, ttl time.Duration) []ClaimResult {
	out := make([]ClaimResult, len(reqs))
	for i, r := range reqs {
		out[i].Err = fmt.Errorf("%s: claim %q: ttl %v is not positive", prefix, r.Key, ttl)
	}
	return out
}

// FirstClaimErr returns the first error among res, or nil.
func FirstClaimErr(res []ClaimResult) error {
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// Limiter applies rate limits with the generic cell rate algorithm: a
// key's state is its theoretical arrival time (TAT), the time at which
// it would be back to an empty bucket.
type Limiter interface {
	// Allow reports whether one more event under key fits in l, counting
	// it when it does; when it does not, retryAfter is how long until it
	// would.
	Allow(ctx context.Context, key string, l Limit) (ok bool, retryAfter time.Duration, err error)
}

// LimitCheck is one limit applied under a key.
type LimitCheck struct {
	Key   string
	Limit Limit
}

// MultiLimiter is a Limiter that applies several limits in one call (the
// Redis guards: in one round trip).
type MultiLimiter interface {
	// AllowAll applies checks in order, as that many Allow calls would:
	// each one that fits is counted, and the first one that does not
	// stops there (it and those after it are not counted) and gives
	// retryAfter.
	AllowAll(ctx context.Context, checks []LimitCheck) (ok bool, retryAfter time.Duration, err error)
}

// AllowAll applies checks with l's AllowAll when it has one, otherwise
// with one Allow after another; both count the same.
func AllowAll(ctx context.Context, l Limiter, checks []LimitCheck) (bool, time.Duration, error) {
	if m, ok := l.(MultiLimiter); ok {
		return m.AllowAll(ctx, checks)
	}
	for _, c := range checks {
		ok, wait, err := l.Allow(ctx, c.Key, c.Limit)
		if err != nil || !ok {
			return false, wait, err
		}
	}
	return true, 0, nil
}

// Guards is a Deduper and a Limiter.
type Guards interface {
	Deduper
	Limiter
}

// Limit is Rate events per Per, of which Burst may come at once (0 means
// Rate: "5 per hour" lets 5 go at once, then one every 12 minutes).
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

func (l Limit) String() string {
	s := strconv.Itoa(l.Rate) + "/" + l.Per.String()
	if l.Burst > 0 && l.Burst != l.Rate {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// GCRA returns the limit's emission interval (Per/Rate, at least 1µs) and
// its tolerance (Burst intervals) in microseconds, the units both
// implementations compute in, so they round the same way.
func (l Limit) GCRA() (interval, tolerance int64, err error) {
	if l.Rate <= 0 || l.Per <= 0 || l.Burst < 0 {
		return 0, 0, fmt.Errorf("notify: invalid limit %d per %v (burst %d)", l.Rate, l.Per, l.Burst)
	}
	interval = l.Per.Microseconds() / int64(l.Rate)
	if interval < 1 {
		interval = 1
	}
	burst := int64(l.Burst)
	if burst == 0 {
		burst = int64(l.Rate)
	}
	return interval, interval * burst, nil
}

// GCRAStep decides one event at now for a key whose TAT is tat (0: none),
// all in microseconds, with a limit's interval and tolerance (see
// Limit.GCRA). It returns the new TAT when the event is allowed, or the
// wait until it would be. The Redis script computes the same.
func GCRAStep(tat, now, interval, tolerance int64) (newTAT int64, ok bool, wait int64) {
	if tat < now {
		tat = now
	}
	newTAT = tat + interval
	if wait = newTAT - tolerance - now; wait > 0 {
		return 0, false, wait
	}
	return newTAT, true, 0
}

// ErrGuardUnavailable is returned, wrapped, when the guards cannot answer
// (Redis unreachable and no fallback allowed). The caller holds the
// notification and retries later; it is neither sent nor failed.
var ErrGuardUnavailable = errors.New("notify: dedup and rate-limit store unavailable")

// ParseLimits parses a setting such as "email=100/s,webhook=500/s" or
// "email=20/h": comma-separated name=rate/unit with units s, m and h.
// Spaces around the parts are ignored; an empty setting has no limits.
func ParseLimits(s string) (map[string]Limit, error) {
	out := map[string]Limit{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, spec, ok := strings.Cut(part, "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		if !ok || name == "" {
			return nil, fmt.Errorf("limit %q: want name=rate/unit, such as email=100/s", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("limit %q: %s is limited twice", part, name)
		}
		rate, unit, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("limit %q: want rate/unit, such as 100/s", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(rate))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("limit %q: rate %q is not a positive integer", part, rate)
		}
		var per time.Duration
		switch strings.TrimSpace(unit) {
		case "s":
			per = time.Second
		case "m":
			per = time.Minute
		case "h":
			per = time.Hour
		default:
			return nil, fmt.Errorf("limit %q: unit %q is not s, m or h", part, unit)
		}
		out[name] = Limit{Rate: n, Per: per}
	}
	return out, nil
}

// ParseCounts parses a setting such as "email=16,webhook=64":
// comma-separated name=count with positive counts.
func ParseCounts(s string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || name == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want name=count, such as email=16", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%q: %s is given twice", part, name)
		}
		out[name] = n
	}
	return out, nil
}
