package amqp

import (
	"fmt"
	"testing"
	"time"

	"github.com/unifiedms/ums/core"
)

// TestConfirmsFind: find locates every outstanding publish by its sequence
// number, before and after confirmed ones leave the head (and the slice is
// compacted), and nothing outside the outstanding range.
func TestConfirmsFind(t *testing.T) {
	ch := &channel{id: 1, c: &conn{srv: &Server{Broker: core.NewBroker()}, dc: &deadlineConn{}, out: core.NewOutbox(1<<30, nil)}}
	var c confirms
	for range 3000 {
		c.next()
	}
	check := func(lo, hi uint64) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		for seq := lo; seq <= hi; seq++ {
			if e := c.find(seq); e == nil || e.seq != seq {
				t.Fatalf("find(%d) = %+v", seq, e)
			}
		}
		for _, seq := range []uint64{lo - 1, hi + 1, hi + 1000} {
			if e := c.find(seq); e != nil {
				t.Fatalf("find(%d) = %+v, want nil (outstanding %d..%d)", seq, e, lo, hi)
			}
		}
	}
	check(1, 3000)
	// The first 2,000 are routed to no durable queue and so confirmed.
	for seq := uint64(1); seq <= 2000; seq++ {
		c.published(ch, seq, false, false)
	}
	c.flush(ch)
	if c.sent != 2000 {
		t.Fatalf("confirmed up to %d, want 2000", c.sent)
	}
	check(2001, 3000)
	// The store answers for some in the middle, out of the head's order.
	c.published(ch, 2001, true, false)
	c.stored(ch, 2500, nil)
	if e := c.find(2500); e == nil || e.state != confirmAck {
		t.Fatalf("entry 2500 after the store's answer: %+v", e)
	}
	check(2001, 3000)
}

// findTime is the best of three timings of 5,000 lookups of the newest of
// n outstanding publishes.
func findTime(n int) time.Duration {
	var c confirms
	for range n {
		c.next()
	}
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		for range 5000 {
			c.mu.Lock()
			c.find(c.seq)
			c.mu.Unlock()
		}
		best = min(best, time.Since(start))
	}
	return best
}

// TestConfirmsFindConstantTime: with 100,000 publishes outstanding a lookup
// costs about what it costs with 100 (a scan from the head costs 1,000
// times more; the margin of 50 absorbs noise).
func TestConfirmsFindConstantTime(t *testing.T) {
	small, large := findTime(100), findTime(100_000)
	if large > 50*small+time.Millisecond {
		t.Fatalf("5,000 lookups: %v with 100 outstanding, %v with 100,000", small, large)
	}
}

// BenchmarkConfirmsFind looks up the newest publish with n outstanding,
// as the store's answer for it does: the time per lookup must not grow
// with n.
func BenchmarkConfirmsFind(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("outstanding=%d", n), func(b *testing.B) {
			var c confirms
			for range n {
				c.next()
			}
			last := c.seq
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.mu.Lock()
				e := c.find(last)
				c.mu.Unlock()
				if e == nil {
					b.Fatal("not found")
				}
			}
		})
	}
}
