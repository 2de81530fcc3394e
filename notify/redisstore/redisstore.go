// Package redisstore is the Redis-backed notify.Deduper and notify.Limiter,
// shared by every UMS node that points at the same Redis (7.0 or later).
// Calls made at the same time share a round trip: each claim is one
// command in it, and all the limit checks one run of a script.
//
// Key layout (the caller's key, already scoped by tenant, channel or
// recipient, follows the prefix):
//
//	ums:dedup:<key>  string: the id holding the idempotency key, expiring
//	                 with the claim's TTL (SET NX GET PX/EX)
//	ums:rate:<key>   string: the GCRA theoretical arrival time in
//	                 microseconds since the epoch, expiring RateKeySlack
//	                 after it is reached (the key is then back at a full
//	                 burst; an expired key and one holding a past time
//	                 mean the same)
//
// The limiter takes "now" from the clock given to New, passed to the
// script, so every node must keep its clock in sync (NTP) and tests can
// use a fake clock; expiry of keys follows Redis' own clock, which is why
// a rate key outlives its time by RateKeySlack: a node whose clock runs a
// little behind Redis' (or a caller that is slow between two calls) still
// finds the key instead of a fresh burst.
//
// Locks: one, batcher.mu (batch.go), taken alone and never held across a
// round trip.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/notify"
)

// Key prefixes.
const (
	Prefix      = "ums:"
	DedupPrefix = Prefix + "dedup:"
	RatePrefix  = Prefix + "rate:"
)

// gcraScript runs the limit checks of several calls (groups), each as one
// call alone would: a group's keys are decided in order, with its own now
// and, per key, an interval and a tolerance, all in microseconds. A key
// that fits is counted; the first that does not stops its group, which
// answers 0 and the wait; a group whose keys were all counted answers 1
// and 0. ARGV is the number of groups, then per group its now, its number
// of keys and their interval and tolerance; KEYS are the groups' keys one
// after the other; the answer is {ok, wait} per group, in order. Numbers
// are written with %.0f so that large values keep every digit. (Several
// keys in one script need a single Redis, not a cluster: NewClient makes
// such a client.) The batcher sends the limit checks of a batch as one
// run: one script call instead of one per notification, which is most of
// what a check costs Redis.
var gcraScript = redis.NewScript(`
local out = {}
local a, k = 2, 1
for g = 1, tonumber(ARGV[1]) do
  local now = tonumber(ARGV[a])
  local n = tonumber(ARGV[a+1])
  a = a + 2
  local ok, wait = 1, 0
  for i = 1, n do
    if ok == 1 then
      local key = KEYS[k]
      local interval = tonumber(ARGV[a])
      local tolerance = tonumber(ARGV[a+1])
      local tat = tonumber(redis.call('GET', key) or now) or now
      if tat < now then tat = now end
      local new = tat + interval
      local w = new - tolerance - now
      if w > 0 then
        ok, wait = 0, w
      else
        local ms = math.ceil((new - now) / 1000) + ` + slackMS + `
        redis.call('SET', key, string.format('%.0f', new), 'PX', string.format('%.0f', ms))
      end
    end
    a, k = a + 2, k + 1
  end
  out[#out+1] = ok
  out[#out+1] = wait
end
return out
`)

// RateKeySlack is how long a rate key outlives the time it holds.
const RateKeySlack = 5 * time.Second

var slackMS = strconv.FormatInt(RateKeySlack.Milliseconds(), 10)

// Store is the Redis Deduper and Limiter. Concurrent calls share round
// trips (see batch.go).
type Store struct {
	rdb   redis.UniversalClient
	clk   clock.Clock
	batch batcher
	// gcra holds each limit's script arguments (interval, tolerance),
	// made into interface values once (notify.Limit -> [2]any): limits
	// are few, and boxing them anew cost two allocations per check.
	gcra sync.Map
}

// params returns l's interval and tolerance as script arguments.
func (s *Store) params(l notify.Limit) ([2]any, error) {
	if p, ok := s.gcra.Load(l); ok {
		return p.([2]any), nil
	}
	interval, tolerance, err := l.GCRA()
	if err != nil {
		return [2]any{}, err
	}
	p := [2]any{interval, tolerance}
	s.gcra.Store(l, p)
	return p, nil
}

var (
	_ notify.Guards       = (*Store)(nil)
	_ notify.MultiLimiter = (*Store)(nil)
	_ notify.MultiDeduper = (*Store)(nil)
)

// New returns guards over rdb taking time from clk (nil: the system clock).
func New(rdb redis.UniversalClient, clk clock.Clock) *Store {
	return &Store{rdb: rdb, clk: clock.Or(clk), batch: batcher{rdb: rdb}}
}

// Claim implements notify.Deduper with SET key id NX GET and the TTL.
func (s *Store) Claim(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	if ttl <= 0 {
		return "", false, fmt.Errorf("redisstore: claim %q: ttl %v is not positive", key, ttl)
	}
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	cmd, err := s.batch.do(ctx, &call{claim: true, key: DedupPrefix + key, id: id, ttl: ttl})
	if err != nil {
		return "", false, fmt.Errorf("redisstore: claim: %w", err)
	}
	r := claimAnswer(cmd, id)
	return r.Holder, r.Claimed, r.Err
}

// claimAnswer reads the answer to a claim of id (SET NX GET).
func claimAnswer(cmd redis.Cmder, id string) notify.ClaimResult {
	old, err := cmd.(*redis.StatusCmd).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return notify.ClaimResult{Holder: id, Claimed: true}
	case err != nil:
		return notify.ClaimResult{Err: fmt.Errorf("redisstore: claim: %w", err)}
	}
	return notify.ClaimResult{Holder: old}
}

// ClaimAll implements notify.MultiDeduper: every claim in one round trip
// (run in order by Redis, so a key given twice is held by the first).
func (s *Store) ClaimAll(ctx context.Context, reqs []notify.ClaimRequest, ttl time.Duration) []notify.ClaimResult {
	if ttl <= 0 {
		return notify.ClaimTTLRefused("redisstore", reqs, ttl)
	}
	out := make([]notify.ClaimResult, len(reqs))
	ttl = max(ttl, time.Millisecond)
	calls := make([]call, len(reqs))
	ptrs := make([]*call, len(reqs))
	for i, r := range reqs {
		calls[i] = call{claim: true, key: DedupPrefix + r.Key, id: r.ID, ttl: ttl}
		ptrs[i] = &calls[i]
	}
	s.batch.doAll(ctx, ptrs)
	for i, r := range reqs {
		out[i] = claimAnswer(calls[i].cmd, r.ID)
	}
	return out
}

// Allow implements notify.Limiter: AllowAll of one check.
func (s *Store) Allow(ctx context.Context, key string, l notify.Limit) (bool, time.Duration, error) {
	return s.AllowAll(ctx, []notify.LimitCheck{{Key: key, Limit: l}})
}

// AllowAll implements notify.MultiLimiter: the checks go as one group of
// the batch's script run.
func (s *Store) AllowAll(ctx context.Context, checks []notify.LimitCheck) (bool, time.Duration, error) {
	if len(checks) == 0 {
		return true, 0, nil
	}
	c := &call{keys: make([]string, len(checks)), params: make([][2]any, len(checks))}
	for i, lc := range checks {
		p, err := s.params(lc.Limit)
		if err != nil {
			return false, 0, err
		}
		c.keys[i], c.params[i] = RatePrefix+lc.Key, p
	}
	c.now = s.clk.Now().UnixMicro()
	if _, err := s.batch.do(ctx, c); err != nil {
		return false, 0, fmt.Errorf("redisstore: rate limit: %w", err)
	}
	if c.err != nil {
		return false, 0, fmt.Errorf("redisstore: rate limit: %w", c.err)
	}
	if c.allowed {
		return true, 0, nil
	}
	return false, time.Duration(c.wait) * time.Microsecond, nil
}

// Client defaults for guards: a call must fail fast when Redis is down,
// so that the Failover answers from the embedded guards instead of
// making the notification wait.
const (
	DialTimeout = time.Second
	IOTimeout   = time.Second
)

// NewClient returns a client for a redis:// or rediss:// URL (as given to
// --redis-url) with the guards' defaults: one dial attempt and no retry
// per call, timeouts of DialTimeout and IOTimeout unless the URL sets them.
func NewClient(url string) (*redis.Client, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	o.DialerRetries = 1
	o.MaxRetries = -1 // none
	if o.DialTimeout == 0 {
		o.DialTimeout = DialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = IOTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = IOTimeout
	}
	return redis.NewClient(o), nil
}
