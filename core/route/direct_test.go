package route

import (
	"slices"
	"sync"
	"testing"
)

func TestDirect(t *testing.T) {
	d := NewDirect[string]()
	steps := []struct {
		op   string // "add", "remove" or "match"
		key  string
		dest string
		ok   bool     // result of add/remove
		want []string // result of match, sorted
	}{
		{op: "match", key: "a", want: nil},
		{op: "add", key: "a", dest: "q1", ok: true},
		{op: "add", key: "a", dest: "q1", ok: false},
		{op: "add", key: "a", dest: "q2", ok: true},
		{op: "add", key: "", dest: "q3", ok: true},
		{op: "add", key: "b", dest: "q1", ok: true},
		{op: "match", key: "a", want: []string{"q1", "q2"}},
		{op: "match", key: "", want: []string{"q3"}},
		{op: "match", key: "A", want: nil},
		{op: "remove", key: "a", dest: "q3", ok: false},
		{op: "remove", key: "a", dest: "q1", ok: true},
		{op: "remove", key: "a", dest: "q1", ok: false},
		{op: "match", key: "a", want: []string{"q2"}},
		{op: "match", key: "b", want: []string{"q1"}},
		{op: "remove", key: "a", dest: "q2", ok: true},
		{op: "match", key: "a", want: nil},
	}
	for i, s := range steps {
		switch s.op {
		case "add":
			if got := d.Add(s.key, s.dest); got != s.ok {
				t.Fatalf("step %d: Add(%q, %q) = %v", i, s.key, s.dest, got)
			}
		case "remove":
			if got := d.Remove(s.key, s.dest); got != s.ok {
				t.Fatalf("step %d: Remove(%q, %q) = %v", i, s.key, s.dest, got)
			}
		case "match":
			got := d.Match(s.key, nil)
			slices.Sort(got)
			if !slices.Equal(got, s.want) {
				t.Fatalf("step %d: Match(%q) = %q, want %q", i, s.key, got, s.want)
			}
		}
	}
	if n := d.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if _, ok := d.keys["a"]; ok {
		t.Fatal("empty key list not dropped")
	}
}

// TestDirectManyPerKey exercises the swap-delete bookkeeping.
func TestDirectManyPerKey(t *testing.T) {
	d := NewDirect[int]()
	for i := range 100 {
		d.Add("k", i)
	}
	for i := 0; i < 100; i += 3 {
		if !d.Remove("k", i) {
			t.Fatalf("Remove(%d) = false", i)
		}
	}
	var want []int
	for i := range 100 {
		if i%3 != 0 {
			want = append(want, i)
		}
	}
	got := d.Match("k", nil)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("Match = %v, want %v", got, want)
	}
	for _, i := range want {
		if !d.Remove("k", i) {
			t.Fatalf("Remove(%d) = false", i)
		}
	}
	if d.Len() != 0 || len(d.keys) != 0 {
		t.Fatalf("not empty: %d bindings, %d keys", d.Len(), len(d.keys))
	}
}

func TestDirectConcurrent(t *testing.T) {
	d := NewDirect[int]()
	d.Add("k", 0)
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
				d.Add("k", 1+w*10+i%10)
				d.Remove("k", 1+w*10+i%10)
			}
		})
	}
	errs := make(chan string, 8)
	for range 8 {
		readers.Go(func() {
			out := make([]int, 0, 64)
			for range 20000 {
				out = d.Match("k", out[:0])
				if !slices.Contains(out, 0) {
					errs <- "stable binding missing"
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

// TestZeroAllocs is the allocation budget of the per-message path.
func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation budget")
	}
	d := NewDirect[*int]()
	tp := NewTopic[*int]()
	h := NewHeaders[*int]()
	for i := range 100 {
		q := new(int)
		d.Add("key", q)
		tp.Add("a.*.c", q)
		tp.Add("#", q)
		h.Add(map[string]any{"x-match": "any", "format": "pdf", "n": int64(i)}, q)
	}
	hdrs := map[string]any{"format": "pdf", "n": int32(7)}
	args := map[string]any{"format": []byte("pdf"), "n": uint8(7)}
	out := make([]*int, 0, 256)
	tp.Match("a.b.c", out) // fill the cache
	cases := []struct {
		name string
		f    func()
	}{
		{"Direct.Match", func() { out = d.Match("key", out[:0]) }},
		{"Topic.Match cache hit", func() { out = tp.Match("a.b.c", out[:0]) }},
		{"Topic.Any cache hit", func() {
			if !tp.Any("a.b.c") {
				panic("no match")
			}
		}},
		{"Direct.Any", func() {
			if !d.Any("key") || d.Any("other") {
				panic("wrong answer")
			}
		}},
		{"Headers.Match", func() { out = h.Match(hdrs, out[:0]) }},
		{"HeadersMatch", func() {
			if !HeadersMatch(args, hdrs) {
				panic("no match")
			}
		}},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", c.name, n)
		}
	}
	if len(out) != 100 {
		t.Fatalf("last match returned %d destinations, want 100", len(out))
	}
}
