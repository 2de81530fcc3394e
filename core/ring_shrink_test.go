package core

import "testing"

// A drained backlog gives its memory back: the ring shrinks as it empties.
func TestRingShrinksWhenDrained(t *testing.T) {
	var r ring
	for i := 0; i < 300000; i++ {
		r.pushBack(entry{seq: uint64(i)})
	}
	if len(r.buf) < 300000 {
		t.Fatalf("capacity %d for 300000 entries", len(r.buf))
	}
	for i := 0; i < 299000; i++ {
		if e := r.popFront(); e.seq != uint64(i) {
			t.Fatalf("entry %d has seq %d", i, e.seq)
		}
	}
	if r.len() != 1000 || len(r.buf) > 4*ringKeep {
		t.Fatalf("%d entries left in a ring of capacity %d", r.len(), len(r.buf))
	}
	for i := 299000; i < 300000; i++ {
		if e := r.popFront(); e.seq != uint64(i) {
			t.Fatalf("entry %d has seq %d after shrinking", i, e.seq)
		}
	}
	if r.len() != 0 || len(r.buf) > ringKeep {
		t.Fatalf("an empty ring keeps %d entries of capacity", len(r.buf))
	}
	// A small queue keeps its buffer: no reallocation per message.
	r = ring{}
	for i := 0; i < 100; i++ {
		r.pushBack(entry{seq: uint64(i)})
		r.popFront()
	}
	if len(r.buf) != 16 {
		t.Fatalf("capacity %d after 100 push/pop pairs", len(r.buf))
	}
}

// A long queue's ring grows by a quarter, so its spare room stays small.
func TestRingGrowsByAQuarterWhenLong(t *testing.T) {
	var r ring
	const n = 3 << 20
	for i := 0; i < n; i++ {
		r.pushBack(entry{seq: uint64(i)})
	}
	if c := len(r.buf); c < n || c > n+n/4 {
		t.Fatalf("capacity %d for %d entries: more than a quarter spare", c, n)
	}
	for i := 0; i < n; i++ {
		if e := r.popFront(); e.seq != uint64(i) {
			t.Fatalf("entry %d has seq %d", i, e.seq)
		}
	}
}
