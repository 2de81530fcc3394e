package route

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchTopic builds a topic table with n bindings: 60% literal patterns,
// 25% with a '*' and 15% with a '#', over keys of three words (10 x 100 x 50
// possible keys). Every binding has its own destination.
func benchTopic(n int) (*Topic[*int], []string) {
	rng := rand.New(rand.NewPCG(7, 7))
	w1 := func() string { return fmt.Sprintf("r%d", rng.IntN(10)) }
	w2 := func() string { return fmt.Sprintf("s%d", rng.IntN(100)) }
	w3 := func() string { return fmt.Sprintf("e%d", rng.IntN(50)) }
	tp := NewTopic[*int]()
	for tp.Len() < n {
		var p string
		switch r := rng.IntN(100); {
		case r < 60:
			p = w1() + "." + w2() + "." + w3()
		case r < 70:
			p = w1() + ".*." + w3()
		case r < 80:
			p = "*." + w2() + "." + w3()
		case r < 85:
			p = w1() + "." + w2() + ".*"
		case r < 90:
			p = w1() + "." + w2() + ".#"
		case r < 95:
			p = "#." + w3()
		default:
			p = w1() + ".#." + w3()
		}
		tp.Add(p, new(int))
	}
	keys := make([]string, 1<<14)
	for i := range keys {
		keys[i] = w1() + "." + w2() + "." + w3()
	}
	return tp, keys
}

func BenchmarkTopicMatch(b *testing.B) {
	tp, keys := benchTopic(10_000)
	out := make([]*int, 0, 1024)
	total := 0
	for _, k := range keys[:1000] {
		total += len(tp.Match(k, out[:0]))
	}
	b.Logf("10000 bindings, %.1f destinations per key on average", float64(total)/1000)

	b.Run("CacheHit", func(b *testing.B) {
		hot := keys[:256] // fits in the cache
		for _, k := range hot {
			tp.Match(k, out[:0])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			out = tp.Match(hot[i&255], out[:0])
			i++
		}
	})
	b.Run("CacheHitParallel", func(b *testing.B) {
		hot := keys[:256]
		for _, k := range hot {
			tp.Match(k, out[:0])
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			out := make([]*int, 0, 1024)
			i := 0
			for pb.Next() {
				out = tp.Match(hot[i&255], out[:0])
				i++
			}
		})
	})
	b.Run("CacheMiss", func(b *testing.B) {
		// matchMiss is what Match runs when the key is not cached: the trie
		// walk, deduplication, and the cache insertion (with eviction).
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			out = tp.matchMiss(keys[i&(len(keys)-1)], out[:0])
			i++
		}
	})
}

func BenchmarkDirectMatch(b *testing.B) {
	d := NewDirect[*int]()
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("queue-%d", i)
		d.Add(keys[i], new(int))
	}
	out := make([]*int, 0, 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		out = d.Match(keys[i%len(keys)], out[:0])
		i++
	}
}

func BenchmarkHeadersMatch(b *testing.B) {
	h := NewHeaders[*int]()
	formats := []string{"pdf", "doc", "txt", "png"}
	for i := range 100 {
		args := map[string]any{
			"format": formats[i%4],
			"tenant": int64(i % 10),
		}
		if i%3 == 0 {
			args["x-match"] = "any"
			args["priority"] = nil
		}
		h.Add(args, new(int))
	}
	hdrs := map[string]any{
		"format": "pdf", "tenant": int32(4), "size": "a4",
		"x-trace": "abc", "retries": int8(0),
	}
	out := make([]*int, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		out = h.Match(hdrs, out[:0])
	}
	b.ReportMetric(float64(len(out)), "dests")
}
