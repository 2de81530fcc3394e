package route

import (
	"slices"
	"strings"
	"sync"
)

// TopicCacheSize is the number of routing keys whose match results a [Topic]
// remembers. When the cache is full, a quarter of it, chosen at random, is
// dropped to make room.
const TopicCacheSize = 1024

// Topic is the binding table of a topic exchange, with RabbitMQ's pattern
// rules (see the package documentation). It is a trie of pattern words with
// separate children for '*' and '#', fronted by a cache of match results per
// routing key that every Add and Remove clears. The zero value is not
// usable; call [NewTopic]. A Topic is safe for concurrent use.
type Topic[D comparable] struct {
	mu sync.RWMutex
	// root is the trie node for zero pattern words. REQUIRES: mu.
	root *topicNode[D]
	// bindings holds every (pattern, destination) pair. REQUIRES: mu.
	bindings map[binding[D]]struct{}

	// cacheMu is taken after mu, never before it.
	cacheMu sync.RWMutex
	// cache maps a routing key to its distinct destinations. Entries are
	// never handed out, only copied. REQUIRES: cacheMu.
	cache map[string][]D
}

// topicNode is one trie node. The path from the root spells a normalised
// pattern, in which no "#" follows another "#".
type topicNode[D comparable] struct {
	words map[string]*topicNode[D] // literal words; nil until needed
	star  *topicNode[D]            // the word "*"
	hash  *topicNode[D]            // the word "#"
	// dests are the destinations of the patterns that end here. A
	// destination appears once per pattern, so it repeats when bound by
	// equivalent patterns such as "#" and "#.#".
	dests []D
}

// NewTopic returns an empty topic table.
func NewTopic[D comparable]() *Topic[D] {
	return &Topic[D]{
		root:     &topicNode[D]{},
		bindings: make(map[binding[D]]struct{}),
		cache:    make(map[string][]D),
	}
}

// NewTopicUncached returns an empty topic table without the match cache,
// for the many small tables (one per queue) whose keys would fill a cache
// each: a match walks the trie every time.
func NewTopicUncached[D comparable]() *Topic[D] {
	return &Topic[D]{root: &topicNode[D]{}, bindings: make(map[binding[D]]struct{})}
}

// patternWords splits a pattern into trie words: "" is no words, and a run
// of "#" words collapses into one, which matches the same keys.
func patternWords(pattern string) []string {
	if pattern == "" {
		return nil
	}
	words := strings.Split(pattern, ".")
	return slices.CompactFunc(words, func(a, b string) bool { return a == "#" && b == "#" })
}

// child returns the child of n for word w, creating it if create is set.
func (n *topicNode[D]) child(w string, create bool) *topicNode[D] {
	switch w {
	case "*":
		if n.star == nil && create {
			n.star = &topicNode[D]{}
		}
		return n.star
	case "#":
		if n.hash == nil && create {
			n.hash = &topicNode[D]{}
		}
		return n.hash
	}
	c := n.words[w]
	if c == nil && create {
		if n.words == nil {
			n.words = make(map[string]*topicNode[D])
		}
		c = &topicNode[D]{}
		n.words[w] = c
	}
	return c
}

// unlink removes the child of n for word w.
func (n *topicNode[D]) unlink(w string) {
	switch w {
	case "*":
		n.star = nil
	case "#":
		n.hash = nil
	default:
		delete(n.words, w)
		if len(n.words) == 0 {
			n.words = nil
		}
	}
}

func (n *topicNode[D]) empty() bool {
	return len(n.dests) == 0 && len(n.words) == 0 && n.star == nil && n.hash == nil
}

// Add binds d with pattern. It returns false, and changes nothing, if that
// pair is already bound.
func (t *Topic[D]) Add(pattern string, d D) bool {
	b := binding[D]{pattern, d}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.bindings[b]; ok {
		return false
	}
	t.bindings[b] = struct{}{}
	n := t.root
	for _, w := range patternWords(pattern) {
		n = n.child(w, true)
	}
	n.dests = append(n.dests, d)
	t.clearCache()
	return true
}

// Remove unbinds d from pattern. It returns false if that pair was not bound.
func (t *Topic[D]) Remove(pattern string, d D) bool {
	b := binding[D]{pattern, d}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.bindings[b]; !ok {
		return false
	}
	delete(t.bindings, b)
	words := patternWords(pattern)
	path := make([]*topicNode[D], 1, len(words)+1)
	path[0] = t.root
	n := t.root
	for _, w := range words {
		n = n.child(w, false)
		path = append(path, n) // never nil: the binding exists
	}
	if i := slices.Index(n.dests, d); i >= 0 {
		last := len(n.dests) - 1
		n.dests[i] = n.dests[last]
		var zero D
		n.dests[last] = zero
		n.dests = n.dests[:last]
		if last == 0 {
			n.dests = nil
		}
	}
	for i := len(words) - 1; i >= 0 && path[i+1].empty(); i-- {
		path[i].unlink(words[i])
	}
	t.clearCache()
	return true
}

// clearCache drops every cached result. REQUIRES: t.mu held for writing.
func (t *Topic[D]) clearCache() {
	t.cacheMu.Lock()
	clear(t.cache)
	t.cacheMu.Unlock()
}

// Match appends to out every distinct destination bound with a pattern that
// matches key, and returns the extended slice. A destination bound through
// several matching patterns is appended once (destinations already in out
// before the call are not considered). On a cache hit it allocates nothing
// when out has enough spare capacity.
func (t *Topic[D]) Match(key string, out []D) []D {
	if t.cache == nil { // NewTopicUncached
		t.mu.RLock()
		defer t.mu.RUnlock()
		return t.walkLocked(key, out)
	}
	t.cacheMu.RLock()
	res, ok := t.cache[key]
	if ok {
		out = append(out, res...)
	}
	t.cacheMu.RUnlock()
	if ok {
		return out
	}
	return t.matchMiss(key, out)
}

// Any reports whether a pattern matches key; from the cache, it
// allocates nothing.
func (t *Topic[D]) Any(key string) bool {
	if t.cache != nil {
		t.cacheMu.RLock()
		res, ok := t.cache[key]
		t.cacheMu.RUnlock()
		if ok {
			return len(res) > 0
		}
	}
	return len(t.Match(key, nil)) > 0
}

// walkLocked appends the distinct destinations of the patterns matching
// key. REQUIRES: t.mu held for reading.
func (t *Topic[D]) walkLocked(key string, out []D) []D {
	start := len(out)
	w := topicWalk[D]{key: key, out: out}
	pos := 0
	if key == "" {
		pos = 1 // the empty key has no words
	}
	w.walk(t.root, pos)
	return dedupe(w.out, start)
}

// matchMiss walks the trie for key and caches the result.
func (t *Topic[D]) matchMiss(key string, out []D) []D {
	// mu is held until the result is cached, so an Add or Remove (which
	// clears the cache under mu) cannot be overtaken by a stale result.
	t.mu.RLock()
	defer t.mu.RUnlock()
	start := len(out)
	out = t.walkLocked(key, out)
	res := slices.Clone(out[start:])

	t.cacheMu.Lock()
	if len(t.cache) >= TopicCacheSize {
		n := 0
		for k := range t.cache { // map order is random, so this evicts at random
			delete(t.cache, k)
			if n++; n >= TopicCacheSize/4 {
				break
			}
		}
	}
	// Clone the key: the caller's string may share memory with a buffer.
	t.cache[strings.Clone(key)] = res
	t.cacheMu.Unlock()
	return out
}

// topicWalk holds the state of one trie walk.
type topicWalk[D comparable] struct {
	key string
	out []D
}

// walk collects the destinations of the patterns below n that match the
// words of w.key from byte offset pos on. pos > len(w.key) means no words
// are left; pos == len(w.key) means one empty word is left.
func (w *topicWalk[D]) walk(n *topicNode[D], pos int) {
	key := w.key
	if pos > len(key) {
		w.out = append(w.out, n.dests...)
		if n.hash != nil { // '#' matches zero words
			w.walk(n.hash, pos)
		}
		return
	}
	end := len(key)
	if i := strings.IndexByte(key[pos:], '.'); i >= 0 {
		end = pos + i
	}
	if n.words != nil {
		if c := n.words[key[pos:end]]; c != nil {
			w.walk(c, end+1)
		}
	}
	if n.star != nil {
		w.walk(n.star, end+1)
	}
	h := n.hash
	if h == nil {
		return
	}
	if h.words == nil && h.star == nil {
		// A pattern ending in '#' matches whatever is left. (h.hash is
		// nil: patterns are normalised.)
		w.out = append(w.out, h.dests...)
		return
	}
	// '#' swallows zero, one, ... or all of the remaining words.
	for p := pos; ; {
		w.walk(h, p)
		if p > len(key) {
			return
		}
		if i := strings.IndexByte(key[p:], '.'); i >= 0 {
			p += i + 1
		} else {
			p = len(key) + 1
		}
	}
}

// dedupe removes repeats from out[start:], keeping first occurrences in
// order, and returns the shortened slice.
func dedupe[D comparable](out []D, start int) []D {
	s := out[start:]
	if len(s) < 2 {
		return out
	}
	k := 0
	if len(s) <= 32 {
		for _, d := range s {
			if !slices.Contains(s[:k], d) {
				s[k] = d
				k++
			}
		}
	} else {
		seen := make(map[D]struct{}, len(s))
		for _, d := range s {
			if _, ok := seen[d]; !ok {
				seen[d] = struct{}{}
				s[k] = d
				k++
			}
		}
	}
	clear(s[k:])
	return out[:start+k]
}

// Len returns the number of bindings.
func (t *Topic[D]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.bindings)
}
