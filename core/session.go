package core

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/core/auth"
)

// ConnInfo describes a client connection for listings.
type ConnInfo struct {
	Name             string // RabbitMQ style: "peer -> local" (Info makes it from Peer and Local when empty)
	Protocol         string // e.g. "AMQP 0-9-1"
	Peer, Local      string
	ClientProperties Table
	ConnectedAt      time.Time
	// Close, when set, closes the connection from the server side with a
	// reason (management "close connection").
	Close func(reason string)
	// Authz, when set, checks every operation of the connection (see
	// authz.go); TopicVars fill topic permission expressions.
	Authz     Authorizer
	TopicVars auth.TopicVars
	// Admission, when set, is the connection's place in its user's
	// connection count (Broker.Admit); Close releases it. Client
	// connections have one and are subject to the node limits.
	Admission *Admission
}

// Conn is a client connection to a vhost: the owner of exclusive queues and
// of sessions.
type Conn struct {
	vhost *Vhost
	User  string
	info  ConnInfo

	// The connection's exclusive queues (made by the first) and sessions
	// (mostly one: a slice costs an idle connection less than a map).
	mu        sync.Mutex
	closed    bool
	exclusive map[*Queue]struct{}
	sessions  []*Session

	// Counters since the connection opened (see Stats).
	published, delivered atomic.Uint64
}

// ConnStats are a connection's message counters since it opened.
type ConnStats struct {
	Published uint64 // messages it published (through a router it counts for)
	Delivered uint64 // deliveries to its consumers and get answers
}

// Stats returns the connection's message counters.
func (c *Conn) Stats() ConnStats {
	return ConnStats{Published: c.published.Load(), Delivered: c.delivered.Load()}
}

// Open starts a connection to the vhost for an authenticated user.
func (v *Vhost) Open(user string, info ConnInfo) *Conn {
	c := &Conn{vhost: v, User: user, info: info}
	b := v.broker
	b.connMu.Lock()
	b.conns[c] = struct{}{}
	b.connMu.Unlock()
	return c
}

// Info returns the connection's description. Its Name is made from Peer
// and Local when it was not given, and its ClientProperties include
// client_id when TopicVars has one (MQTT): an idle connection need not
// keep either.
func (c *Conn) Info() ConnInfo {
	info := c.info
	if info.Name == "" && info.Peer != "" {
		info.Name = info.Peer + " -> " + info.Local
	}
	if id := info.TopicVars.ClientID; id != "" {
		props := make(Table, len(info.ClientProperties)+1)
		for k, v := range info.ClientProperties {
			props[k] = v
		}
		props["client_id"] = id
		info.ClientProperties = props
	}
	return info
}

// Channels returns the number of open sessions.
func (c *Conn) Channels() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// Kill closes the connection from the server side, if its adapter allows it.
func (c *Conn) Kill(reason string) bool {
	if c.info.Close == nil {
		return false
	}
	c.info.Close(reason)
	return true
}

// Vhost returns the connection's virtual host.
func (c *Conn) Vhost() *Vhost { return c.vhost }

func (c *Conn) addExclusive(q *Queue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.exclusive == nil {
		c.exclusive = make(map[*Queue]struct{})
	}
	c.exclusive[q] = struct{}{}
	return true
}

func (c *Conn) removeExclusive(q *Queue) {
	c.mu.Lock()
	delete(c.exclusive, q)
	c.mu.Unlock()
}

// Close closes every session (requeueing unacked messages) and deletes the
// connection's exclusive queues.
func (c *Conn) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	b := c.vhost.broker
	b.connMu.Lock()
	delete(b.conns, c)
	b.connMu.Unlock()
	c.info.Admission.Release()
	sessions := slices.Clone(c.sessions)
	queues := make([]*Queue, 0, len(c.exclusive))
	for q := range c.exclusive {
		queues = append(queues, q)
	}
	c.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	for _, q := range queues {
		c.vhost.deleteQueue(q, nil)
	}
}

// Delivery is a message handed to a consumer or returned by Get.
type Delivery struct {
	Tag         uint64 // delivery tag, unique within the session
	ConsumerTag string
	Redelivered bool
	Msg         *Message
	// Bindings are the keys of the queue's bindings that match the
	// message's routing key, for queues declared with ReportBindings.
	Bindings []string
}

// ConsumeOptions configure a consumer.
type ConsumeOptions struct {
	Tag       string // empty: the server picks amq.ctag-…
	NoAck     bool
	Exclusive bool
	Args      Table
	// Deliver receives each delivery. It runs with core locks held: it must
	// not block and must not call into this package.
	Deliver func(Delivery)
	// Cancelled is called (without locks) when the server cancels the
	// consumer because its queue was deleted.
	Cancelled func()
	// Ready, when set, is asked before each delivery (with core locks held);
	// false holds deliveries back until the adapter calls Session.Kick. It
	// lets a congested connection push back on its queues.
	Ready func() bool
	// Started, when set, is called once the consumer is registered and
	// before its first delivery (with core locks held), so an adapter can
	// confirm the subscription ahead of any message.
	Started func(tag string)
	// Flush, when set, is called without locks, on the goroutine that made
	// the deliveries, once after each run of deliveries a queue made to
	// the consumer while it was locked and after each direct reply-to. An
	// adapter whose Deliver only queues frames (Outbox.UnlockDeferred)
	// writes them here, saving the hand-off to its writer goroutine.
	Flush func()
}

// Consumer is a subscription of a session to a queue.
type Consumer struct {
	Tag       string
	NoAck     bool
	Exclusive bool
	queue     *Queue
	session   *Session
	priority  int64 // x-priority: higher gets messages first
	prefetch  int   // per-consumer limit, 0 = none
	unacked   int   // guarded by session.mu
	deliver   func(Delivery)
	cancelled func()
	ready     func() bool
	started   func(tag string)
	flush     func()
	// flushQueued: the consumer is on its queue's flush list. REQUIRES:
	// the queue's mu.
	flushQueued bool
}

// Queue returns the consumed queue.
func (c *Consumer) Queue() *Queue { return c.queue }

// pending is a delivery awaiting settlement.
type pending struct {
	tag uint64
	q   *Queue
	c   *Consumer // nil for basic.get
	e   entry
}

// Session is a channel of deliveries: it numbers deliveries, tracks the
// unacknowledged ones and applies prefetch limits.
type Session struct {
	conn *Conn

	mu               sync.Mutex
	closed           bool
	paused           bool // flow stopped by the client
	nextTag          uint64
	pend             []pending // sorted by tag; live entries are pend[head:]
	head             int
	prefetch         int // session-wide limit (AMQP global qos), 0 = none
	consumerPrefetch int // limit given to new consumers
	inflight         int // unacked deliveries of the session
	consumers        map[string]*Consumer
	settling         []pending // scratch for Ack/Nack
	replyTo          *Consumer // direct reply-to consumer
	replyToken       string
}

// NewSession opens a session on the connection.
func (c *Conn) NewSession() *Session {
	s := &Session{conn: c} // consumers: made by the first
	c.mu.Lock()
	if c.closed {
		s.closed = true
	} else {
		c.sessions = append(c.sessions, s)
	}
	c.mu.Unlock()
	return s
}

// Conn returns the session's connection.
func (s *Session) Conn() *Conn { return s.conn }

// addConsumerLocked enters c under its tag. REQUIRES: s.mu.
func (s *Session) addConsumerLocked(c *Consumer) {
	if s.consumers == nil {
		s.consumers = make(map[string]*Consumer)
	}
	s.consumers[c.Tag] = c
}

// removeSession forgets a closed session.
func (c *Conn) removeSession(s *Session) {
	c.mu.Lock()
	if i := slices.Index(c.sessions, s); i >= 0 {
		last := len(c.sessions) - 1
		c.sessions[i] = c.sessions[last]
		c.sessions[last] = nil
		c.sessions = c.sessions[:last]
	}
	c.mu.Unlock()
}

// SetPrefetch sets the prefetch count: for the whole session when global,
// otherwise for consumers created afterwards (RabbitMQ's basic.qos).
func (s *Session) SetPrefetch(count int, global bool) {
	s.mu.Lock()
	if global {
		s.prefetch = count
	} else {
		s.consumerPrefetch = count
	}
	s.mu.Unlock()
	s.kickAll()
}

// SetFlow pauses (false) or resumes (true) deliveries to the session's consumers.
func (s *Session) SetFlow(active bool) {
	s.mu.Lock()
	s.paused = !active
	s.mu.Unlock()
	if active {
		s.kickAll()
	}
}

// Consume subscribes to q.
func (s *Session) Consume(q *Queue, o ConsumeOptions) (*Consumer, error) {
	if err := s.conn.allowRead(q); err != nil {
		return nil, err
	}
	if err := q.checkOwner(s.conn); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errorf(ErrClosed, "session closed")
	}
	var prio int64
	if v, ok := o.Args["x-priority"]; ok {
		n, isInt := toInt64(v)
		if !isInt {
			s.mu.Unlock()
			return nil, errorf(ErrPreconditionFailed, "invalid arg 'x-priority' for consumer: expected an integer (got %v of type %s)", v, typeName(v))
		}
		prio = n
	}
	if o.Tag == "" {
		o.Tag = randomName("amq.ctag-")
	}
	if _, dup := s.consumers[o.Tag]; dup {
		s.mu.Unlock()
		return nil, errorf(ErrNotAllowed, "attempt to reuse consumer tag '%s'", o.Tag)
	}
	c := &Consumer{Tag: o.Tag, NoAck: o.NoAck, Exclusive: o.Exclusive, queue: q, session: s, priority: prio,
		prefetch: s.consumerPrefetch, deliver: o.Deliver, cancelled: o.Cancelled, ready: o.Ready, started: o.Started, flush: o.Flush}
	s.addConsumerLocked(c)
	s.mu.Unlock()
	if err := q.addConsumer(c); err != nil {
		s.mu.Lock()
		delete(s.consumers, o.Tag)
		s.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// Cancel ends the consumer with the tag; its unacked deliveries stay pending.
func (s *Session) Cancel(tag string) bool {
	s.mu.Lock()
	c, ok := s.consumers[tag]
	delete(s.consumers, tag)
	if ok && c == s.replyTo {
		s.dropReplyToLocked()
	}
	s.mu.Unlock()
	if ok && c.queue != nil {
		c.queue.removeConsumer(c)
	}
	return ok
}

// dropConsumer forgets a consumer whose queue was deleted.
func (s *Session) dropConsumer(c *Consumer) {
	s.mu.Lock()
	if s.consumers[c.Tag] == c {
		delete(s.consumers, c.Tag)
	}
	s.mu.Unlock()
}

// HasConsumer reports whether a consumer with the tag exists.
func (s *Session) HasConsumer(tag string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.consumers[tag]
	return ok
}

// offer delivers e to c if c and the session have room.
// REQUIRES: q.mu held.
func (s *Session) offer(c *Consumer, q *Queue, e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.paused {
		return false
	}
	if !c.NoAck {
		if c.prefetch > 0 && c.unacked >= c.prefetch {
			return false
		}
		if s.prefetch > 0 && s.inflight >= s.prefetch {
			return false
		}
	}
	if c.ready != nil && !c.ready() {
		return false
	}
	ent := *e
	ent.deliveries++
	d := s.recordLocked(c, q, ent, q.deliveryMessage(&ent), c.NoAck)
	c.deliver(d)
	return true
}

// record numbers a delivery and tracks it unless noAck.
func (s *Session) record(c *Consumer, q *Queue, e entry, msg *Message, noAck bool) Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordLocked(c, q, e, msg, noAck)
}

// REQUIRES: s.mu.
func (s *Session) recordLocked(c *Consumer, q *Queue, e entry, msg *Message, noAck bool) Delivery {
	s.nextTag++
	d := Delivery{Tag: s.nextTag, Redelivered: e.redelivered, Msg: msg}
	st := &s.conn.vhost.broker.stats
	st.delivered.Add(1)
	s.conn.delivered.Add(1)
	if e.redelivered {
		st.redelivered.Add(1)
	}
	if q != nil {
		q.delivered.Add(1)
		if e.redelivered {
			q.redelivered.Add(1)
		}
		d.Bindings = q.matchingBindings(msg.RoutingKey)
	}
	if c != nil {
		d.ConsumerTag = c.Tag
	}
	if !noAck {
		s.pend = append(s.pend, pending{tag: d.Tag, q: q, c: c, e: e})
		s.inflight++
		if c != nil {
			c.unacked++
		}
	}
	return d
}

// Pending reports whether the delivery with tag awaits settlement.
func (s *Session) Pending(tag uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.pend[s.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].tag >= tag })
	return i < len(live) && live[i].tag == tag
}

// Ack acknowledges the delivery with tag (and, with multiple, all before it;
// tag 0 with multiple means all).
func (s *Session) Ack(tag uint64, multiple bool) error {
	return s.settle(tag, multiple, false, false)
}

// Nack rejects deliveries; requeued ones go back to their queue's head with
// redelivered set, the others are dropped.
func (s *Session) Nack(tag uint64, multiple, requeue bool) error {
	return s.settle(tag, multiple, true, requeue)
}

// Recover requeues every unacknowledged delivery of the session.
func (s *Session) Recover() {
	s.settleAll(true)
}

func (s *Session) settle(tag uint64, multiple, reject, requeue bool) error {
	s.mu.Lock()
	live := s.pend[s.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].tag >= tag })
	var taken []pending
	switch {
	case multiple && tag == 0:
		taken = live
		i = len(live) - 1
	case i < len(live) && live[i].tag == tag:
		if multiple {
			taken = live[:i+1]
		} else {
			taken = live[i : i+1]
		}
	default:
		s.mu.Unlock()
		return errorf(ErrPreconditionFailed, "unknown delivery tag %d", tag)
	}
	s.settling = append(s.settling[:0], taken...)
	if multiple {
		clear(s.pend[s.head : s.head+i+1])
		s.head += i + 1
	} else {
		copy(s.pend[s.head+i:], s.pend[s.head+i+1:])
		s.pend[len(s.pend)-1] = pending{}
		s.pend = s.pend[:len(s.pend)-1]
	}
	s.compactLocked()
	kick := s.releaseLocked(s.settling)
	work := s.settling
	s.settling = nil // keep the scratch away from re-entrant settles
	s.mu.Unlock()

	mode := settleAck
	if reject && requeue {
		mode = settleRequeue
	} else if reject {
		mode = settleReject
	}
	if mode == settleAck {
		s.conn.vhost.broker.stats.acknowledged.Add(uint64(len(work)))
	}
	settleByQueue(work, mode)
	clear(work)
	s.mu.Lock()
	if s.settling == nil {
		s.settling = work[:0]
	}
	s.mu.Unlock()
	if kick {
		s.kickAll()
	}
	return nil
}

// settleByQueue hands settled deliveries to their queues: requeued ones go
// back, the others are dropped.
func settleByQueue(ps []pending, mode settleMode) {
	for len(ps) > 0 {
		q := ps[0].q
		j := 0
		for i := range ps {
			if ps[i].q == q {
				ps[i], ps[j] = ps[j], ps[i]
				j++
			}
		}
		q.settle(ps[:j], mode)
		ps = ps[j:]
	}
}

// releaseLocked updates counters for settled deliveries and reports whether
// a consumer may have regained room. REQUIRES: s.mu.
func (s *Session) releaseLocked(ps []pending) bool {
	kick := false
	for _, p := range ps {
		s.inflight--
		if p.c != nil {
			p.c.unacked--
			if p.c.prefetch > 0 {
				kick = true
			}
		}
	}
	return kick || s.prefetch > 0
}

// compactLocked reclaims the settled prefix of pend. REQUIRES: s.mu.
func (s *Session) compactLocked() {
	if s.head == len(s.pend) {
		s.pend = s.pend[:0]
		s.head = 0
		return
	}
	if s.head > 64 && s.head*2 > len(s.pend) {
		n := copy(s.pend, s.pend[s.head:])
		clear(s.pend[n:])
		s.pend = s.pend[:n]
		s.head = 0
	}
}

func (s *Session) settleAll(requeue bool) {
	s.mu.Lock()
	work := append([]pending(nil), s.pend[s.head:]...)
	s.pend, s.head = nil, 0
	s.releaseLocked(work)
	s.mu.Unlock()
	mode := settleAck
	if requeue {
		mode = settleRequeue
	}
	settleByQueue(work, mode)
	s.kickAll()
}

// Kick retries deliveries held back by a consumer's Ready function.
func (s *Session) Kick() { s.kickAll() }

// kickAll retries delivery on every queue the session consumes from.
func (s *Session) kickAll() {
	s.mu.Lock()
	var qs []*Queue
	for _, c := range s.consumers {
		if c.queue != nil && !containsQueue(qs, c.queue) {
			qs = append(qs, c.queue)
		}
	}
	s.mu.Unlock()
	for _, q := range qs {
		q.kick()
	}
}

func containsQueue(qs []*Queue, q *Queue) bool {
	for _, o := range qs {
		if o == q {
			return true
		}
	}
	return false
}

// Get takes one message from q (basic.get). ok is false when q is empty;
// remaining is the number of messages left ready.
func (s *Session) Get(q *Queue, noAck bool) (d Delivery, remaining int, ok bool, err error) {
	if err := s.conn.allowRead(q); err != nil {
		return Delivery{}, 0, false, err
	}
	if err := q.checkOwner(s.conn); err != nil {
		return Delivery{}, 0, false, err
	}
	return q.get(s, noAck)
}

// Close cancels the session's consumers and requeues its unacked deliveries.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	consumers := make([]*Consumer, 0, len(s.consumers))
	for _, c := range s.consumers {
		consumers = append(consumers, c)
	}
	s.consumers = nil
	s.dropReplyToLocked()
	s.mu.Unlock()
	s.conn.removeSession(s)
	// Requeue first, while the consumers are still attached (the closed
	// session refuses offers): the requeued messages are back at their
	// places before a single active consumer's successor is served, so it
	// gets them in order, as in RabbitMQ.
	s.settleAll(true)
	for _, c := range consumers {
		if c.queue != nil {
			c.queue.removeConsumer(c)
		}
	}
}
