package route

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// refWords splits the way RabbitMQ does: "" is zero words.
func refWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// refMatch is a direct transcription of the topic rules, used as an oracle.
func refMatch(pattern, key []string) bool {
	if len(pattern) == 0 {
		return len(key) == 0
	}
	switch pattern[0] {
	case "#":
		for i := 0; i <= len(key); i++ {
			if refMatch(pattern[1:], key[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(key) > 0 && refMatch(pattern[1:], key[1:])
	}
	return len(key) > 0 && key[0] == pattern[0] && refMatch(pattern[1:], key[1:])
}

func TestTopicPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		key     string
		want    bool
	}{
		// '#' matches everything, including the empty key.
		{"#", "", true},
		{"#", "a", true},
		{"#", "a.b.c", true},
		{"#", ".", true},
		{"#.#", "", true},
		{"#.#", "a.b", true},
		{"#.#.#", "a", true},
		// The empty pattern and key are zero words.
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*", ".", false},
		{"*.*", ".", true},
		{"*.*", "a.", true},
		// RabbitMQ tutorial 5.
		{"*.orange.*", "quick.orange.rabbit", true},
		{"*.orange.*", "lazy.orange.elephant", true},
		{"*.orange.*", "quick.orange.fox", true},
		{"*.orange.*", "orange", false},
		{"*.orange.*", "quick.orange.male.rabbit", false},
		{"*.*.rabbit", "quick.orange.rabbit", true},
		{"*.*.rabbit", "lazy.brown.fox", false},
		{"lazy.#", "lazy", true},
		{"lazy.#", "lazy.orange.elephant", true},
		{"lazy.#", "lazy.orange.male.rabbit", true},
		{"lazy.#", "quick.brown.fox", false},
		{"lazy.#", "lazyx", false},
		{"lazy.#", "lazy.", true},
		// '#' in the middle.
		{"a.#.b", "a.b", true},
		{"a.#.b", "a.x.b", true},
		{"a.#.b", "a.x.y.b", true},
		{"a.#.b", "a.b.b", true},
		{"a.#.b", "a.x.b.c", false},
		{"a.#.b", "b", false},
		{"a.#.b", "a", false},
		{"a.#.#.b", "a.b", true},
		{"a.#.#.b", "a.x.y.b", true},
		{"#.a", "a", true},
		{"#.a", "x.y.a", true},
		{"#.a", "x.a.b", false},
		{"#.b.#", "b", true},
		{"#.b.#", "a.b.c", true},
		{"#.b.#", "a.c", false},
		{"#.a.#.a", "a.a", true},
		{"#.a.#.a", "x.a.y.a", true},
		{"#.a.#.a", "a", false},
		{"#.*", "", false},
		{"#.*", "a", true},
		{"#.*", "a.b.c", true},
		{"*.#", "", false},
		{"*.#", "a", true},
		{"*.#.*", "a", false},
		{"*.#.*", "a.b", true},
		{"*.#.*", "a.b.c.d", true},
		// Empty words are words.
		{"a..b", "a..b", true},
		{"a..b", "a.b", false},
		{"a.*.b", "a..b", true},
		{"a.", "a.", true},
		{"a.", "a", false},
		{"a.*", "a.", true},
		{"a.*", "a", false},
		{".", ".", true},
		{"", ".", false},
		// Only whole words are wildcards; key words are always literal.
		{"a*", "a*", true},
		{"a*", "ab", false},
		{"#b", "xb", false},
		{"#b", "#b", true},
		{"a.b", "a.*", false},
		{"a.*", "a.#", true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q~%q", c.pattern, c.key), func(t *testing.T) {
			if got := refMatch(refWords(c.pattern), refWords(c.key)); got != c.want {
				t.Fatalf("oracle: got %v, want %v", got, c.want)
			}
			tp := NewTopic[int]()
			tp.Add(c.pattern, 1)
			for range 2 { // the second round is a cache hit
				got := tp.Match(c.key, nil)
				if want := c.want; (len(got) == 1) != want || len(got) > 1 {
					t.Fatalf("Match(%q) with pattern %q = %v, want match %v", c.key, c.pattern, got, want)
				}
			}
		})
	}
}

// TestTopicRandom cross-checks the trie against the oracle on random
// patterns and keys over a small alphabet, so that many of them overlap.
func TestTopicRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "", "*", "#"}
	gen := func(wild bool) string {
		n := rng.IntN(5)
		ws := make([]string, n)
		for i := range ws {
			k := len(words)
			if !wild {
				k = 3
			}
			ws[i] = words[rng.IntN(k)]
		}
		return strings.Join(ws, ".")
	}
	for round := range 50 {
		tp := NewTopic[int]()
		if round%2 == 1 {
			tp = NewTopicUncached[int]() // the same answers without the cache
		}
		patterns := make([]string, 40)
		for i := range patterns {
			patterns[i] = gen(true)
			tp.Add(patterns[i], i%25) // destinations repeat across patterns
		}
		for range 200 {
			key := gen(false)
			var want []int
			for i, p := range patterns {
				if refMatch(refWords(p), refWords(key)) && !slices.Contains(want, i%25) {
					want = append(want, i%25)
				}
			}
			for i := range 2 {
				if i == 1 || rng.IntN(2) == 0 { // Any before or after Match filled the cache
					if got := tp.Any(key); got != (len(want) > 0) {
						t.Fatalf("round %d: Any(%q) = %v, want %v (patterns %q)", round, key, got, len(want) > 0, patterns)
					}
				}
				got := tp.Match(key, nil)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: Match(%q) = %v, want %v (patterns %q)", round, key, got, want, patterns)
				}
			}
		}
	}
}

func TestTopicDistinctAndRemove(t *testing.T) {
	tp := NewTopic[string]()
	if !tp.Add("a.*", "q1") || !tp.Add("#", "q1") || !tp.Add("#.#", "q1") || !tp.Add("a.b", "q2") {
		t.Fatal("Add of new bindings returned false")
	}
	if tp.Add("a.*", "q1") {
		t.Fatal("duplicate Add returned true")
	}
	if n := tp.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	check := func(key string, want ...string) {
		t.Helper()
		got := tp.Match(key, nil)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q, want %q", key, got, want)
		}
	}
	check("a.b", "q1", "q2")
	check("a.b", "q1", "q2") // cached
	check("x", "q1")

	if tp.Remove("a.b", "q1") {
		t.Fatal("Remove of an unbound pair returned true")
	}
	if !tp.Remove("a.b", "q2") {
		t.Fatal("Remove returned false")
	}
	check("a.b", "q1") // the cached result must be gone
	if !tp.Remove("#", "q1") {
		t.Fatal("Remove # returned false")
	}
	check("x", "q1") // still bound by "#.#"
	if !tp.Remove("#.#", "q1") {
		t.Fatal("Remove #.# returned false")
	}
	check("x")
	check("a.b", "q1")
	if !tp.Remove("a.*", "q1") {
		t.Fatal("Remove a.* returned false")
	}
	check("a.b")
	if n := tp.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
	if !tp.root.empty() {
		t.Fatalf("trie not pruned: %+v", tp.root)
	}
	tp.Add("a.b", "q3")
	check("a.b", "q3") // cache invalidated by Add too
}

func TestTopicResultNotAliased(t *testing.T) {
	tp := NewTopic[int]()
	tp.Add("a", 1)
	out := tp.Match("a", nil)
	out[0] = 99
	out = tp.Match("a", out[:0])
	out[0] = 98
	if got := tp.Match("a", nil); !slices.Equal(got, []int{1}) {
		t.Fatalf("cache modified through a returned slice: %v", got)
	}
	// Destinations already in out are kept and not deduplicated against.
	if got := tp.Match("a", []int{1}); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("Match with prefilled out = %v", got)
	}
}

func TestTopicCacheBounded(t *testing.T) {
	tp := NewTopic[int]()
	tp.Add("k.*", 1)
	for i := range 3 * TopicCacheSize {
		key := fmt.Sprintf("k.%d", i)
		if got := tp.Match(key, nil); !slices.Equal(got, []int{1}) {
			t.Fatalf("Match(%q) = %v", key, got)
		}
	}
	tp.cacheMu.RLock()
	n := len(tp.cache)
	tp.cacheMu.RUnlock()
	if n > TopicCacheSize || n == 0 {
		t.Fatalf("cache holds %d entries, want 1..%d", n, TopicCacheSize)
	}
}

func TestTopicConcurrent(t *testing.T) {
	tp := NewTopic[int]()
	tp.Add("stable.#", 0)
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("stable.%d.*", i%50)
				d := 1 + w*100 + i%50
				tp.Add(p, d)
				tp.Remove(p, d)
			}
		})
	}
	errs := make(chan string, 8)
	for range 8 {
		readers.Go(func() {
			out := make([]int, 0, 16)
			for i := range 20000 {
				out = tp.Match(fmt.Sprintf("stable.%d.x", i%60), out[:0])
				if !slices.Contains(out, 0) {
					errs <- fmt.Sprintf("stable binding missing: %v", out)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
