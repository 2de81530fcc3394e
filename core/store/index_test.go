package store

import (
	"math/rand/v2"
	"testing"
)

// The paged index behaves as a map whatever the order of sets and
// deletes, thins out old pages, and gives memory back as records die.
func TestRecIndexMatchesAMap(t *testing.T) {
	x := newRecIndex()
	want := map[uint64]recState{}
	rng := rand.New(rand.NewPCG(1, 2))
	next := uint64(1)
	var live []uint64
	for step := 0; step < 200000; step++ {
		switch op := rng.IntN(10); {
		case op < 5: // append
			r := recState{parts: uint32(1 + rng.IntN(3)), size: uint32(step)}
			x.set(next, r)
			want[next] = r
			live = append(live, next)
			next++
		case op < 8 && len(live) > 0: // a record dies, mostly among the oldest
			i := rng.IntN(min(len(live), 50))
			if rng.IntN(10) == 0 {
				i = rng.IntN(len(live))
			}
			id := live[i]
			live = append(live[:i], live[i+1:]...)
			x.del(id)
			delete(want, id)
		case len(live) > 0: // an update (sealed, moved, a part released)
			id := live[rng.IntN(len(live))]
			r := want[id]
			r.seg, r.off = segSeq(step), int64(step)
			x.set(id, r)
			want[id] = r
		}
		if step%997 == 0 {
			x.del(next + 5) // deleting what is not there changes nothing
		}
	}
	if x.len() != len(want) {
		t.Fatalf("len %d, want %d", x.len(), len(want))
	}
	for id, r := range want {
		if got, ok := x.get(id); !ok || got != r {
			t.Fatalf("get(%d) = %+v %v, want %+v", id, got, ok, r)
		}
	}
	seen := 0
	for id, r := range x.all() {
		if want[id] != r {
			t.Fatalf("all() yields %d %+v, want %+v", id, r, want[id])
		}
		seen++
	}
	if seen != len(want) {
		t.Fatalf("all() yields %d records, want %d", seen, len(want))
	}
	if _, ok := x.get(next + 100); ok {
		t.Fatal("get of an id never set")
	}
	// Only pages that hold at least 1/16 of their ids (or the newest) stay.
	for key, p := range x.pages {
		if p.n < indexThin && key != x.newest {
			t.Fatalf("page %d holds %d records: it should have thinned", key, p.n)
		}
	}
	for _, id := range live {
		x.del(id)
	}
	if x.len() != 0 || len(x.sparse) != 0 || len(x.pages) != 0 {
		t.Fatalf("after every record died: len %d, %d sparse, %d pages", x.len(), len(x.sparse), len(x.pages))
	}
}
