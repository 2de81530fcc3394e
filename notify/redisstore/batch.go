package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Calls that arrive together share one round trip: the first caller to
// find no batch under way becomes the leader; it sends every call queued
// so far as one pipeline (one write, one read) and, when it is answered,
// hands the lead to the oldest call queued meanwhile. The pipeline
// workers call the guards concurrently (two limit checks per
// notification, a claim per keyed submission), so at load a batch holds
// dozens of calls, and Redis and this process each pay one system call
// per batch instead of one per call. A call alone is sent at once, as
// before. No goroutine is started: leaders are callers.

// batchTimeout bounds a batch's round trip, whatever timeouts the client
// was given (a URL may turn its own off).
const batchTimeout = 5 * time.Second

// call is one command of a batch.
type call struct {
	// add queues the command on a pipeline and returns it.
	add func(ctx context.Context, p redis.Pipeliner) redis.Cmder
	// retry, when set, re-sends the command if the script it runs was
	// not cached by Redis (NOSCRIPT after a restart or SCRIPT FLUSH).
	retry func(ctx context.Context, p redis.Pipeliner) redis.Cmder
	cmd   redis.Cmder // the answered command

	done chan struct{} // closed once cmd is answered
	lead chan struct{} // closed when this call is to send the next batch
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
	c.done, c.lead = make(chan struct{}), make(chan struct{})
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
	case <-c.done:
		return c.cmd, nil
	case <-c.lead:
		b.leadFrom(ctx)
		return c.cmd, nil
	case <-ctx.Done():
	}
	// Leave the queue if still in it; once taken into a batch, or handed
	// the lead, the call goes on (a round trip is bounded by the client's
	// timeouts).
	b.mu.Lock()
	for i, q := range b.queue {
		if q == c {
			select {
			case <-c.lead:
			default:
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				b.mu.Unlock()
				return nil, ctx.Err()
			}
			break
		}
	}
	b.mu.Unlock()
	select {
	case <-c.done:
	case <-c.lead:
		b.leadFrom(ctx)
	}
	return c.cmd, nil
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
		close(b.queue[0].lead)
	} else {
		b.busy = false
	}
	b.mu.Unlock()
}

// send runs batch as one pipeline and closes every call's done. Errors
// are per command (cmd.Err()); a failed round trip fails them all.
func (b *batcher) send(ctx context.Context, batch []*call) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	p := b.rdb.Pipeline()
	for _, c := range batch {
		c.cmd = c.add(ctx, p)
	}
	_, _ = p.Exec(ctx) // the first error again: each command keeps its own
	var again []*call
	for _, c := range batch {
		if c.retry != nil && redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			again = append(again, c)
		}
	}
	if len(again) == 0 {
		return
	}
	p = b.rdb.Pipeline()
	for _, c := range again {
		c.cmd = c.retry(ctx, p)
	}
	_, _ = p.Exec(ctx) // each command keeps its own error
}
