package core

// entry is a message waiting in a queue, or delivered and not yet settled.
type entry struct {
	msg         *Message // nil while paged out to the message store
	seq         uint64   // position in the queue; requeued entries go back to it
	expiresAt   int64    // unix nanoseconds, 0 = never
	sid         uint64   // message store record id, when stored
	deliveries  uint32   // how often it was delivered
	size        uint32   // body size (msg may be paged out)
	part        int32    // which part of the record this queue holds
	stored      bool
	prio        uint8
	msgTTL      bool // expiresAt comes from the message's own expiration
	redelivered bool
}

// ring is a growable FIFO of entries kept sorted by seq. Appends and pops are
// O(1); requeues insert at their old position, normally near the head.
type ring struct {
	buf  []entry
	head int
	n    int
}

func (r *ring) len() int { return r.n }

// ringKeep is the capacity (entries) a ring keeps however empty it gets:
// above it, a ring a quarter full halves, so a drained backlog gives its
// memory back.
const ringKeep = 1024

func (r *ring) grow() {
	size := len(r.buf) * 2
	switch {
	case size < 16:
		size = 16
	case len(r.buf) >= ringBig:
		// Long queues grow by a quarter: at 10 million entries, doubling
		// would leave up to 400 MB unused.
		size = len(r.buf) + len(r.buf)/4
	}
	r.resize(size)
}

// ringBig is the capacity from which a ring grows by a quarter, not double.
const ringBig = 1 << 20

func (r *ring) resize(size int) {
	nb := make([]entry, size)
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = nb, 0
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) pushBack(e entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *ring) front() *entry { return &r.buf[r.head] }

func (r *ring) popFront() entry {
	e := r.buf[r.head]
	r.buf[r.head] = entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	switch {
	case r.n == 0:
		r.head = 0
		if len(r.buf) > ringKeep {
			r.buf = nil
		}
	case len(r.buf) > ringKeep && r.n < len(r.buf)/4:
		r.resize(len(r.buf) / 2)
	}
	return e
}

// insert puts e at its place by seq.
func (r *ring) insert(e entry) {
	// Find the first index whose seq is greater than e.seq; requeues land near
	// the head, so search from the front.
	lo, hi := 0, r.n
	for lo < hi {
		mid := (lo + hi) / 2
		if r.at(mid).seq < e.seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if r.n == len(r.buf) {
		r.grow()
	}
	if lo == 0 {
		r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
		r.buf[r.head] = e
		r.n++
		return
	}
	// Shift the tail right by one.
	for i := r.n; i > lo; i-- {
		*r.at(i) = *r.at(i - 1)
	}
	*r.at(lo) = e
	r.n++
}

// clear drops every entry and returns how many there were.
func (r *ring) clear() int {
	n := r.n
	r.buf, r.head, r.n = nil, 0, 0
	return n
}

// filter keeps the entries for which keep returns true, in order.
func (r *ring) filter(keep func(*entry) bool) {
	n := 0
	for i := 0; i < r.n; i++ {
		e := r.at(i)
		if keep(e) {
			if i != n {
				*r.at(n) = *e
			}
			n++
		}
	}
	for i := n; i < r.n; i++ {
		*r.at(i) = entry{}
	}
	r.n = n
	if n == 0 {
		r.head = 0
	}
}
