package main

import (
	"testing"
	"time"
)

// Buckets follow on from each other and a value is never reported more
// than 1/128 above itself.
func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, 1<<63 + 5, 1<<64 - 1} {
		i := bucketOf(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, i, prev)
		}
		prev = i
		if top := bucketTop(i); top < v || float64(top-v) > float64(v)/128 {
			t.Fatalf("bucketOf(%d) = %d, top %d", v, i, top)
		}
	}
	for i := 1; i < histBuckets; i++ {
		if bucketOf(bucketTop(i-1)+1) != i {
			t.Fatalf("bucket %d does not start after the top of %d", i, i-1)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.p)
		if got < c.want || float64(got-c.want) > float64(c.want)/128 {
			t.Errorf("quantile(%v) = %v, want %v within 1/128", c.p, got, c.want)
		}
	}
	if h.min != time.Microsecond || h.max != 10*time.Millisecond || h.n != 10000 {
		t.Errorf("min %v max %v n %d", h.min, h.max, h.n)
	}
}
