package core

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// Scheduled delivery.
//
// An x-delayed-message exchange (KindDelayed) holds a message that carries
// an x-delay header (milliseconds, > 0) until the delay is over, then routes
// it by the rules of its x-delayed-type over the bindings it has at that
// time; a message that finds no queue then goes to the exchange's
// alternate exchange, as any unroutable message does. Without x-delay (or
// with x-delay <= 0) a message is routed at once. Vhost.Schedule does the
// same for in-process callers, through any exchange and at any time.
//
// A persistent message scheduled on a durable exchange is written to the
// message store as a version 2 record (codec.go) holding its due time and
// exchange, with one part owned by the scheduler; done is called after the
// fsync, so a publisher confirm means the message survives a crash. When
// it falls due it is routed like a fresh publish (stored again for the
// durable queues it reaches), and only then is the scheduled record
// released: the store keeps appends and releases in order, so a crash in
// between leaves the message scheduled (routed again after the restart)
// rather than lost. Recovery puts every scheduled record back with its
// original due time; those already due are routed at once, in due order.
//
// Memory: each exchange has a scheduler with two min-heaps. near holds
// entries with their message (transient messages, and stored ones due
// within delayHorizon, at most delayNearMax of them); far holds stored
// messages as 16-byte index entries (due time, record id) whose bodies stay
// on disk. The scheduler's timer wakes for the earliest near entry, and
// delayHorizon before the earliest far entry to read back the bodies of
// the far entries due within twice the horizon (delayLoadBatch at a time,
// in a goroutine of its own, so releasing does not wait for the disk). A
// far entry that falls due before it was read back is read when it is
// released, and one that falls due while its read-back runs is waited for.
// A failed read leaves the entry scheduled and is retried
// (pageInRetryMin doubling to pageInRetryMax).
//
// Releasing runs on the timer's goroutine (the clock's: a fake clock runs
// it in the goroutine that advances it), one at a time per exchange: the
// firing flag keeps a late timer from releasing out of order. A busy
// scheduler wakes at most every delayTick and releases what is due then.
// Entries with the same due time are released in the order they were
// scheduled. The records of released entries are released from the store
// by a third goroutine (toRelease), since the store's lock can be held for
// milliseconds by its flusher. These goroutines belong to the scheduler,
// end when they run out of work, and StopScheduling waits for them.
//
// Deleting the exchange drops its scheduled messages (as the plugin does);
// their records are released once the vhost lock is let go (flushLater).
//
// Locks: scheduler.mu is a leaf below Vhost.mu (deleteExchangeLocked
// closes a scheduler under it). Routing, queues and the store are called
// without it; only the clock's timer is armed under it.

const (
	// delayHorizon is how long before its due time a far entry's body is
	// read back.
	delayHorizon = 2 * time.Second
	// delayNearMax bounds the entries kept with their message.
	delayNearMax = 1 << 17
	// delayBatch is how many entries one step releases.
	delayBatch = 256
	// delayLoadBatch is how many far entries one read-back takes. Reads
	// of records the store's compaction has just moved wait for its next
	// group commit (tens of milliseconds while it compacts), once per
	// batch: large batches keep the read-back ahead of 50,000 releases
	// per second (BenchmarkScheduleRelease).
	delayLoadBatch = 4096
	// delayTick is the shortest wait between two runs of a busy
	// scheduler: at 50,000 due per second, waking for each message would
	// cost a timer and a goroutine every 20 µs; waking at most every
	// millisecond releases them in batches, at most 1 ms late.
	delayTick = time.Millisecond
	// maxDelay is the longest x-delay honoured, as in the plugin
	// (2^32-1 ms, about 49 days); longer ones are cut to it.
	maxDelay = math.MaxUint32 * time.Millisecond
)

// HeaderDelay is the message header holding the delay in milliseconds.
const HeaderDelay = "x-delay"

// nearEntry is a scheduled message held with its body (msg), or, in a
// batch being released, a far entry whose body is still to be read.
type nearEntry struct {
	due    int64  // unix nanoseconds
	seq    uint64 // schedule order; 0 for entries read back from far
	sid    uint64 // record id when stored
	msg    *Message
	stored bool
}

// farEntry is a stored scheduled message whose body is on disk.
type farEntry struct {
	due int64
	sid uint64 // record ids grow in append order: the tie-break
}

func (a *nearEntry) less(b *nearEntry) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.sid < b.sid
}

func (a *farEntry) less(b *farEntry) bool {
	return a.due < b.due || (a.due == b.due && a.sid < b.sid)
}

// scheduler holds the messages waiting to be routed through one exchange.
type scheduler struct {
	x       *Exchange
	pending atomic.Int64 // scheduled and not yet routed

	// horizon and nearMax are delayHorizon and delayNearMax (tests make
	// them small).
	horizon time.Duration
	nearMax int

	mu      sync.Mutex
	near    []nearEntry // min-heap by (due, seq, sid)
	far     []farEntry  // min-heap by (due, sid)
	seq     uint64
	timer   clock.Timer
	armedAt int64 // unix nanoseconds the timer is set for; 0: not set
	firing  bool  // a fire is running: nobody else releases or re-arms
	closed  bool  // the exchange was deleted
	stopped bool  // the broker is shutting down (StopScheduling)
	retryAt int64 // a failed read: far entries wait until then
	// alarmed: the scheduler's read failure is part of the
	// message-store-read alarm (see reportRead).
	alarmed atomic.Bool
	delay   time.Duration
	// A read-back of far entries is running (one at a time, in its own
	// goroutine); loadMin is the earliest due time among them, loadDone
	// is closed when it is over.
	loading  bool
	loadMin  int64
	loadDone chan struct{}
	// Records of routed entries wait in toRelease for the releasing
	// goroutine (one at a time): releasing takes the store's lock, which
	// its flusher holds for milliseconds at a time under load, and the
	// firing goroutine must not wait for it.
	toRelease []uint64
	releasing bool

	r      Router      // the firing goroutine's
	batch  []nearEntry // the firing goroutine's
	routed []uint64    // the firing goroutine's: records routed by release
}

// batchReader is implemented by message stores that read many records
// with few system calls (store.Log.ReadMany): reading back a batch of
// 4,096 scheduled messages one Read each cost a system call and a lock of
// the store per message, 29 % of the CPU time of BenchmarkScheduleRelease
// with 10M messages, taken from the same two CPUs the releasing timer
// needs.
type batchReader interface {
	ReadMany(ids []uint64, dst [][]byte) (int, error)
}

// batchReleaser is implemented by message stores that release many
// records under one lock (store.Log.ReleaseAll).
type batchReleaser interface {
	ReleaseAll(ids []uint64, part int)
}

func newScheduler(x *Exchange) *scheduler {
	return &scheduler{x: x, horizon: delayHorizon, nearMax: delayNearMax}
}

// scheduler returns x's scheduler, making it on first use.
func (x *Exchange) scheduler() *scheduler {
	if s := x.sched.Load(); s != nil {
		return s
	}
	x.sched.CompareAndSwap(nil, newScheduler(x))
	return x.sched.Load()
}

// DelayedCount returns how many messages wait to be routed through x
// (the management API's messages_delayed).
func (x *Exchange) DelayedCount() int {
	if s := x.sched.Load(); s != nil {
		return int(s.pending.Load())
	}
	return 0
}

// DelayedType returns the x-delayed-type of an x-delayed-message exchange,
// or "" for other exchanges.
func (x *Exchange) DelayedType() string {
	if x.delayed {
		return x.rkind
	}
	return ""
}

func (s *scheduler) clock() clock.Clock { return s.x.vhost.broker.clock }

// messageDelay returns the x-delay of msg; ok is false when the message is
// to be routed at once. Integers of any width are accepted, and decimal
// strings (STOMP and MQTT carry headers as text).
func messageDelay(msg *Message) (time.Duration, bool) {
	val, ok := msg.Props.Headers[HeaderDelay]
	if !ok {
		return 0, false
	}
	n, isInt := toInt64(val)
	if !isInt {
		s, isStr := val.(string)
		if !isStr {
			return 0, false
		}
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, false
		}
	}
	if n <= 0 {
		return 0, false
	}
	if n > int64(maxDelay/time.Millisecond) {
		return maxDelay, true
	}
	return time.Duration(n) * time.Millisecond, true
}

// Schedule routes msg through the named exchange at time at, as if it
// were published then: by the exchange's bindings at that time, to its
// alternate exchange when nothing matches. A time that is not in the
// future routes it at once. The exchange may be of any type (an
// x-delayed-message exchange routes it by its x-delayed-type and ignores
// its x-delay header); internal exchanges are allowed, as this is for
// in-process callers (notification retries, send_at).
//
// Durability is PublishTo's: a persistent message scheduled on a durable
// exchange is stored (PublishResult.Stored) and done is called once, after
// the fsync or with the storage error; it survives restarts and keeps its
// due time. Otherwise done is not called and the message lives in memory.
// PublishResult.Scheduled tells how many queues it would reach now.
// The message must not be modified afterwards. r is the caller's router
// (as for Publish; nil: a new one).
func (v *Vhost) Schedule(r *Router, at time.Time, exchange string, msg *Message, done func(error)) (PublishResult, error) {
	x := v.lookupExchange(exchange)
	if x == nil {
		return PublishResult{}, v.noExchange(exchange)
	}
	if err := ValidateMessage(msg); err != nil {
		return PublishResult{}, err
	}
	if r == nil {
		r = new(Router)
	}
	if !at.After(v.broker.clock.Now()) {
		return v.routeNow(r, x, msg, done), nil
	}
	return v.schedule(r, x, at.UnixNano(), msg, done), nil
}

// publishDelayed publishes to an x-delayed-message exchange.
func (v *Vhost) publishDelayed(r *Router, x *Exchange, msg *Message, done func(error)) PublishResult {
	d, ok := messageDelay(msg)
	if !ok {
		return v.routeNow(r, x, msg, done)
	}
	return v.schedule(r, x, v.broker.clock.Now().Add(d).UnixNano(), msg, done)
}

// routeNow routes msg through x and enqueues it.
func (v *Vhost) routeNow(r *Router, x *Exchange, msg *Message, done func(error)) PublishResult {
	qs := r.route(x, msg)
	if len(qs) == 0 {
		return PublishResult{}
	}
	res := v.deliverTo(r, qs, msg, v.broker.clock.Now(), done)
	clear(qs)
	return res
}

// schedule stores msg when it must survive a restart and adds it to x's
// scheduler, due at due (unix nanoseconds).
func (v *Vhost) schedule(r *Router, x *Exchange, due int64, msg *Message, done func(error)) PublishResult {
	var res PublishResult
	// Where it would go now: a mandatory publish that matches nothing is
	// returned (the adapter decides from Queues, Rejected and Scheduled).
	qs := r.route(x, msg)
	res.Scheduled = len(qs)
	clear(qs)
	if res.Scheduled == 0 && r.Mandatory {
		return res // returned to the publisher: not held as well
	}
	s := x.scheduler()
	store := v.broker.msgs
	var sid uint64
	if store != nil && msg.Persistent() && x.Durable {
		if done == nil {
			done = noopDone
		}
		sid = store.Append(encodeDelayedRecord(v.Name, x.Name, due, msg), 1, done)
		res.Stored = true
		if sid == 0 { // refused: done reports the error
			return res
		}
	}
	if !s.add(due, msg, sid) && sid != 0 {
		store.Release(sid, 0) // the exchange was deleted meanwhile
	}
	return res
}

// add schedules msg (stored as record sid when sid is not 0). It returns
// false when the exchange is gone.
func (s *scheduler) add(due int64, msg *Message, sid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.stopped {
		return true // a stored one stays stored, for the next start
	}
	now := s.clock().Now().UnixNano()
	if sid != 0 && (due-now > int64(s.horizon) || len(s.near) >= s.nearMax) {
		s.pushFar(farEntry{due: due, sid: sid})
	} else {
		s.seq++
		s.pushNear(nearEntry{due: due, seq: s.seq, sid: sid, msg: msg, stored: sid != 0})
	}
	s.pending.Add(1)
	s.armLocked(now)
	return true
}

// restore puts a recovered scheduled record back, its body left on disk.
// The timer is armed by start once recovery is over.
func (s *scheduler) restore(due int64, sid uint64) {
	s.mu.Lock()
	s.pushFar(farEntry{due: due, sid: sid})
	s.pending.Add(1)
	s.mu.Unlock()
}

// start arms the timer after recovery.
func (s *scheduler) start() {
	s.mu.Lock()
	s.armLocked(s.clock().Now().UnixNano())
	s.mu.Unlock()
}

// close drops every scheduled message of a deleted exchange and returns
// the records to release. REQUIRES: the vhost's mu (the exchange is being
// deleted under it).
func (s *scheduler) close() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	sids := make([]uint64, 0, len(s.far))
	for i := range s.near {
		if s.near[i].stored {
			sids = append(sids, s.near[i].sid)
		}
	}
	for i := range s.far {
		sids = append(sids, s.far[i].sid)
	}
	s.pending.Add(-int64(len(s.near) + len(s.far)))
	s.near, s.far = nil, nil
	return sids
}

// wakeLocked returns when the timer should next run, or 0 for never.
// REQUIRES: s.mu.
func (s *scheduler) wakeLocked() int64 {
	var wake int64
	if len(s.near) > 0 {
		wake = s.near[0].due
	}
	if len(s.far) > 0 {
		w := s.far[0].due
		if len(s.near) < s.nearMax && !s.loading {
			w -= int64(s.horizon) // read it back ahead of time
		}
		w = max(w, s.retryAt)
		if wake == 0 || w < wake {
			wake = w
		}
	}
	if s.loading && (wake == 0 || s.loadMin < wake) {
		wake = s.loadMin // released on time: fire waits for the read-back
	}
	return wake
}

// armLocked sets the timer for the next wake-up, unless a fire is
// running (it re-arms when done) or recovery is not over. REQUIRES: s.mu.
func (s *scheduler) armLocked(now int64) { s.armAfterLocked(now, 0) }

// armAfterLocked is armLocked waiting at least min. REQUIRES: s.mu.
func (s *scheduler) armAfterLocked(now int64, min time.Duration) {
	if s.firing || s.closed || s.stopped || s.x.vhost.broker.recovering.Load() {
		return
	}
	wake := s.wakeLocked()
	if wake == 0 {
		if s.timer != nil && s.armedAt != 0 {
			s.timer.Stop()
		}
		s.armedAt = 0
		return
	}
	if s.armedAt != 0 && s.armedAt <= wake {
		return // it runs earlier and re-arms then
	}
	d := max(time.Duration(wake-now), min)
	wake = now + int64(d)
	if s.timer == nil {
		s.timer = s.clock().AfterFunc(d, s.fire)
	} else {
		s.timer.Reset(d)
	}
	s.armedAt = wake
}

// fire releases what is due and reads back what is about to be, then
// re-arms the timer.
func (s *scheduler) fire() {
	s.mu.Lock()
	if s.firing || s.closed || s.stopped {
		s.mu.Unlock()
		return
	}
	s.firing = true
	s.armedAt = 0
	for {
		now := s.clock().Now().UnixNano()
		if s.loading && s.loadMin <= now {
			// Entries due now are being read back: wait for them, so
			// that nothing later goes first.
			wait := s.loadDone
			s.mu.Unlock()
			<-wait
			s.mu.Lock()
			if s.closed {
				break
			}
			continue
		}
		s.batch = s.takeDueLocked(now, s.batch[:0])
		if len(s.batch) == 0 {
			s.startLoadLocked(now)
			break
		}
		s.mu.Unlock()
		s.release(s.batch)
		clear(s.batch)
		s.mu.Lock()
		if s.closed || s.stopped {
			break
		}
	}
	s.firing = false
	s.armAfterLocked(s.clock().Now().UnixNano(), delayTick)
	s.mu.Unlock()
}

// takeDueLocked pops up to delayBatch entries due at now, in due order;
// far entries come without their message. REQUIRES: s.mu.
func (s *scheduler) takeDueLocked(now int64, out []nearEntry) []nearEntry {
	farOK := now >= s.retryAt
	for len(out) < delayBatch {
		nearDue := len(s.near) > 0 && s.near[0].due <= now
		farDue := farOK && len(s.far) > 0 && s.far[0].due <= now
		switch {
		case nearDue && (!farDue || s.nearFirstLocked()):
			out = append(out, s.popNear())
		case farDue:
			f := s.popFar()
			out = append(out, nearEntry{due: f.due, sid: f.sid, stored: true})
		default:
			return out
		}
	}
	return out
}

// nearFirstLocked reports whether the head of near goes before the head of
// far; both heaps are not empty. With equal due times, stored entries go in
// record order, and an entry not stored first. REQUIRES: s.mu.
func (s *scheduler) nearFirstLocked() bool {
	n, f := &s.near[0], &s.far[0]
	if n.due != f.due {
		return n.due < f.due
	}
	return !n.stored || n.sid < f.sid
}

// startLoadLocked starts reading back the far entries due within the
// horizon, unless a read-back is running or waiting for its retry.
// REQUIRES: s.mu.
func (s *scheduler) startLoadLocked(now int64) {
	if s.loading || now < s.retryAt {
		return
	}
	fs := s.takeSoonLocked(now)
	if len(fs) == 0 {
		return
	}
	s.loading, s.loadMin, s.loadDone = true, fs[0].due, make(chan struct{})
	go s.runLoad(fs)
}

// takeSoonLocked pops up to delayLoadBatch far entries due within twice
// the horizon, in due order: a read-back starts when the first far entry
// is a horizon away from its due time, and then takes a horizon's worth
// more, so read-backs come in batches. REQUIRES: s.mu.
func (s *scheduler) takeSoonLocked(now int64) []farEntry {
	var out []farEntry
	for len(s.far) > 0 && len(out) < delayLoadBatch && len(s.near)+len(out) < s.nearMax &&
		s.far[0].due-2*int64(s.horizon) <= now {
		out = append(out, s.popFar())
	}
	return out
}

// release routes the entries of batch in order (reading far ones back
// first). On a failed read, that entry and the rest go back and wait for
// the retry. Runs on the firing goroutine without s.mu.
func (s *scheduler) release(batch []nearEntry) {
	x := s.x
	v := x.vhost
	b := v.broker
	routed := s.routed[:0]
	for i := range batch {
		e := &batch[i]
		if e.msg == nil {
			m, err := b.readStored(e.sid)
			if err != nil {
				s.releaseStored(routed)
				s.routed = routed[:0]
				s.readFailed(err, batch[i:])
				return
			}
			e.msg = m
		}
		if !x.deleted.Load() {
			qs := s.r.route(x, e.msg)
			if len(qs) > 0 {
				v.deliverTo(&s.r, qs, e.msg, b.clock.Now(), nil)
				clear(qs)
			}
		}
		if e.stored {
			// Released after the batch: the new records of the queues
			// reached are appended before either way, so a crash in
			// between leaves the message both queued and scheduled
			// (routed again), never neither.
			routed = append(routed, e.sid)
		}
		s.pending.Add(-1)
	}
	s.releaseStored(routed)
	s.routed = routed[:0]
	s.readOK()
}

// releaseStored adds sids, the records of the entries just routed, to
// toRelease and starts the releasing goroutine, unless it runs.
func (s *scheduler) releaseStored(sids []uint64) {
	s.mu.Lock()
	s.toRelease = append(s.toRelease, sids...)
	start := len(s.toRelease) > 0 && !s.releasing
	s.releasing = s.releasing || start
	s.mu.Unlock()
	if start {
		go s.runRelease()
	}
}

// runRelease releases the records in toRelease until there are none.
func (s *scheduler) runRelease() {
	store := s.x.vhost.broker.msgs
	var ids []uint64
	for {
		s.mu.Lock()
		ids, s.toRelease = s.toRelease, ids[:0]
		if len(ids) == 0 {
			s.releasing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if br, ok := store.(batchReleaser); ok {
			br.ReleaseAll(ids, 0)
		} else {
			for _, id := range ids {
				store.Release(id, 0)
			}
		}
	}
}

// StopScheduling stops routing scheduled messages, for a shutdown: call it
// once no client can publish any more and before the message store is
// closed. It waits (up to 5 s) for the routing, read-backs and releases
// under way. Stored scheduled messages stay stored and are routed after
// the next start; those held in memory only are dropped, as on a crash.
func (b *Broker) StopScheduling() {
	var ss []*scheduler
	for _, v := range b.Vhosts() {
		for _, x := range v.Exchanges() {
			if s := x.sched.Load(); s != nil {
				s.mu.Lock()
				s.stopped = true
				if s.timer != nil {
					s.timer.Stop()
				}
				s.mu.Unlock()
				ss = append(ss, s)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range ss {
		for !s.idle() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
}

// idle reports whether the scheduler has no release or read-back running
// (for tests that sync the store after a release).
func (s *scheduler) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.releasing && !s.loading && !s.firing
}

// runLoad reads the bodies of far entries about to fall due and moves
// them to near; the entries it could not read go back to far.
func (s *scheduler) runLoad(fs []farEntry) {
	got, err := s.readBack(fs)
	s.mu.Lock()
	if s.closed {
		// The exchange was deleted meanwhile: these go with the rest.
		for _, f := range fs {
			s.toRelease = append(s.toRelease, f.sid)
		}
		s.pending.Add(-int64(len(fs)))
		defer s.releaseStored(nil)
	} else {
		for _, e := range got {
			s.pushNear(e)
		}
		for _, f := range fs[len(got):] {
			s.pushFar(f)
		}
	}
	s.loading = false
	close(s.loadDone)
	if err != nil {
		s.readFailedLocked(err)
	} else {
		s.retryAt, s.delay = 0, 0
	}
	s.armLocked(s.clock().Now().UnixNano())
	s.mu.Unlock()
	s.reportRead(err)
}

// readBack reads the messages of fs, in order, until one cannot be read.
func (s *scheduler) readBack(fs []farEntry) ([]nearEntry, error) {
	b := s.x.vhost.broker
	got := make([]nearEntry, 0, len(fs))
	br, ok := b.msgs.(batchReader)
	if !ok {
		for _, f := range fs {
			m, err := b.readStored(f.sid)
			if err != nil {
				return got, err
			}
			got = append(got, nearEntry{due: f.due, sid: f.sid, msg: m, stored: true})
		}
		return got, nil
	}
	ids := make([]uint64, len(fs))
	for i := range fs {
		ids[i] = fs[i].sid
	}
	err := readStoredMany(br, ids, func(i int, m *Message) {
		got = append(got, nearEntry{due: fs[i].due, sid: fs[i].sid, msg: m, stored: true})
	})
	return got, err
}

// reportRead raises or clears the scheduler's part of the
// message-store-read alarm. Called without s.mu (the alarm takes the
// broker's flow lock).
func (s *scheduler) reportRead(err error) {
	b := s.x.vhost.broker
	if err != nil {
		s.alarmed.Store(true)
		b.readFailedAt(s, fmt.Sprintf("delayed exchange '%s' in vhost '%s'", s.x.Name, s.x.vhost.Name), err)
		return
	}
	if s.alarmed.Swap(false) {
		b.readRecovered(s)
	}
}

// readFailed puts back what could not be released and delays further
// reads of far entries.
func (s *scheduler) readFailed(err error, back []nearEntry) {
	s.mu.Lock()
	for _, e := range back {
		if e.seq != 0 || e.msg != nil {
			s.pushNear(e)
		} else {
			s.pushFar(farEntry{due: e.due, sid: e.sid})
		}
	}
	s.readFailedLocked(err)
	s.mu.Unlock()
	s.reportRead(err)
}

// readFailedLocked delays further reads of far entries. REQUIRES: s.mu.
func (s *scheduler) readFailedLocked(err error) {
	if s.delay == 0 {
		s.delay = pageInRetryMin
	} else if s.delay *= 2; s.delay > pageInRetryMax {
		s.delay = pageInRetryMax
	}
	s.retryAt = s.clock().Now().Add(s.delay).UnixNano()
	// Logged under s.mu: the logger is not the core's, and no core lock
	// is taken by it.
	s.x.vhost.broker.log.Error("cannot read scheduled messages back; retrying", "exchange", s.x.Name,
		"vhost", s.x.vhost.Name, "retry_in", s.delay, "err", err)
}

func (s *scheduler) readOK() {
	s.mu.Lock()
	s.retryAt, s.delay = 0, 0
	s.mu.Unlock()
	s.reportRead(nil)
}

// --- heaps ---

func (s *scheduler) pushNear(e nearEntry) { s.near = heapPush(s.near, e) }

func (s *scheduler) popNear() nearEntry {
	var top nearEntry
	top, s.near = heapPop(s.near)
	return top
}

func (s *scheduler) pushFar(e farEntry) { s.far = heapPush(s.far, e) }

func (s *scheduler) popFar() farEntry {
	var top farEntry
	top, s.far = heapPop(s.far)
	return top
}

// heapEntry is an entry of a binary min-heap ordered by less.
type heapEntry[T any] interface {
	*T
	less(*T) bool
}

// heapPush adds e to the min-heap h.
func heapPush[T any, P heapEntry[T]](h []T, e T) []T {
	h = append(h, e)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !P(&h[i]).less(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// heapPop removes the least entry of the non-empty min-heap h.
func heapPop[T any, P heapEntry[T]](h []T) (T, []T) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	var zero T
	h[n] = zero // drop references (a near entry holds its message)
	h = h[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && P(&h[l]).less(&h[m]) {
			m = l
		}
		if r := l + 1; r < n && P(&h[r]).less(&h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, shrink(h)
}

// shrinkMax bounds the entries shrink copies at once.
const shrinkMax = 1 << 18

// shrink gives back the memory of a heap that emptied to a quarter of its
// capacity, so a burst of millions of entries does not stay allocated. It
// runs under scheduler.mu on the release path, so it waits until at most
// shrinkMax entries are left and then copies them to an array twice their
// size: copying millions of entries, or allocating an array of tens of
// megabytes (which makes the allocating goroutine help the garbage
// collector in proportion), held releases up for 100 ms and more at ten
// million scheduled (BenchmarkScheduleRelease).
func shrink[T any](h []T) []T {
	if c := cap(h); c > 1024 && len(h) < c/4 && len(h) <= shrinkMax {
		return append(make([]T, 0, max(2*len(h), 1024)), h...)
	}
	return h
}
