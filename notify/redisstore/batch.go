package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Calls that arrive together share one round trip: the first caller to
// find no batch under way becomes the leader; it sends every call queued
// so far as one pipeline (one write, one read) and, when it is answered,
// hands the lead to the oldest call queued meanwhile. The pipeline
// workers call the guards concurrently (a call of limit checks per send,
// a claim per keyed submission), so at load a batch holds dozens of calls,
// and Redis and this process each pay one system call per batch instead
// of one per call; the batch's limit checks are one script run. A call
// alone is sent at once. No goroutine is started: leaders are callers.

// batchTimeout bounds a batch's round trip, whatever timeouts the client
// was given (a URL may turn its own off).
const batchTimeout = 5 * time.Second

// call is one request of a batch: a claim, or a group of rate-limit
// checks. Its fields are plain data rather than closures.
type call struct {
	claim bool // SET key id NX GET with ttl; else limit checks of keys
	key   string
	id    string
	ttl   time.Duration

	now    int64    // limit checks: now, in microseconds,
	keys   []string // and the keys
	params [][2]any // with their interval and tolerance

	cmd redis.Cmder // a claim's answered command
	// A limit check's answer (gcraScript's for its group), or the error
	// of the script's run.
	allowed bool
	wait    int64
	err     error
	// wake gets false once the call is answered, or true when this call
	// is to send the next batch (while it is still queued).
	wake chan bool
}

// batcher queues calls; the lock rule: mu guards queue and busy, and is
// never held across a round trip.
type batcher struct {
	rdb redis.UniversalClient

	mu    sync.Mutex
	queue []*call
	busy  bool // a leader is sending a batch
}

// do sends c (with whatever else is queued) and returns its command once
// answered, or the caller's context error if it ends first while c is
// still queued.
func (b *batcher) do(ctx context.Context, c *call) (redis.Cmder, error) {
	c.wake = make(chan bool, 1)
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		b.leadFrom(ctx)
		return c.cmd, nil
	}
	b.mu.Unlock()
	select {
	case lead := <-c.wake:
		if lead {
			b.leadFrom(ctx)
		}
		return c.cmd, nil
	case <-ctx.Done():
	}
	// Leave the queue if still in it; once taken into a batch, or handed
	// the lead, the call goes on (a round trip is bounded by the client's
	// timeouts). The lead is handed only to a queued call, under mu.
	b.mu.Lock()
	for i, q := range b.queue {
		if q == c {
			select {
			case <-c.wake: // the lead, handed before the lock was taken
				b.mu.Unlock()
				b.leadFrom(ctx)
				return c.cmd, nil
			default:
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				b.mu.Unlock()
				return nil, ctx.Err()
			}
		}
	}
	b.mu.Unlock()
	if <-c.wake {
		b.leadFrom(ctx)
	}
	return c.cmd, nil
}

// doAll sends calls (with whatever else is queued) and returns once every
// one is answered. They are queued together, so they go in one batch. They
// stay queued when ctx ends: the round trip is bounded by batchTimeout.
func (b *batcher) doAll(ctx context.Context, calls []*call) {
	for _, c := range calls {
		c.wake = make(chan bool, 1)
	}
	b.mu.Lock()
	b.queue = append(b.queue, calls...)
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		b.leadFrom(ctx)
		return
	}
	b.mu.Unlock()
	// The lead goes to the oldest queued call, and these leave the queue
	// only in a batch, so only the first can be handed it.
	for _, c := range calls {
		if <-c.wake {
			b.leadFrom(ctx)
		}
	}
}

// leadFrom sends the queued calls as one batch, then hands the lead on
// (or ends the busy state when nothing more is queued).
// REQUIRES: b.busy set by this caller.
func (b *batcher) leadFrom(ctx context.Context) {
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	// The batch is everyone's: the leader's cancellation does not end
	// it, a deadline of its own does.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	b.send(ctx, batch)
	cancel()
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].wake <- true // the first it sends: its own wake is empty while it is queued
	} else {
		b.busy = false
	}
	b.mu.Unlock()
}

// send runs batch as one pipeline: each claim a command, and all the
// limit checks one run of gcraScript. Errors are per command; a failed
// round trip fails them all. Every call is woken when it ends.
func (b *batcher) send(ctx context.Context, batch []*call) {
	defer func() {
		for _, c := range batch {
			c.wake <- false // never blocks: a batched call is no longer queued, so holds no lead
		}
	}()
	var checks []*call
	var nkeys int
	p := b.rdb.Pipeline()
	for _, c := range batch {
		if c.claim {
			c.cmd = p.SetArgs(ctx, c.key, c.id, redis.SetArgs{Mode: "NX", Get: true, TTL: c.ttl})
			continue
		}
		checks = append(checks, c)
		nkeys += len(c.keys)
	}
	var keys []string
	var argv []any
	var run *redis.Cmd
	if len(checks) > 0 {
		keys = make([]string, 0, nkeys)
		argv = make([]any, 0, 1+2*len(checks)+2*nkeys)
		argv = append(argv, len(checks))
		for _, c := range checks {
			keys = append(keys, c.keys...)
			argv = append(argv, c.now, len(c.keys))
			for _, pr := range c.params {
				argv = append(argv, pr[0], pr[1])
			}
		}
		run = gcraScript.EvalSha(ctx, p, keys, argv...)
	}
	_, _ = p.Exec(ctx) // the first error again: each command keeps its own
	if run == nil {
		return
	}
	if redis.HasErrorPrefix(run.Err(), "NOSCRIPT") {
		// Not cached (a restart or SCRIPT FLUSH): send it in full.
		run = gcraScript.Eval(ctx, b.rdb, keys, argv...)
	}
	res, err := run.Int64Slice()
	if err == nil && len(res) != 2*len(checks) {
		err = fmt.Errorf("script answered %d values for %d checks", len(res), len(checks))
	}
	for i, c := range checks {
		if err != nil {
			c.err = err
			continue
		}
		c.allowed, c.wait = res[2*i] == 1, res[2*i+1]
	}
}
