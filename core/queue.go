package core

import (
	"sync"
)

// Queue holds messages until consumers take them.
type Queue struct {
	vhost *Vhost
	Name  string
	QueueOptions
	owner *Conn // set for exclusive queues

	// bindings whose destination is this queue, guarded by vhost.mu.
	bindings []*binding

	mu          sync.Mutex
	ready       ring
	seq         uint64
	unacked     int // delivered, not yet settled
	consumers   []*Consumer
	rr          int // next consumer to try
	hadConsumer bool
	deleted     bool
}

func newQueue(v *Vhost, name string, opts QueueOptions) *Queue {
	return &Queue{vhost: v, Name: name, QueueOptions: opts}
}

// Vhost returns the queue's virtual host.
func (q *Queue) Vhost() *Vhost { return q.vhost }

func (q *Queue) lockedErr() error {
	return errorf(ErrResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. "+
		"It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
		q.Name, q.vhost.Name)
}

// checkOwner refuses access to another connection's exclusive queue.
func (q *Queue) checkOwner(c *Conn) error {
	if q.Exclusive && q.owner != c {
		return q.lockedErr()
	}
	return nil
}

// Counts returns the number of messages ready for delivery and of consumers.
func (q *Queue) Counts() (messages, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len(), len(q.consumers)
}

// Unacked returns the number of delivered messages awaiting settlement.
func (q *Queue) Unacked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unacked
}

// Deleted reports whether the queue has been deleted.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// enqueue appends msg and hands it to a consumer when one has room.
func (q *Queue) enqueue(msg *Message) bool {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return false
	}
	q.seq++
	q.ready.pushBack(entry{msg: msg, seq: q.seq})
	q.dispatchLocked()
	q.mu.Unlock()
	return true
}

// Purge drops every ready message and returns how many there were.
func (v *Vhost) Purge(owner *Conn, name string) (int, error) {
	q, err := v.Queue(owner, name)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.clear(), nil
}

// dispatchLocked delivers ready messages round-robin to consumers that have
// room. REQUIRES: q.mu.
func (q *Queue) dispatchLocked() {
	for q.ready.len() > 0 && len(q.consumers) > 0 {
		n := len(q.consumers)
		if q.rr >= n {
			q.rr = 0
		}
		delivered := false
		for i := 0; i < n; i++ {
			idx := (q.rr + i) % n
			c := q.consumers[idx]
			if c.session.offer(c, q, q.ready.front()) {
				q.ready.popFront()
				if !c.NoAck {
					q.unacked++
				}
				q.rr = idx + 1
				delivered = true
				break
			}
		}
		if !delivered {
			return
		}
	}
}

// kick retries delivery after consumers gained room.
func (q *Queue) kick() {
	q.mu.Lock()
	q.dispatchLocked()
	q.mu.Unlock()
}

// settle finishes deliveries of this queue: acked ones are dropped, the
// others go back to their place with redelivered set.
func (q *Queue) settle(ps []pending, requeue bool) {
	q.mu.Lock()
	q.unacked -= len(ps)
	if q.unacked < 0 {
		q.unacked = 0
	}
	if requeue && !q.deleted {
		for _, p := range ps {
			e := p.e
			e.redelivered = true
			q.ready.insert(e)
		}
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// addConsumer attaches c. REQUIRES: nothing held.
func (q *Queue) addConsumer(c *Consumer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return q.vhost.noQueue(q.Name)
	}
	if len(q.consumers) > 0 && (c.Exclusive || q.consumers[0].Exclusive) {
		return errorf(ErrAccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.vhost.Name)
	}
	q.consumers = append(q.consumers, c)
	q.hadConsumer = true
	if c.started != nil {
		c.started(c.Tag)
	}
	q.dispatchLocked()
	return nil
}

// removeConsumer detaches c; an auto-delete queue left without consumers is deleted.
func (q *Queue) removeConsumer(c *Consumer) {
	q.mu.Lock()
	for i, o := range q.consumers {
		if o == c {
			q.consumers = append(q.consumers[:i:i], q.consumers[i+1:]...)
			break
		}
	}
	autoDelete := q.AutoDelete && q.hadConsumer && len(q.consumers) == 0 && !q.deleted
	q.mu.Unlock()
	if autoDelete {
		q.vhost.deleteQueue(q, func(q *Queue) error {
			if len(q.consumers) > 0 {
				return errorf(ErrPreconditionFailed, "in use")
			}
			return nil
		})
	}
}

// get takes the head message for basic.get.
func (q *Queue) get(s *Session, noAck bool) (Delivery, int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted || q.ready.len() == 0 {
		return Delivery{}, 0, false
	}
	e := q.ready.popFront()
	d := s.record(nil, q, e, noAck)
	if !noAck {
		q.unacked++
	}
	return d, q.ready.len(), true
}
