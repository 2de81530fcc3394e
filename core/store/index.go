package store

import "iter"

// recIndex maps record ids to their state (Log.mu.index).
//
// Ids are handed out in order and records mostly die in about that order,
// so live records sit in dense pages of indexPageSize consecutive ids: 40
// bytes a record, where a Go map entry costs about 100. A page that thins
// out below 1/16 full moves its few survivors to a map, so that a record
// that outlives its neighbours (a slow queue, a message scheduled far
// ahead) does not keep a whole page alive. The pages hold no pointers:
// the garbage collector does not scan them.
type recIndex struct {
	pages   map[uint64]*indexPage // by id >> indexPageShift
	sparse  map[uint64]recState
	newest  uint64 // highest page key given a record; it is never thinned
	n       int
	hasPage bool
}

const (
	indexPageShift = 10
	indexPageSize  = 1 << indexPageShift
	// indexThin is the live count below which an older page moves its
	// records to the sparse map.
	indexThin = indexPageSize / 16
)

// indexPage holds the states of indexPageSize consecutive ids; parts == 0
// marks an id with no record (a record has at least one part).
type indexPage struct {
	recs [indexPageSize]recState
	n    int
}

func newRecIndex() *recIndex {
	return &recIndex{pages: map[uint64]*indexPage{}, sparse: map[uint64]recState{}}
}

func (x *recIndex) len() int { return x.n }

func (x *recIndex) get(id uint64) (recState, bool) {
	if p := x.pages[id>>indexPageShift]; p != nil {
		if r := p.recs[id&(indexPageSize-1)]; r.parts != 0 {
			return r, true
		}
	}
	r, ok := x.sparse[id]
	return r, ok
}

// set stores r (r.parts > 0) for id.
func (x *recIndex) set(id uint64, r recState) {
	if _, ok := x.sparse[id]; ok {
		x.sparse[id] = r
		return
	}
	key := id >> indexPageShift
	p := x.pages[key]
	if p == nil {
		p = new(indexPage)
		x.pages[key] = p
	}
	if !x.hasPage || key > x.newest {
		x.newest, x.hasPage = key, true
	}
	slot := &p.recs[id&(indexPageSize-1)]
	if slot.parts == 0 {
		p.n++
		x.n++
	}
	*slot = r
}

func (x *recIndex) del(id uint64) {
	key := id >> indexPageShift
	if p := x.pages[key]; p != nil {
		slot := &p.recs[id&(indexPageSize-1)]
		if slot.parts != 0 {
			*slot = recState{}
			p.n--
			x.n--
			switch {
			case p.n == 0:
				delete(x.pages, key)
			case p.n < indexThin && key != x.newest:
				x.thin(key, p)
			}
			return
		}
	}
	if _, ok := x.sparse[id]; ok {
		delete(x.sparse, id)
		x.n--
	}
}

// thin moves the records of page key to the sparse map.
func (x *recIndex) thin(key uint64, p *indexPage) {
	for i := range p.recs {
		if r := p.recs[i]; r.parts != 0 {
			x.sparse[key<<indexPageShift|uint64(i)] = r
		}
	}
	delete(x.pages, key)
}

// all yields every record and its state, in no particular order. The
// index must not change during the iteration.
func (x *recIndex) all() iter.Seq2[uint64, recState] {
	return func(yield func(uint64, recState) bool) {
		for key, p := range x.pages {
			for i := range p.recs {
				if r := p.recs[i]; r.parts != 0 {
					if !yield(key<<indexPageShift|uint64(i), r) {
						return
					}
				}
			}
		}
		for id, r := range x.sparse {
			if !yield(id, r) {
				return
			}
		}
	}
}
