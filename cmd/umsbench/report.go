package main

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Every message body starts with a 16-byte stamp (fewer bytes carry less):
//
//	0..8   send time, Unix nanoseconds, big endian
//	8..12  sender id, random per publisher and run
//	12..16 sequence number of the message at its sender
//
// The time gives the end-to-end latency; sender and sequence let the
// receiving side count duplicates.
const (
	stampTime = 8
	stampFull = 16
)

// newSenderID picks a random sender id so that messages left in a queue by
// an earlier run are not taken for duplicates.
func newSenderID() uint32 { return rand.Uint32() }

// putStamp writes the stamp into the start of body (as much as fits).
func putStamp(body []byte, now int64, sender, seq uint32) {
	if len(body) >= stampTime {
		binary.BigEndian.PutUint64(body, uint64(now))
	}
	if len(body) >= stampFull {
		binary.BigEndian.PutUint32(body[8:], sender)
		binary.BigEndian.PutUint32(body[12:], seq)
	}
}

// tally counts what a receiving side got: messages, distinct messages and
// latencies. It is safe for concurrent use.
type tally struct {
	mu       sync.Mutex
	received int64
	distinct int64
	lats     []time.Duration
	seen     map[uint32][]uint64 // sender → bitset of sequence numbers
	last     int64               // time of the latest arrival, Unix nanoseconds
}

func newTally() *tally {
	return &tally{lats: make([]time.Duration, 0, 1<<20), seen: map[uint32][]uint64{}}
}

// add records one received body at time now.
func (t *tally) add(body []byte, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.received++
	t.last = max(t.last, now)
	if len(body) >= stampTime {
		t.lats = append(t.lats, time.Duration(now-int64(binary.BigEndian.Uint64(body))))
	}
	if len(body) < stampFull {
		t.distinct++ // no identity: every message counts as new
		return
	}
	sender, seq := binary.BigEndian.Uint32(body[8:]), binary.BigEndian.Uint32(body[12:])
	bits := t.seen[sender]
	word := int(seq / 64)
	if word >= len(bits) {
		bits = append(bits, make([]uint64, word+1-len(bits))...)
		t.seen[sender] = bits
	}
	mask := uint64(1) << (seq % 64)
	if bits[word]&mask == 0 {
		bits[word] |= mask
		t.distinct++
	}
}

// counts returns the totals so far.
func (t *tally) counts() (received, distinct int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.received, t.distinct
}

// lastArrival returns the time of the latest arrival (zero without any).
func (t *tally) lastArrival() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.last)
}

// consumeElapsed is the time from start to the latest arrival at any of
// tallies: the interval a consumed rate is over, publishing or draining.
// It is never shorter than the publishing time pub.
func consumeElapsed(start time.Time, pub time.Duration, tallies []*tally) time.Duration {
	d := pub
	for _, t := range tallies {
		if l := t.lastArrival(); !l.IsZero() {
			d = max(d, l.Sub(start))
		}
	}
	return d
}

// latencies returns the recorded latencies, sorted.
func (t *tally) latencies() latencyStats {
	t.mu.Lock()
	l := slices.Clone(t.lats)
	t.mu.Unlock()
	slices.Sort(l)
	return latencyStats(l)
}

// latencyStats is a sorted list of latencies.
type latencyStats []time.Duration

// pct returns the p-quantile (0..1), 0 without samples.
func (l latencyStats) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[int(float64(len(l)-1)*p)]
}

// latencyJSON is the latency part of a JSON result, in milliseconds.
type latencyJSON struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p99.9_ms"`
	Max     float64 `json:"max_ms"`
}

func (l latencyStats) json() latencyJSON {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latencyJSON{Samples: len(l), P50: ms(l.pct(0.5)), P90: ms(l.pct(0.9)), P99: ms(l.pct(0.99)), P999: ms(l.pct(0.999)), Max: ms(l.pct(1))}
}

// perSecond returns n per second over d (0 for an empty interval).
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
