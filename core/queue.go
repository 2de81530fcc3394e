package core

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/core/route"
	"github.com/unifiedms/ums/internal/clock"
)

// Queue holds messages until consumers take them.
type Queue struct {
	vhost *Vhost
	Name  string
	QueueOptions
	owner *Conn // set for exclusive queues
	args  queueArgs

	// bindings whose destination is this queue, guarded by vhost.mu.
	bindings []*binding
	// bindKeys indexes the keys of bindings for ReportBindings (nil
	// otherwise); it locks itself. bindKeyRefs counts bindings per key,
	// guarded by vhost.mu.
	bindKeys    *route.Topic[string]
	bindKeyRefs map[string]int

	mu          sync.Mutex
	levels      []ring // ready messages per priority level (one level without x-max-priority)
	readyCount  int
	readyBytes  int64
	msgTTLCount int // ready entries whose expiry came from their own expiration property
	seq         uint64
	unacked     int // delivered, not yet settled
	consumers   []*Consumer
	rr          int // round-robin position
	hadConsumer bool
	deleted     bool
	dead        []deadLetter // dead letters to publish once q.mu is released
	flushes     []*Consumer  // consumers to flush once q.mu is released

	pageAfter int // ready messages kept in memory before bodies are paged out (0: never)
	pageIn    pageIn

	// room is closed when a nearly full queue has room again (see
	// flowLocked); nil while no publisher was told to wait for it.
	room chan struct{}

	ttlTimer     clock.Timer
	nextExpiry   int64 // unix nanoseconds of the earliest scheduled sweep, 0 = none
	expiresTimer clock.Timer
	lastUsed     time.Time

	// Counters since the queue was created or recovered (see Stats).
	delivered, redelivered, acked atomic.Uint64
}

// QueueStats are a queue's message counters since it was created or the
// server started, as RabbitMQ's per-queue message_stats count them.
type QueueStats struct {
	Published   uint64 // messages enqueued (recovered ones included)
	Delivered   uint64 // deliveries to consumers and get answers
	Redelivered uint64
	Acked       uint64
}

// Stats returns the queue's message counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	published := q.seq
	q.mu.Unlock()
	return QueueStats{Published: published, Delivered: q.delivered.Load(), Redelivered: q.redelivered.Load(), Acked: q.acked.Load()}
}

// deadLetter is a message leaving a queue towards its dead-letter exchange.
type deadLetter struct {
	msg    *Message // nil: paged out, read back from sid first
	reason string
	// release: release this stored part (after publishing the dead letter
	// when there is one).
	release bool
	sid     uint64
	part    int32
}

// Dead-letter reasons, as RabbitMQ writes them in x-death.
const (
	ReasonRejected      = "rejected"
	ReasonExpired       = "expired"
	ReasonMaxLen        = "maxlen"
	ReasonDeliveryLimit = "delivery_limit"
)

// minSweepInterval bounds how often a queue scans for expired messages.
const minSweepInterval = 20 * time.Millisecond

func newQueue(v *Vhost, name string, opts QueueOptions, qa queueArgs) *Queue {
	q := &Queue{vhost: v, Name: name, QueueOptions: opts, args: qa, levels: make([]ring, qa.maxPriority+1), lastUsed: v.broker.clock.Now()}
	if v.broker.msgs != nil && opts.Durable && !opts.Exclusive {
		q.pageAfter = v.broker.pageAfter
	}
	if opts.ReportBindings {
		q.bindKeys, q.bindKeyRefs = route.NewTopicUncached[string](), make(map[string]int)
	}
	return q
}

// addBindKey indexes the key of a new binding. REQUIRES: vhost.mu held for writing.
func (q *Queue) addBindKey(key string) {
	if q.bindKeys == nil {
		return
	}
	if q.bindKeyRefs[key]++; q.bindKeyRefs[key] == 1 {
		q.bindKeys.Add(key, key)
	}
}

// removeBindKey undoes addBindKey. REQUIRES: vhost.mu held for writing.
func (q *Queue) removeBindKey(key string) {
	if q.bindKeys == nil {
		return
	}
	if q.bindKeyRefs[key]--; q.bindKeyRefs[key] <= 0 {
		delete(q.bindKeyRefs, key)
		q.bindKeys.Remove(key, key)
	}
}

// matchingBindings returns the keys of the queue's bindings that match
// routingKey (ReportBindings), or nil.
func (q *Queue) matchingBindings(routingKey string) []string {
	if q.bindKeys == nil {
		return nil
	}
	return q.bindKeys.Match(routingKey, nil)
}

// startTimers starts the x-expires timer of a queue that became visible.
func (q *Queue) startTimers() {
	if q.args.expires > 0 {
		q.mu.Lock()
		q.expiresTimer = q.vhost.broker.clock.AfterFunc(q.args.expires, q.checkExpires)
		q.mu.Unlock()
	}
}

// now is the broker clock's time in unix nanoseconds.
func (q *Queue) now() int64 { return q.vhost.broker.clock.Now().UnixNano() }

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

// unlock releases q.mu and then publishes the dead letters collected under
// it. A paged-out dead letter is read back from the store here, outside
// the lock; when that fails its stored copy is kept (it comes back with the
// next restart) rather than released unseen.
func (q *Queue) unlock() {
	dead := q.dead
	q.dead = nil
	var local [8]*Consumer
	flushes := local[:0]
	if len(q.flushes) > 0 {
		flushes = append(flushes, q.flushes...)
		for _, c := range q.flushes {
			c.flushQueued = false
		}
		clear(q.flushes)
		q.flushes = q.flushes[:0]
	}
	q.mu.Unlock()
	for _, c := range flushes {
		c.flush()
	}
	for _, d := range dead {
		if d.reason != "" {
			msg := d.msg
			if msg == nil {
				m, err := q.vhost.broker.readStored(d.sid)
				if err != nil {
					q.vhost.broker.SetFault(AlarmMessageRead, fmt.Sprintf("a dead letter of queue '%s' in vhost '%s' could not be read back: %v; it is kept until a restart",
						q.Name, q.vhost.Name, err), true)
					q.vhost.broker.log.Error("cannot read a stored message back to dead-letter it; it stays stored",
						"queue", q.Name, "id", d.sid, "err", err)
					continue
				}
				msg = m
			}
			q.vhost.deadLetter(q, msg, d.reason)
		}
		if d.release {
			q.vhost.broker.msgs.Release(d.sid, int(d.part))
		}
	}
}

// Counts returns the number of messages ready for delivery and of consumers.
func (q *Queue) Counts() (messages, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.readyCount, len(q.consumers)
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

// --- ready messages, by priority ---

func (q *Queue) level(p uint8) int {
	if int(p) > q.args.maxPriority {
		return q.args.maxPriority
	}
	return int(p)
}

func (q *Queue) pushBackLocked(e entry) {
	if e.stored && q.pageAfter > 0 && q.readyCount >= q.pageAfter {
		// Deep in a long queue: keep only the index entry in memory; the
		// body is read back from the store when it nears the head.
		e.msg = nil
	}
	q.levels[q.level(e.prio)].pushBack(e)
	q.countIn(&e)
}

func (q *Queue) insertLocked(e entry) {
	q.levels[q.level(e.prio)].insert(e)
	q.countIn(&e)
}

func (q *Queue) countIn(e *entry) {
	q.readyCount++
	q.readyBytes += int64(e.size)
	if e.msgTTL {
		q.msgTTLCount++
	}
	if e.expiresAt != 0 {
		// A message expires once the time is past expiresAt (see
		// dispatchLocked, get and sweep): a sweep at expiresAt itself
		// would find nothing and wait minSweepInterval more.
		q.scheduleSweepLocked(e.expiresAt + 1)
	}
}

func (q *Queue) countOut(e *entry) {
	q.readyCount--
	q.readyBytes -= int64(e.size)
	if e.msgTTL {
		q.msgTTLCount--
	}
	if q.room != nil && q.roomLocked() {
		q.openRoomLocked()
	}
}

// --- publisher flow control ---
//
// A queue that refuses messages at its length limit (x-overflow
// reject-publish or reject-publish-dlx, or drop-head with
// QueueOptions.HoldPublishers) and has consumers draining it tells its
// publishers to slow down before the limit is reached: at nine
// tenths of the limit a publish returns a channel (PublishResult.Flow)
// that is closed once the queue is down to eight tenths, or has no
// consumer left. Adapters whose protocol has no negative acknowledgement
// to spare (MQTT 3) stop reading from the publisher until then, so a slow
// consumer slows its publishers instead of having their messages refused.

// flowLocked returns the channel a publisher should wait on, or nil when
// the queue has room. REQUIRES: q.mu.
func (q *Queue) flowLocked() chan struct{} {
	if q.room != nil {
		return q.room
	}
	if q.args.overflow == OverflowDropHead && !q.HoldPublishers || len(q.consumers) == 0 {
		return nil
	}
	if q.filledTo(func(limit int64) int64 { return limit - limit/10 }) {
		q.room = make(chan struct{})
	}
	return q.room
}

// roomLocked reports whether a queue that was nearly full has drained
// enough for its publishers to go on. REQUIRES: q.mu.
func (q *Queue) roomLocked() bool {
	return len(q.consumers) == 0 || q.deleted ||
		!q.filledTo(func(limit int64) int64 { return limit - limit/5 + 1 })
}

// filledTo reports whether the ready messages or their bytes reached
// mark(limit) of their length limit. REQUIRES: q.mu.
func (q *Queue) filledTo(mark func(limit int64) int64) bool {
	if m := q.args.maxLength; m >= 0 && int64(q.readyCount) >= mark(m) {
		return true
	}
	return q.args.maxLengthBytes >= 0 && q.readyBytes >= mark(q.args.maxLengthBytes)
}

// openRoomLocked lets the publishers waiting for room go on.
// REQUIRES: q.mu.
func (q *Queue) openRoomLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// frontLocked returns the next message to deliver: the oldest of the highest priority.
func (q *Queue) frontLocked() *entry {
	for i := len(q.levels) - 1; i >= 0; i-- {
		if q.levels[i].len() > 0 {
			return q.levels[i].front()
		}
	}
	return nil
}

func (q *Queue) popFrontLocked() entry {
	for i := len(q.levels) - 1; i >= 0; i-- {
		if q.levels[i].len() > 0 {
			e := q.levels[i].popFront()
			q.countOut(&e)
			return e
		}
	}
	panic("core: pop from an empty queue")
}

func (q *Queue) clearLocked() int {
	n := q.readyCount
	for i := range q.levels {
		r := &q.levels[i]
		for j := 0; j < r.len(); j++ {
			q.release(r.at(j))
		}
		r.clear()
	}
	q.readyCount, q.readyBytes, q.msgTTLCount = 0, 0, 0
	q.openRoomLocked()
	return n
}

// --- publishing ---

// enqueueResult tells what became of a message offered to a queue.
type enqueueResult uint8

const (
	enqueued enqueueResult = iota
	rejected               // the length limit refused it (reject-publish)
	gone                   // the queue was deleted meanwhile
)

// enqueue appends msg and hands it to a consumer when one has room.
// sid and part locate its stored copy; part < 0 means not stored. flow is
// not nil when the queue asks its publishers to wait (see flowLocked).
func (q *Queue) enqueue(msg *Message, now time.Time, sid uint64, part int) (res enqueueResult, flow chan struct{}) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return gone, nil
	}
	e := q.newEntry(msg, now)
	e.sid, e.part, e.stored = sid, int32(part), part >= 0
	if q.args.overflow != OverflowDropHead && q.overLimit(1, int64(len(msg.Body))) {
		if q.args.overflow == OverflowRejectPublishDLX {
			q.dead = append(q.dead, deadLetter{msg: msg, reason: ReasonMaxLen})
		}
		flow = q.flowLocked()
		q.unlock()
		return rejected, flow
	}
	q.seq++
	e.seq = q.seq
	q.pushBackLocked(e)
	nowNanos := now.UnixNano()
	q.dispatchLocked(nowNanos)
	if e.expiresAt != 0 && e.expiresAt <= nowNanos {
		q.expireUndeliveredLocked(&e)
	}
	q.dropHeadLocked()
	flow = q.flowLocked()
	q.unlock()
	return enqueued, flow
}

// expireUndeliveredLocked expires a message published with a TTL of 0 that
// no consumer took at once: as in RabbitMQ it is dead-lettered (or dropped)
// now, not left waiting for the next sweep. Not delivered, it is still the
// last entry of its priority level. REQUIRES: q.mu.
func (q *Queue) expireUndeliveredLocked(e *entry) {
	r := &q.levels[q.level(e.prio)]
	if r.len() == 0 || r.at(r.len()-1).seq != e.seq {
		return // delivered
	}
	last := r.at(r.len() - 1)
	old := *last
	*last = entry{}
	r.n--
	q.countOut(&old)
	q.dropLocked(&old, ReasonExpired)
}

// dropHeadLocked drops messages from the head while the ready messages
// exceed a length limit: the next message to be delivered goes first, as
// RabbitMQ does (in a priority queue, the highest priority one). Only
// drop-head queues go over their limit, by a publish or a requeue; the
// others refuse publishes at it and keep requeued messages, as RabbitMQ
// does. REQUIRES: q.mu.
func (q *Queue) dropHeadLocked() {
	if q.args.overflow != OverflowDropHead {
		return
	}
	for q.readyCount > 0 && q.overLimit(0, 0) {
		old := q.popFrontLocked()
		q.dropLocked(&old, ReasonMaxLen)
	}
}

// newEntry makes the queue entry of msg: its priority level and its expiry
// (the shorter of the queue's TTL and the message's own) counted from now.
func (q *Queue) newEntry(msg *Message, now time.Time) entry {
	e := entry{msg: msg, size: uint32(len(msg.Body))}
	if q.args.maxPriority > 0 {
		e.prio = msg.Props.Priority
	}
	ttl := q.args.messageTTL
	if d, ok, _ := messageExpiry(&msg.Props); ok && (ttl < 0 || d < ttl) {
		ttl, e.msgTTL = d, true
	}
	if ttl >= 0 {
		e.expiresAt = now.Add(ttl).UnixNano()
	}
	return e
}

// overLimit reports whether the ready messages plus n more messages of
// extra bytes would exceed the length limits.
func (q *Queue) overLimit(n int, extra int64) bool {
	if q.args.maxLength >= 0 && int64(q.readyCount+n) > q.args.maxLength {
		return true
	}
	return q.args.maxLengthBytes >= 0 && q.readyBytes+extra > q.args.maxLengthBytes
}

func (q *Queue) deadLetterLocked(msg *Message, reason string) {
	if q.args.hasDLX {
		q.dead = append(q.dead, deadLetter{msg: msg, reason: reason})
	}
}

// dropLocked removes e for good: dead-lettered for reason (when the queue
// has a dead-letter exchange) and released from the store. The dead letter
// is stored anew before the release reaches the store, so a crash in
// between keeps at least one copy. REQUIRES: q.mu.
func (q *Queue) dropLocked(e *entry, reason string) {
	d := deadLetter{msg: e.msg, sid: e.sid, part: e.part, release: e.stored}
	if q.args.hasDLX {
		d.reason = reason
	}
	e.stored = false
	if d.reason != "" || d.release {
		q.dead = append(q.dead, d)
	}
}

// Purge drops every ready message and returns how many there were.
func (v *Vhost) Purge(owner *Conn, name string) (int, error) {
	q, err := v.Queue(owner, name)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.clearLocked(), nil
}

// --- delivery ---

// dispatchLocked delivers ready messages to consumers that have room:
// higher consumer priority first, round-robin among equals; with single
// active consumer only to the first. Expired messages met on the way are
// dead-lettered. REQUIRES: q.mu.
func (q *Queue) dispatchLocked(now int64) {
	for q.readyCount > 0 && len(q.consumers) > 0 {
		e := q.frontLocked()
		if e.expiresAt != 0 && e.expiresAt < now {
			old := q.popFrontLocked()
			q.dropLocked(&old, ReasonExpired)
			continue
		}
		if e.msg == nil {
			// Paged out: nothing is delivered past it until it is read
			// back (outside q.mu); the page-in dispatches again.
			q.pageInLocked()
			return
		}
		if !q.offerLocked(e) {
			return
		}
	}
}

// offerLocked hands e to the first consumer with room. REQUIRES: q.mu.
func (q *Queue) offerLocked(e *entry) bool {
	cs := q.consumers
	if q.args.singleActive {
		cs = cs[:1]
	}
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && cs[j].priority == cs[i].priority {
			j++
		}
		g := j - i
		start := q.rr % g
		for k := 0; k < g; k++ {
			c := cs[i+(start+k)%g]
			if c.session.offer(c, q, e) {
				if c.flush != nil && !c.flushQueued {
					c.flushQueued = true
					q.flushes = append(q.flushes, c)
				}
				ent := q.popFrontLocked()
				if c.NoAck {
					q.release(&ent)
				} else {
					q.unacked++
				}
				q.rr = start + k + 1
				return true
			}
		}
		i = j
	}
	return false
}

// deliveryMessage is the message as delivered: with x-delivery-limit the
// x-delivery-count header tells how often it came back before.
func (q *Queue) deliveryMessage(e *entry) *Message {
	if q.args.deliveryLimit < 0 || e.deliveries <= 1 {
		return e.msg
	}
	m := *e.msg
	m.Props.Headers = make(Table, len(e.msg.Props.Headers)+1)
	for k, v := range e.msg.Props.Headers {
		m.Props.Headers[k] = v
	}
	m.Props.Headers["x-delivery-count"] = int64(e.deliveries - 1)
	return &m
}

// kick retries delivery after consumers gained room.
func (q *Queue) kick() {
	q.mu.Lock()
	q.dispatchLocked(q.now())
	q.unlock()
}

// settleMode says what happens to settled deliveries.
type settleMode uint8

const (
	settleAck     settleMode = iota // done: drop
	settleRequeue                   // back to the queue, redelivered
	settleReject                    // refused: dead-letter (or drop)
)

// settle finishes deliveries of this queue.
func (q *Queue) settle(ps []pending, mode settleMode) {
	q.mu.Lock()
	q.unacked -= len(ps)
	if q.unacked < 0 {
		q.unacked = 0
	}
	if mode == settleAck {
		q.acked.Add(uint64(len(ps)))
	}
	switch {
	case q.deleted || mode == settleAck:
		for i := range ps {
			q.release(&ps[i].e)
		}
	case mode == settleReject:
		for i := range ps {
			q.dropLocked(&ps[i].e, ReasonRejected)
		}
	case mode == settleRequeue:
		for _, p := range ps {
			e := p.e
			if q.args.deliveryLimit >= 0 && int64(e.deliveries) > q.args.deliveryLimit {
				q.dropLocked(&e, ReasonDeliveryLimit)
				continue
			}
			e.redelivered = true
			q.insertLocked(e)
		}
		q.dropHeadLocked()
		q.dispatchLocked(q.now())
	}
	q.unlock()
}

// --- consumers ---

// addConsumer attaches c.
func (q *Queue) addConsumer(c *Consumer) error {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return q.vhost.noQueue(q.Name)
	}
	if len(q.consumers) > 0 && (c.Exclusive || q.consumers[0].Exclusive) {
		q.mu.Unlock()
		return errorf(ErrAccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.vhost.Name)
	}
	if err := q.consumerLimitLocked(c); err != nil {
		q.mu.Unlock()
		return err
	}
	q.consumers = append(q.consumers, c)
	if !q.args.singleActive {
		// Highest priority first; equal priorities keep their order.
		sort.SliceStable(q.consumers, func(i, j int) bool { return q.consumers[i].priority > q.consumers[j].priority })
	}
	q.hadConsumer = true
	if q.expiresTimer != nil {
		q.expiresTimer.Stop()
	}
	if c.started != nil {
		c.started(c.Tag)
	}
	q.dispatchLocked(q.now())
	q.unlock()
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
	if len(q.consumers) == 0 {
		q.openRoomLocked() // nobody drains it: publishers get refusals instead
		q.touchLocked()
	} else if q.args.singleActive {
		q.dispatchLocked(q.now()) // the next consumer becomes active
	}
	q.unlock()
	if autoDelete {
		q.vhost.deleteQueue(q, func(q *Queue) error {
			if len(q.consumers) > 0 {
				return errorf(ErrPreconditionFailed, "in use")
			}
			return nil
		})
	}
}

// get takes the head message for basic.get. A paged-out head is read back
// outside q.mu; when that fails the message stays and the error is returned.
func (q *Queue) get(s *Session, noAck bool) (Delivery, int, bool, error) {
	q.mu.Lock()
	defer q.unlock()
	q.touchLocked()
	now := q.now()
	for q.readyCount > 0 {
		if f := q.frontLocked(); f.msg == nil && !(f.expiresAt != 0 && f.expiresAt < now) {
			if err := q.pageInNowLocked(); err != nil {
				return Delivery{}, 0, false, err
			}
			continue
		}
		e := q.popFrontLocked()
		if e.expiresAt != 0 && e.expiresAt < now {
			q.dropLocked(&e, ReasonExpired)
			continue
		}
		e.deliveries++
		d := s.record(nil, q, e, q.deliveryMessage(&e), noAck)
		if noAck {
			q.release(&e)
		} else {
			q.unacked++
		}
		return d, q.readyCount, true, nil
	}
	return Delivery{}, 0, false, nil
}

// --- expiry ---

// scheduleSweepLocked makes sure a sweep runs at (or a little after) at.
// REQUIRES: q.mu.
func (q *Queue) scheduleSweepLocked(at int64) {
	if q.nextExpiry != 0 && q.nextExpiry <= at {
		return
	}
	q.nextExpiry = at
	d := time.Duration(at - q.now())
	if d < minSweepInterval {
		d = minSweepInterval
	}
	if q.ttlTimer == nil {
		q.ttlTimer = q.vhost.broker.clock.AfterFunc(d, q.sweep)
	} else {
		q.ttlTimer.Reset(d)
	}
}

// sweep removes expired messages wherever they are in the queue: from the
// head while only the queue's TTL applies, everywhere when messages carry
// their own expiration.
func (q *Queue) sweep() {
	q.mu.Lock()
	q.nextExpiry = 0
	if q.deleted {
		q.mu.Unlock()
		return
	}
	now := q.now()
	next := int64(0)
	for li := range q.levels {
		r := &q.levels[li]
		if q.msgTTLCount == 0 {
			for r.len() > 0 && r.front().expiresAt != 0 && r.front().expiresAt < now {
				e := r.popFront()
				q.countOut(&e)
				q.dropLocked(&e, ReasonExpired)
			}
			if r.len() > 0 && r.front().expiresAt != 0 && (next == 0 || r.front().expiresAt < next) {
				next = r.front().expiresAt
			}
			continue
		}
		r.filter(func(e *entry) bool {
			if e.expiresAt != 0 && e.expiresAt < now {
				q.countOut(e)
				q.dropLocked(e, ReasonExpired)
				return false
			}
			if e.expiresAt != 0 && (next == 0 || e.expiresAt < next) {
				next = e.expiresAt
			}
			return true
		})
	}
	if next != 0 {
		q.scheduleSweepLocked(next + 1)
	}
	q.unlock()
}

// touchLocked records use for x-expires and restarts its timer when the
// queue has no consumers. REQUIRES: q.mu.
func (q *Queue) touchLocked() {
	q.lastUsed = q.vhost.broker.clock.Now()
	if q.expiresTimer != nil && len(q.consumers) == 0 && !q.deleted {
		q.expiresTimer.Reset(q.args.expires)
	}
}

// touch is touchLocked for callers without the lock (re-declaration).
func (q *Queue) touch() {
	q.mu.Lock()
	q.touchLocked()
	q.mu.Unlock()
}

// checkExpires deletes the queue when it went unused for x-expires.
func (q *Queue) checkExpires() {
	q.vhost.deleteQueue(q, func(q *Queue) error {
		if len(q.consumers) > 0 || q.vhost.broker.clock.Now().Sub(q.lastUsed) < q.args.expires {
			return errorf(ErrPreconditionFailed, "in use")
		}
		return nil
	})
}

// stopTimers releases the queue's timers once it is deleted. REQUIRES: q.mu.
func (q *Queue) stopTimersLocked() {
	if q.ttlTimer != nil {
		q.ttlTimer.Stop()
	}
	if q.expiresTimer != nil {
		q.expiresTimer.Stop()
	}
	if q.pageIn.retry != nil {
		q.pageIn.retry.Stop()
	}
	if q.pageIn.err != nil {
		q.pageIn.err = nil
		q.vhost.broker.readRecovered(q)
	}
}

// EnableReportBindings turns ReportBindings on for a queue declared without
// it (a queue stored by an earlier version), indexing its bindings and
// storing the change.
func (v *Vhost) EnableReportBindings(q *Queue) error {
	v.defMu.Lock()
	defer v.defMu.Unlock()
	if q.ReportsBindings() {
		return nil
	}
	o := q.QueueOptions
	o.ReportBindings = true
	if err := v.persistQueueDef(q.Name, o); err != nil {
		return err
	}
	v.mu.Lock()
	idx, refs := route.NewTopicUncached[string](), make(map[string]int)
	for _, b := range q.bindings {
		if refs[b.key]++; refs[b.key] == 1 {
			idx.Add(b.key, b.key)
		}
	}
	q.mu.Lock()
	q.bindKeys, q.bindKeyRefs = idx, refs
	q.ReportBindings = true
	q.mu.Unlock()
	v.mu.Unlock()
	return nil
}

// ReportsBindings reports whether deliveries from q carry Bindings.
func (q *Queue) ReportsBindings() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bindKeys != nil
}
