package mqtt

import (
	"errors"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// maxOutbox is how many deliveries may wait for the writer before the
// session tells the core it is not ready (core.ConsumeOptions.Ready).
const maxOutbox = 512

// session is one connected MQTT client: a core connection, a core session
// and the client's subscriptions. Its queues are named after the client id
// as in RabbitMQ: mqtt-subscription-<id>qos1 for QoS 1/2 subscriptions
// (durable with x-expires for persistent sessions, exclusive otherwise) and
// mqtt-subscription-<id>qos0 for QoS 0 ones (always exclusive: QoS 0
// messages are not kept for a disconnected client). Shared subscriptions
// consume from a queue per group and filter.
type session struct {
	srv      *Server
	cl       *mochi.Client
	wc       *wireConn
	vhost    *core.Vhost
	user     string
	clientID string // as the client knows it
	key      string // mochi's client id: clientID, qualified by a non-default vhost

	// Set by establish, before CONNACK; read-only afterwards.
	expiry  uint32 // granted session expiry interval, seconds; 0 = ends with the connection
	present bool   // session present in CONNACK
	resume  *sessionRecord
	will    *willMsg

	// Owned by mochi's read goroutine for this client.
	router   core.Router
	exch     *core.Exchange
	doneCh   chan error
	doneFn   func(error)
	flow     <-chan struct{} // set by publish: a nearly full queue asks to wait (see waitForRoom)
	subacks  map[uint16][]byte
	unsubs   map[uint16][]byte
	retainQ  []outItem
	noLocals atomic.Int32 // subscriptions with no-local: publishes carry the publisher

	mu       sync.Mutex
	closed   bool                     // REQUIRES: mu
	conn     *core.Conn               // REQUIRES: mu
	cs       *core.Session            // REQUIRES: mu
	q0, q1   *core.Queue              // REQUIRES: mu
	subs     map[string]*subscription // by filter as subscribed; REQUIRES: mu
	inflight map[uint16]uint64        // packet id → delivery tag (0: retained); REQUIRES: mu
	lastID   uint16                   // REQUIRES: mu

	out  outbox
	wbuf []byte // encoding buffer of the writer goroutine

	acks ackQueue // QoS 1 acknowledgements waiting for the message store

	q2     qos2State           // durable copy of inQoS2 for persistent sessions
	inQoS2 map[uint16]struct{} // client's QoS 2 packet ids awaiting PUBREL; read goroutine
}

// subscription is a subscription and where it is bound.
type subscription struct {
	subOptions
	inner string // the filter without $share/group/
	group string // share group, "" for a normal subscription
	key   string // binding key
	queue string // bound queue
	tag   string // consumer tag of a shared subscription
	noAck bool   // shared subscription consumed without acks (QoS 0)
}

// source tells which consumer a delivery came from.
type source uint8

const (
	fromQoS0 source = iota
	fromQoS1
	fromShared
	fromRetained
)

// outItem is something to send to the client: a core delivery or a
// retained message.
type outItem struct {
	d     core.Delivery
	from  source
	noAck bool
	sub   *subscription // shared or retained: the subscription it is for
	ret   *retainedMsg
}

// outbox hands deliveries from core callbacks (which must not block) to a
// writer goroutine that runs only while there is something to send.
type outbox struct {
	mu      sync.Mutex
	items   []outItem     // REQUIRES: mu
	spare   []outItem     // REQUIRES: mu
	running bool          // a writer goroutine is draining; REQUIRES: mu
	idle    chan struct{} // closed when that writer exits; REQUIRES: mu
	held    bool          // Ready said no: Kick when there is room; REQUIRES: mu
	closed  bool          // REQUIRES: mu
}

// closeReason says how a session ends.
type closeReason struct {
	end  bool // the session ends: delete its durable queue and record
	will bool // publish the will
}

func newSession(srv *Server, cl *mochi.Client, wc *wireConn, v *core.Vhost, user, clientID string) *session {
	s := &session{srv: srv, cl: cl, wc: wc, vhost: v, user: user, clientID: clientID,
		subs: make(map[string]*subscription), inflight: make(map[uint16]uint64), lastID: 32767,
		inQoS2: make(map[uint16]struct{})}
	s.acks.space = make(chan struct{}, 1)
	return s
}

// logger returns a logger naming the session. It is built when needed:
// keeping one per idle connection would cost more than the rest of the
// session.
func (s *session) logger() *slog.Logger {
	return s.srv.log.With("client", s.clientID, "vhost", s.vhost.Name)
}

func (s *session) persistent() bool { return s.expiry > 0 }

func (s *session) recordKey() string { return storeKey(kindSession, s.vhost.Name, s.clientID) }

// grantedExpiry is the session expiry interval a CONNECT gets.
func (srv *Server) grantedExpiry(version byte, pk *packets.Packet) uint32 {
	if version < 5 {
		if pk.Connect.Clean {
			return 0
		}
		return srv.MaxSessionExpiry
	}
	return min(pk.Properties.SessionExpiryInterval, srv.MaxSessionExpiry)
}

func (srv *Server) canConfigure(user, vhost, queue string) bool {
	return srv.Users.Check(user, vhost, auth.Configure, queue)
}

// establish runs before CONNACK: it takes over a live session with the
// same client id, cancels a pending delayed will, and decides whether an
// earlier session is resumed or discarded. It creates nothing in the core,
// so a CONNACK that cannot be written leaves nothing behind.
func (s *session) establish(pk *packets.Packet) {
	srv := s.srv
	clean := pk.Connect.Clean
	s.expiry = srv.grantedExpiry(s.cl.Properties.ProtocolVersion, pk)
	s.takeWill(pk)

	srv.mu.Lock()
	old := srv.sessions[s.key]
	srv.sessions[s.key] = s
	will := srv.wills[s.key]
	delete(srv.wills, s.key)
	srv.mu.Unlock()
	srv.cancelExpiry(s.key) // after taking the key: no expiry starts for it now
	if old != nil {
		// [MQTT-3.1.4-3] The old connection gets DISCONNECT 0x8E (mochi's
		// own attempt later finds it closed) and its session is closed
		// here, before the new one touches the same queues.
		srv.kick(old.cl, packets.ErrSessionTakenOver)
		old.close(closeReason{end: false, will: true})
	}
	if will != nil {
		if will.t.Stop() && clean {
			// A new connection to the session before the will delay
			// passed cancels the will, unless the session ends now
			// [MQTT-3.1.3-9].
			srv.publishWill(will.v, will.clientID, will.w)
		}
		srv.forgetWill(will)
	}

	rkey := s.recordKey()
	q1 := queueName(s.clientID, 1)
	if clean {
		// [MQTT-3.1.2-4] Discard any earlier session.
		srv.mu.Lock()
		_, had := srv.records[rkey]
		delete(srv.records, rkey)
		srv.mu.Unlock()
		if had {
			if err := srv.store.Delete(rkey); err != nil {
				s.logger().Error("deleting session record failed", "err", err)
			}
		}
		if q, err := s.vhost.Queue(nil, q1); err == nil && q.Durable {
			if _, err := s.vhost.DeleteQueue(nil, q1, false, false); err != nil {
				s.logger().Error("deleting the previous session's queue failed", "queue", q1, "err", err)
			}
		}
		s.deleteQoS2Queue()
		return
	}
	srv.mu.Lock()
	rec := srv.records[rkey]
	srv.mu.Unlock()
	if rec != nil {
		if q, err := s.vhost.Queue(nil, q1); err == nil && q.Durable {
			s.present = true
			s.resume = rec
		}
	}
}

// start runs after CONNACK: it opens the core connection and session,
// declares the session queue of a persistent session and restores the
// subscriptions of a resumed one. Messages may flow from here on.
func (s *session) start() error {
	srv := s.srv
	s.doneCh = make(chan error, 1)
	s.doneFn = func(err error) { s.doneCh <- err }
	cl := s.cl
	proto := "MQTT 3.1.1"
	switch cl.Properties.ProtocolVersion {
	case 3:
		proto = "MQTT 3.1"
	case 5:
		proto = "MQTT 5.0"
	}
	peer, local := s.wc.RemoteAddr().String(), s.wc.LocalAddr().String()
	conn := s.vhost.Open(s.user, core.ConnInfo{
		Name: peer + " -> " + local, Protocol: proto, Peer: peer, Local: local,
		ClientProperties: core.Table{"client_id": s.clientID},
		ConnectedAt:      time.Now(),
		Close: func(string) {
			srv.goBackground(func() { srv.kick(cl, packets.ErrAdministrativeAction) })
		},
	})
	cs := conn.NewSession()
	recv := uint16(65535)
	if cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.ReceiveMaximum > 0 {
		recv = cl.Properties.Props.ReceiveMaximum
	}
	cs.SetPrefetch(int(min(recv, srv.MaxInflight)), true)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return core.ErrClosed
	}
	s.conn, s.cs = conn, cs
	if s.persistent() {
		if s.resume == nil {
			if err := s.saveRecordLocked(); err != nil {
				return err
			}
		}
		if err := s.ensureQ1Locked(); err != nil {
			return err
		}
	} else if s.present {
		// Resuming with session expiry 0: the stored session continues
		// for this connection and ends with it.
		if err := s.ensureQ1Locked(); err != nil {
			return err
		}
	}
	if s.resume != nil {
		for _, o := range s.resume.subs {
			if _, err := s.applyLocked(o); err != nil {
				s.logger().Warn("restoring subscription failed", "filter", o.filter, "err", err)
			}
		}
		s.resume = nil
	}
	return nil
}

// queueArgs are the arguments of a session queue.
func (s *session) queueArgs(qos byte, durable bool) core.Table {
	args := core.Table{}
	if n := s.srv.MaxQueueLength; n > 0 {
		args["x-max-length"] = int64(n)
		if qos > 0 {
			args["x-overflow"] = core.OverflowRejectPublish
		} else {
			args["x-overflow"] = core.OverflowDropHead
		}
	}
	if durable {
		s.srv.queueExpiry(args)
	}
	return args
}

// ensureQ1Locked declares (or finds) the QoS 1/2 queue and consumes it.
// REQUIRES: s.mu.
func (s *session) ensureQ1Locked() error {
	if s.q1 != nil {
		return nil
	}
	name := queueName(s.clientID, 1)
	q, err := s.vhost.Queue(s.conn, name)
	if err != nil || q.Deleted() {
		durable := s.persistent()
		q, err = s.vhost.DeclareQueue(s.conn, name, core.QueueOptions{
			Durable: durable, Exclusive: !durable, Args: s.queueArgs(1, durable)})
		if err != nil {
			return err
		}
	}
	if _, err := s.cs.Consume(q, s.consumeOptions("mqtt-qos1", fromQoS1, false, nil)); err != nil {
		return err
	}
	s.q1 = q
	return nil
}

// ensureQ0Locked declares the QoS 0 queue and consumes it. REQUIRES: s.mu.
func (s *session) ensureQ0Locked() error {
	if s.q0 != nil {
		return nil
	}
	q, err := s.vhost.DeclareQueue(s.conn, queueName(s.clientID, 0), core.QueueOptions{
		Exclusive: true, Args: s.queueArgs(0, false)})
	if err != nil {
		return err
	}
	if _, err := s.cs.Consume(q, s.consumeOptions("mqtt-qos0", fromQoS0, true, nil)); err != nil {
		return err
	}
	s.q0 = q
	return nil
}

func (s *session) consumeOptions(tag string, from source, noAck bool, sub *subscription) core.ConsumeOptions {
	return core.ConsumeOptions{
		Tag:   tag,
		NoAck: noAck,
		Deliver: func(d core.Delivery) {
			s.enqueue(outItem{d: d, from: from, noAck: noAck, sub: sub})
		},
		Ready:     s.ready,
		Cancelled: s.cancelled,
	}
}

// cancelled: a queue the session consumes was deleted from outside (the
// session deletes its own only after cancelling its consumers). The client
// is disconnected, as RabbitMQ does.
func (s *session) cancelled() {
	s.srv.goBackground(func() {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			s.logger().Warn("a queue of the session was deleted; disconnecting")
			s.srv.kick(s.cl, packets.ErrAdministrativeAction)
		}
	})
}

// --- subscriptions (read goroutine) ---

func (s *session) subscribePacket(pk *packets.Packet) {
	codes := make([]byte, len(pk.Filters))
	v5 := s.cl.Properties.ProtocolVersion == 5
	var changed []subChange
	s.retainQ = s.retainQ[:0]
	for i, f := range pk.Filters {
		code, old := s.subscribe(f)
		if code.Code < packets.ErrUnspecifiedError.Code {
			changed = append(changed, subChange{at: i, filter: f.Filter, old: old})
		} else if !v5 {
			code = packets.Code{Code: 0x80} // MQTT 3: failure
		}
		codes[i] = code.Code
	}
	if len(changed) > 0 && s.persistent() {
		s.mu.Lock()
		err := s.saveRecordLocked()
		var left []string
		if err != nil {
			// Not durable: the SUBACK says so (0x80, in MQTT 3 and 5
			// alike) and the session goes back to what is stored, so a
			// restart does not change what the client was told.
			s.logger().Error("storing session subscriptions failed; subscription refused", "err", err)
			left = s.undoLocked(changed)
			for _, c := range changed {
				codes[c.at] = packets.ErrUnspecifiedError.Code
			}
			s.retainQ = s.retainQ[:0]
		}
		s.mu.Unlock()
		s.srv.dropShared(s.vhost, left)
	}
	if s.subacks == nil {
		s.subacks = make(map[uint16][]byte)
	}
	s.subacks[pk.PacketID] = codes
}

// subChange is a subscription a SUBSCRIBE created or replaced: the filter's
// index in the packet and the subscription it replaced (nil: new).
type subChange struct {
	at     int
	filter string
	old    *subscription
}

// undoLocked reverts changes, latest first: replaced subscriptions get
// their previous options back, new ones are removed. It returns the shared
// subscription queues left, for dropShared. REQUIRES: s.mu.
func (s *session) undoLocked(changes []subChange) (left []string) {
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		cur := s.subs[c.filter]
		if cur == nil {
			continue
		}
		if c.old != nil {
			if _, err := s.applyLocked(c.old.subOptions); err != nil {
				s.logger().Warn("restoring the previous subscription failed", "filter", c.filter, "err", err)
			}
			continue
		}
		delete(s.subs, c.filter)
		if cur.group != "" {
			s.cs.Cancel(cur.tag)
			left = append(left, cur.queue)
		} else if err := s.vhost.Unbind(s.conn, cur.queue, s.srv.exchange, cur.key, nil); err != nil {
			s.logger().Warn("unbinding a refused subscription failed", "filter", c.filter, "err", err)
		}
	}
	s.countNoLocal()
	return left
}

// subscribe handles one filter of a SUBSCRIBE and returns its SUBACK code
// and the subscription it replaced.
func (s *session) subscribe(f packets.Subscription) (packets.Code, *subscription) {
	if !mochi.IsValidFilter(f.Filter, false) {
		return packets.ErrTopicFilterInvalid, nil
	}
	_, _, shared := parseShared(f.Filter)
	if shared && f.NoLocal {
		return packets.ErrProtocolViolationInvalidSharedNoLocal, nil // [MQTT-3.8.3-4]
	}
	o := subOptions{filter: f.Filter, qos: min(f.Qos, 2), noLocal: f.NoLocal,
		retainAsPublished: f.RetainAsPublished, retainHandling: f.RetainHandling, id: f.Identifier}
	s.mu.Lock()
	old := s.subs[f.Filter]
	existed, err := s.applyLocked(o)
	sub := s.subs[f.Filter]
	s.mu.Unlock()
	if err != nil {
		if errors.Is(err, core.ErrAccessRefused) {
			s.logger().Warn("MQTT subscription refused", "filter", f.Filter, "err", err)
		} else {
			s.logger().Error("MQTT subscription failed", "filter", f.Filter, "err", err)
		}
		return reasonFor(err), nil
	}
	// [MQTT-3.3.1-9..11] retained messages, by retain handling; none for
	// shared subscriptions (4.8.2).
	if !shared && (o.retainHandling == 0 || (o.retainHandling == 1 && !existed)) {
		s.retainQ = append(s.retainQ, outItem{from: fromRetained, sub: sub})
	}
	return packets.QosCodes[o.qos], old
}

var errNotPermitted = &core.Error{Kind: core.ErrAccessRefused, Msg: "access refused"}

// applyLocked creates or replaces a subscription: binds the right queue
// (and consumes a shared one) and unbinds what the subscription no longer
// uses. It reports whether the subscription existed. REQUIRES: s.mu.
func (s *session) applyLocked(o subOptions) (bool, error) {
	if s.closed || s.cs == nil {
		return false, core.ErrClosed
	}
	srv := s.srv
	group, inner, shared := parseShared(o.filter)
	sub := &subscription{subOptions: o, inner: inner, group: group, key: filterToKey(inner)}
	old := s.subs[o.filter]
	if !srv.Users.Check(s.user, s.vhost.Name, auth.Read, srv.exchange) || !s.topicAllowed(auth.Read, sub.key) {
		return false, errNotPermitted
	}
	if shared {
		sub.queue = sharedQueueName(group, inner)
		sub.tag = "mqtt-share:" + o.filter
		sub.noAck = o.qos == 0
	} else {
		sub.queue = queueName(s.clientID, o.qos)
	}
	if !s.mayUseQueue(sub.queue) {
		return false, errNotPermitted
	}
	if shared {
		if old != nil {
			s.cs.Cancel(old.tag)
		}
		if err := s.consumeSharedLocked(sub); err != nil {
			delete(s.subs, o.filter)
			s.countNoLocal()
			return false, err
		}
	} else {
		var q *core.Queue
		var err error
		if o.qos == 0 {
			err = s.ensureQ0Locked()
			q = s.q0
		} else {
			err = s.ensureQ1Locked()
			q = s.q1
		}
		if err != nil {
			return false, err
		}
		if err := s.vhost.Bind(s.conn, q.Name, srv.exchange, sub.key, nil); err != nil {
			return false, err
		}
		if old != nil && old.queue != sub.queue {
			if err := s.vhost.Unbind(s.conn, old.queue, srv.exchange, old.key, nil); err != nil {
				s.logger().Warn("unbinding the previous subscription failed", "filter", o.filter, "err", err)
			}
		}
	}
	s.subs[o.filter] = sub
	s.countNoLocal()
	return old != nil, nil
}

// consumeSharedLocked declares a shared subscription's queue, binds it and
// consumes from it. The queue is durable, with the same arguments for
// every member: a shared subscription lasts as long as a session is
// subscribed to it [MQTT-4.8.2], so messages wait in it for the persistent
// sessions of the group across disconnects and restarts. It is deleted
// when its last member leaves and no persistent session holds it
// (dropShared), and otherwise expires after the longest session expiry.
// REQUIRES: s.mu.
func (s *session) consumeSharedLocked(sub *subscription) error {
	var err error
	for range 3 { // the queue may be deleted between declare and consume
		var q *core.Queue
		q, err = s.vhost.DeclareQueue(s.conn, sub.queue, core.QueueOptions{Durable: true, Args: s.srv.sharedQueueArgs()})
		if err != nil {
			return err
		}
		if err = s.vhost.Bind(s.conn, sub.queue, s.srv.exchange, sub.key, nil); err != nil {
			continue
		}
		if _, err = s.cs.Consume(q, s.consumeOptions(sub.tag, fromShared, sub.noAck, sub)); err == nil {
			return nil
		}
	}
	return err
}

// sharedQueueArgs are the arguments of every shared subscription queue.
func (srv *Server) sharedQueueArgs() core.Table {
	args := core.Table{}
	if n := srv.MaxQueueLength; n > 0 {
		args["x-max-length"] = int64(n)
		args["x-overflow"] = core.OverflowRejectPublish
	}
	srv.queueExpiry(args)
	return args
}

// dropShared deletes the queues of shared subscriptions a session left
// when no member consumes from them any more and no persistent session
// (connected or not) is subscribed to them.
func (srv *Server) dropShared(v *core.Vhost, queues []string) {
	for _, name := range queues {
		if srv.sharedHeld(v.Name, name) {
			continue
		}
		q, err := v.Queue(nil, name)
		if err != nil {
			continue
		}
		if _, consumers := q.Counts(); consumers > 0 {
			continue
		}
		// ifUnused: a member that joined meanwhile keeps it.
		if _, err := v.DeleteQueue(nil, name, true, false); err != nil && !errors.Is(err, core.ErrPreconditionFailed) {
			srv.log.Warn("deleting shared subscription queue failed", "vhost", v.Name, "queue", name, "err", err)
		}
	}
}

// sharedHeld reports whether a persistent session of vhost is subscribed
// to the shared subscription whose queue is name.
func (srv *Server) sharedHeld(vhost, name string) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for key, rec := range srv.records {
		if _, v, _, ok := parseStoreKey(key); !ok || v != vhost {
			continue
		}
		for _, o := range rec.subs {
			if group, inner, ok := parseShared(o.filter); ok && sharedQueueName(group, inner) == name {
				return true
			}
		}
	}
	return false
}

// topicAllowed checks the user's topic permission (RabbitMQ's topic
// authorisation) on the MQTT exchange for a routing or binding key.
func (s *session) topicAllowed(kind auth.Access, key string) bool {
	return s.srv.Users.CheckTopic(s.user, s.vhost.Name, kind, s.srv.exchange, key, auth.TopicVars{ClientID: s.clientID})
}

func (s *session) mayUseQueue(name string) bool {
	u, v := s.user, s.vhost.Name
	users := s.srv.Users
	return users.Check(u, v, auth.Configure, name) && users.Check(u, v, auth.Write, name) && users.Check(u, v, auth.Read, name)
}

// countNoLocal updates the number of no-local subscriptions. REQUIRES: s.mu.
func (s *session) countNoLocal() {
	n := 0
	for _, sub := range s.subs {
		if sub.noLocal {
			n++
		}
	}
	s.noLocals.Store(int32(n))
}

func (s *session) unsubscribePacket(pk *packets.Packet) {
	codes := make([]byte, len(pk.Filters))
	var removed []subChange
	var left []string // shared subscription queues left
	s.mu.Lock()
	for i, f := range pk.Filters {
		sub := s.subs[f.Filter]
		if sub == nil || s.closed {
			codes[i] = packets.CodeNoSubscriptionExisted.Code
			continue
		}
		delete(s.subs, f.Filter)
		removed = append(removed, subChange{at: i, filter: f.Filter, old: sub})
		if sub.group != "" {
			s.cs.Cancel(sub.tag)
			left = append(left, sub.queue)
		} else if err := s.vhost.Unbind(s.conn, sub.queue, s.srv.exchange, sub.key, nil); err != nil {
			s.logger().Warn("unbinding failed", "filter", f.Filter, "err", err)
			codes[i] = packets.ErrUnspecifiedError.Code
			continue
		}
		codes[i] = packets.CodeSuccess.Code
	}
	s.countNoLocal()
	failed := false
	if len(removed) > 0 && s.persistent() {
		if err := s.saveRecordLocked(); err != nil {
			// Not durable: the subscriptions come back, as stored, and
			// the UNSUBACK says 0x80 (MQTT 3 has no code for it: the
			// connection is closed instead).
			s.logger().Error("storing session subscriptions failed; unsubscribe refused", "err", err)
			failed = true
			for i := len(removed) - 1; i >= 0; i-- {
				r := removed[i]
				if _, err := s.applyLocked(r.old.subOptions); err != nil {
					s.logger().Warn("restoring a subscription failed", "filter", r.filter, "err", err)
				}
				codes[r.at] = packets.ErrUnspecifiedError.Code
			}
			left = nil
		}
	}
	s.mu.Unlock()
	if failed && s.cl.Properties.ProtocolVersion < 5 {
		s.srv.kick(s.cl, packets.ErrUnspecifiedError)
	}
	s.srv.dropShared(s.vhost, left)
	if s.unsubs == nil {
		s.unsubs = make(map[uint16][]byte)
	}
	s.unsubs[pk.PacketID] = codes
}

// takeAckCodes returns the reason codes for a SUBACK or UNSUBACK being
// written (on the read goroutine, like the SUBSCRIBE it answers).
func (s *session) takeAckCodes(typ byte, id uint16) ([]byte, bool) {
	m := s.subacks
	if typ == packets.Unsuback {
		m = s.unsubs
	}
	codes, ok := m[id]
	if ok {
		delete(m, id)
	}
	return codes, ok
}

// saveRecordLocked stores the subscriptions of a persistent session.
// REQUIRES: s.mu.
func (s *session) saveRecordLocked() error {
	rec := &sessionRecord{subs: make([]subOptions, 0, len(s.subs)), expiry: s.expiry}
	for _, sub := range s.subs {
		rec.subs = append(rec.subs, sub.subOptions)
	}
	sort.Slice(rec.subs, func(i, j int) bool { return rec.subs[i].filter < rec.subs[j].filter })
	key := s.recordKey()
	if err := s.srv.store.Put(key, rec.encode()); err != nil {
		return err
	}
	s.srv.mu.Lock()
	s.srv.records[key] = rec
	s.srv.mu.Unlock()
	return nil
}

// sendRetained queues the retained messages matching the subscriptions of
// the SUBSCRIBE just answered.
func (s *session) sendRetained() {
	if len(s.retainQ) == 0 {
		return
	}
	now := time.Now()
	var items []outItem
	for _, it := range s.retainQ {
		if it.sub == nil {
			continue
		}
		for _, m := range s.srv.retained.match(s.vhost.Name, it.sub.filter, now) {
			items = append(items, outItem{from: fromRetained, sub: it.sub, ret: m})
		}
	}
	clear(s.retainQ)
	s.retainQ = s.retainQ[:0]
	for _, it := range items {
		s.enqueue(it)
	}
}

// --- publishing (read goroutine) ---

// publish sends a PUBLISH into the core and returns the acknowledgement's
// reason code. It returns once the core took the message and, when the
// message went to the message store, once it is durable, except with a
// (QoS 1): then a stored message is acknowledged through a once durable,
// and stored is true.
func (s *session) publish(pk *packets.Packet, a *pubAck) (code packets.Code, stored bool) {
	srv := s.srv
	var now time.Time
	if pk.FixedHeader.Retain || pk.Properties.MessageExpiryInterval > 0 {
		now = time.Now()
	}
	if !validTopicName(pk.TopicName) {
		return packets.ErrTopicNameInvalid, false
	}
	if srv.Users.HasTopicPermissions() && !s.topicAllowed(auth.Write, topicToKey(pk.TopicName)) {
		s.logger().Warn("MQTT publish refused: no write access to the topic", "topic", pk.TopicName)
		return packets.ErrNotAuthorized, false
	}
	if pk.FixedHeader.Retain {
		if err := srv.retained.set(s.vhost.Name, retainedFromPacket(pk, now)); err != nil {
			s.logger().Error("storing retained message failed", "topic", pk.TopicName, "err", err)
			return packets.ErrUnspecifiedError, false
		}
	}
	if gate := srv.Broker.PublishGate(); gate != nil {
		// A resource alarm: stop reading from this publisher (TCP
		// backpressure) until it clears, as RabbitMQ does.
		_ = s.wc.Flush()
		select {
		case <-gate:
		case <-srv.done:
			return packets.ErrServerShuttingDown, false
		}
	}
	x, err := s.exchange()
	if err != nil {
		return reasonFor(err), false
	}
	var publisher string
	if s.noLocals.Load() > 0 {
		publisher = s.clientID
	}
	msg := toCoreMessage(srv.exchange, pk, publisher, now)
	done := s.doneFn
	switch {
	case a != nil && a.marker:
		done = nil // the marker's fsync covers the message
	case a != nil:
		done = func(err error) { s.ackDurable(a, err) }
	}
	res, err := s.vhost.PublishTo(&s.router, x, msg, done)
	if err != nil {
		s.logger().Debug("publish failed", "topic", pk.TopicName, "err", err)
		return reasonFor(err), false
	}
	if res.Flow != nil && !s.ownQueue(res.Full) {
		// Not its own queue: a client subscribed to what it publishes
		// must go on reading its PUBACKs for that queue to drain.
		s.flow = res.Flow
	}
	code = packets.CodeSuccess
	if res.Rejected > 0 {
		code = packets.ErrQuotaExceeded
	}
	if a != nil {
		return code, res.Stored && !a.marker
	}
	if res.Stored {
		_ = s.wc.Flush() // earlier acknowledgements need not wait for this one
		if err := <-s.doneCh; err != nil {
			s.logger().Error("storing a message failed", "topic", pk.TopicName, "err", err)
			return packets.ErrUnspecifiedError, false
		}
	}
	// An unroutable message is accepted with 0x00, not 0x10 (no matching
	// subscribers, which MQTT 5 makes optional): mochi cannot encode a
	// success code other than 0 without properties, which clients asking
	// for no problem information forbid.
	return code, false
}

// ownQueue reports whether q is one of the session's queues.
func (s *session) ownQueue(q *core.Queue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return q == s.q0 || q == s.q1
}

// exchange returns the publishing exchange, resolving it again if it was
// deleted and re-declared.
func (s *session) exchange() (*core.Exchange, error) {
	if s.exch == nil || s.exch.Deleted() {
		x, err := s.vhost.Exchange(s.srv.exchange)
		if err != nil {
			return nil, err
		}
		s.exch = x
	}
	return s.exch, nil
}

// --- delivery ---

// enqueue takes a delivery from the core (with core locks held) or a
// retained message. It never blocks.
func (s *session) enqueue(it outItem) {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return // a delivery stays unacked in the core and is requeued on close
	}
	o.items = append(o.items, it)
	if !o.running {
		o.running = true
		o.idle = make(chan struct{})
		go s.drain(o.idle)
	}
}

// ready tells the core whether to deliver more (with core locks held).
func (s *session) ready() bool {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) >= maxOutbox {
		o.held = true
		return false
	}
	return true
}

// drain writes queued items until there are none.
func (s *session) drain(idle chan struct{}) {
	o := &s.out
	for yielded := false; ; {
		o.mu.Lock()
		if len(o.items) == 0 && !o.closed && !yielded {
			// Under a steady flow (QoS 1: each PUBACK lets one delivery
			// through) the next item is usually a moment away; give it
			// that moment before giving up the goroutine.
			o.mu.Unlock()
			yielded = true
			runtime.Gosched()
			continue
		}
		yielded = false
		if len(o.items) == 0 || o.closed {
			o.running = false
			o.idle = nil
			o.mu.Unlock()
			close(idle)
			return
		}
		batch := o.items
		o.items = o.spare
		o.spare = nil
		kick := o.held
		o.held = false
		o.mu.Unlock()

		if kick {
			s.mu.Lock()
			cs := s.cs
			s.mu.Unlock()
			if cs != nil {
				cs.Kick() // let the core fill the next batch while this one is written
			}
		}
		s.send(batch)
		clear(batch)
		o.mu.Lock()
		if o.spare == nil {
			o.spare = batch[:0]
		}
		o.mu.Unlock()
	}
}

// send writes a batch of items as PUBLISH packets, encoded into one buffer
// and written with one system call.
func (s *session) send(batch []outItem) {
	now := time.Now()
	var acks []uint64 // settled as soon as written (or not sent at all)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	cs := s.cs
	version := s.cl.Properties.ProtocolVersion
	maxSize := s.cl.Properties.Props.MaximumPacketSize
	buf := s.wbuf[:0]
	for i := range batch {
		pk, ok, ack := s.prepareLocked(&batch[i], now)
		if ack != 0 {
			acks = append(acks, ack)
		}
		if !ok {
			continue
		}
		var err error
		if buf, err = appendPublish(buf, &pk, version, maxSize); err != nil {
			// [MQTT-3.1.2-25] Too large for the client: discarded as if sent.
			s.logger().Debug("delivery larger than the client's maximum packet size dropped", "topic", pk.TopicName)
			if pk.FixedHeader.Qos > 0 {
				if tag := s.inflight[pk.PacketID]; tag != 0 {
					acks = append(acks, tag)
				}
				delete(s.inflight, pk.PacketID)
				s.cl.State.Inflight.Delete(pk.PacketID)
			}
		}
	}
	s.mu.Unlock()
	if len(buf) > 0 {
		// An error means the connection is gone; close() requeues what
		// is unacknowledged.
		_ = s.wc.WriteNow(buf)
	}
	if cap(buf) <= maxPendingWrite {
		s.wbuf = buf[:0]
	} else {
		s.wbuf = nil
	}
	if cs != nil {
		for _, tag := range acks {
			_ = cs.Ack(tag, false)
		}
	}
}

// prepareLocked turns an item into a PUBLISH. ok is false when nothing is
// to be sent; ack is a delivery tag to acknowledge right after the write.
// REQUIRES: s.mu.
func (s *session) prepareLocked(it *outItem, now time.Time) (pk packets.Packet, ok bool, ack uint64) {
	v5 := s.cl.Properties.ProtocolVersion == 5
	if it.from == fromRetained {
		if it.sub == nil || s.subs[it.sub.filter] != it.sub {
			return pk, false, 0
		}
		m := it.ret
		qos := min(m.qos, it.sub.qos)
		pk = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: true},
			TopicName: m.topic, Payload: m.payload} // [MQTT-3.3.1-8]
		if v5 {
			pk.Properties = m.props
			if !m.expires.IsZero() {
				pk.Properties.MessageExpiryInterval = expirySeconds(m.expires.Sub(now))
			}
			if it.sub.id > 0 {
				pk.Properties.SubscriptionIdentifier = []int{it.sub.id}
			}
		}
		return s.finishLocked(pk, 0, v5)
	}

	msg := it.d.Msg
	if !it.noAck {
		ack = it.d.Tag // unless it goes out at QoS 1/2, below
	}
	topic := keyToTopic(msg.RoutingKey)
	var (
		qos     byte
		matched bool
		retain  bool
		ids     []int
	)
	local := false
	if s.noLocals.Load() > 0 {
		local = publisherOf(msg) == s.clientID
	}
	consider := func(sub *subscription) {
		if !matchFilter(sub.inner, topic) || (local && sub.noLocal) {
			return
		}
		if !matched || sub.qos > qos {
			qos = sub.qos
		}
		matched = true
		if sub.retainAsPublished && v5 {
			retain = true
		}
		if sub.id > 0 {
			ids = append(ids, sub.id)
		}
	}
	switch it.from {
	case fromShared:
		if it.sub != nil && s.subs[it.sub.filter] == it.sub {
			consider(it.sub)
		}
	default:
		for _, sub := range s.subs {
			if sub.group == "" && (sub.qos == 0) == (it.from == fromQoS0) {
				consider(sub)
			}
		}
	}
	if !matched {
		// Routed by a binding of a subscription since removed, or a
		// '$' topic a wildcard does not match: not for this client.
		return pk, false, ack
	}
	qos = min(qos, messageQoS(msg))
	if it.noAck {
		qos = 0
	}
	retain = retain && publishedRetained(msg)
	pk = packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain, Dup: qos > 0 && it.d.Redelivered},
		TopicName:   topic,
		Payload:     msg.Body,
	}
	if v5 {
		pk.Properties = publishProperties(msg, now)
		if len(ids) > 0 {
			sort.Ints(ids)
			pk.Properties.SubscriptionIdentifier = ids
		}
	}
	if qos == 0 {
		return s.finishLocked(pk, 0, v5)
	}
	pk, ok, _ = s.finishLocked(pk, it.d.Tag, v5)
	if !ok {
		return pk, false, ack
	}
	return pk, true, 0
}

// finishLocked gives a QoS 1/2 packet its packet id and in-flight entry,
// and a topic alias when the client accepts them. REQUIRES: s.mu.
func (s *session) finishLocked(pk packets.Packet, tag uint64, v5 bool) (packets.Packet, bool, uint64) {
	if pk.FixedHeader.Qos > 0 {
		id, ok := s.nextPacketIDLocked()
		if !ok {
			s.logger().Warn("packet ids exhausted; delivery requeued")
			return pk, false, 0
		}
		pk.PacketID = id
		s.inflight[id] = tag
		if pk.FixedHeader.Qos == 2 {
			// mochi answers the client's PUBREC from its in-flight table.
			s.cl.State.Inflight.Set(pk)
		}
	}
	if v5 && s.cl.Properties.Props.TopicAliasMaximum > 0 {
		alias, known := s.cl.State.TopicAliases.Outbound.Set(pk.TopicName)
		if alias > 0 {
			pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = alias, true
			if known {
				pk.TopicName = ""
			}
		}
	}
	return pk, true, 0
}

// nextPacketIDLocked picks a packet id used neither by the session's
// deliveries nor by mochi (QoS 2 handshakes in either direction).
// REQUIRES: s.mu.
func (s *session) nextPacketIDLocked() (uint16, bool) {
	for range 65535 {
		s.lastID++
		if s.lastID == 0 {
			s.lastID = 1
		}
		if _, used := s.inflight[s.lastID]; used {
			continue
		}
		if _, used := s.cl.State.Inflight.Get(s.lastID); used {
			continue
		}
		return s.lastID, true
	}
	return 0, false
}

// settle finishes the delivery with packet id: acknowledged (PUBACK, or
// PUBREC for QoS 2), or refused by the client with an error reason code,
// which drops it (dead-lettering it where the queue says so).
func (s *session) settle(id uint16, refused bool) {
	s.mu.Lock()
	tag, ok := s.inflight[id]
	if ok {
		delete(s.inflight, id)
	}
	cs := s.cs
	s.mu.Unlock()
	if !ok || tag == 0 || cs == nil {
		return
	}
	var err error
	if refused {
		err = cs.Nack(tag, false, false)
	} else {
		err = cs.Ack(tag, false)
	}
	if err != nil {
		s.logger().Debug("settling a delivery failed", "packet_id", id, "err", err)
	}
}

// --- closing ---

// close ends the session's connection side: no more deliveries, unacked
// ones requeued (and removed from mochi's in-flight table, so a resumed
// session gets them from its queue, not twice), exclusive queues deleted.
// With r.end the session ends: its durable queue and record go too. With
// r.will its will is published, now or after the will delay.
func (s *session) close(r closeReason) {
	srv := s.srv
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conn, cs, expiry := s.conn, s.cs, s.expiry
	ids := make([]uint16, 0, len(s.inflight))
	for id := range s.inflight {
		ids = append(ids, id)
	}
	clear(s.inflight)
	var shared []string
	for _, sub := range s.subs {
		if sub.group != "" {
			shared = append(shared, sub.queue)
		}
	}
	s.subs = nil
	s.mu.Unlock()

	o := &s.out
	o.mu.Lock()
	o.closed = true
	idle := o.idle
	o.items, o.spare = nil, nil
	o.mu.Unlock()
	if idle != nil {
		<-idle
	}
	if cs != nil {
		cs.Close()
	}
	s.closeQoS2()
	for _, id := range ids {
		if pk, ok := s.cl.State.Inflight.Get(id); ok && pk.FixedHeader.Type == packets.Publish {
			s.cl.State.Inflight.Delete(id)
		}
	}
	if conn != nil {
		conn.Close()
	}
	srv.mu.Lock()
	if srv.sessions[s.key] == s {
		delete(srv.sessions, s.key)
		if !r.end {
			// No other connection took the session over: its expiry
			// interval runs from now.
			srv.scheduleExpiryLocked(s.key, s.vhost.Name, s.clientID, expiry)
		}
	}
	srv.mu.Unlock()
	if r.end {
		s.endDurable()
	}
	srv.dropShared(s.vhost, shared)
	if r.will && s.will != nil {
		delay := time.Duration(s.will.delay) * time.Second
		if r.end {
			delay = 0 // the session ended first [MQTT-3.1.3-9]
		}
		srv.scheduleWill(s.key, s.vhost, s.clientID, s.will, time.Now().Add(delay), false)
	}
}

// endDurable deletes what a persistent session keeps between connections.
func (s *session) endDurable() { s.srv.endStored(s.vhost, s.clientID) }
