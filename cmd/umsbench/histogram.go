package main

import (
	"math/bits"
	"time"
)

// histogram records durations in fixed memory, the way HdrHistogram does:
// below 2^subBits nanoseconds every value has its own bucket, above that
// each power of two is split into 2^subBits/2 linear buckets. A recorded
// value is therefore reported at most 1/2^(subBits-1) above its true value
// (0.8% with subBits 8), whatever the range, and recording is an index
// computation and an increment. The exact minimum and maximum are kept
// aside. The zero value is ready; it is not safe for concurrent use.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max time.Duration
}

const (
	subBits     = 8
	subHalf     = 1 << (subBits - 1)
	histBuckets = (64-subBits+1)*subHalf + subHalf
)

// bucketOf maps a value to its bucket: values below 2^subBits map to
// themselves; a value v with bit length L above that is shifted right by
// s = L-subBits, which keeps its top subBits bits (subHalf..2*subHalf-1
// after the leading one), and bucket s*subHalf + (v>>s) follows on from
// the buckets of the previous power of two.
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	s := bits.Len64(v) - subBits
	return s*subHalf + int(v>>s)
}

// bucketTop is the largest value that maps to bucket i.
func bucketTop(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	s := i/subHalf - 1
	m := uint64(i - s*subHalf)
	return (m+1)<<s - 1
}

// record adds one value; negative values (clocks of two hosts) count as 0.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
}

// quantile returns the value at or below which a fraction p (0..1) of the
// recorded values lie, as the top of its bucket (never above the maximum);
// 0 without values.
func (h *histogram) quantile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(p*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketTop(i)), h.max)
		}
	}
	return h.max
}

// histJSON is the latency part of a notify result, in milliseconds.
type histJSON struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p99.9_ms"`
	Max     float64 `json:"max_ms"`
}

func (h *histogram) json() histJSON {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return histJSON{Samples: h.n, P50: ms(h.quantile(0.5)), P99: ms(h.quantile(0.99)),
		P999: ms(h.quantile(0.999)), Max: ms(h.max)}
}
