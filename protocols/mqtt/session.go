package mqtt

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// session is one connected MQTT client: a core connection, a core session
// and the client's subscriptions. Its queues are named after the client id
// as in RabbitMQ: mqtt-subscription-<id>qos1 for QoS 1/2 subscriptions
// (durable with x-expires for persistent sessions, exclusive otherwise) and
// mqtt-subscription-<id>qos0 for QoS 0 ones (always exclusive: QoS 0
// messages are not kept for a disconnected client). Shared subscriptions
// consume from a queue per group and filter.
type session struct {
	srv   *Server
	cl    client
	wc    *wireConn
	vhost *core.Vhost
	user  string
	// admission is the session's place in its user's connection count
	// (core.Broker.Admit), taken at login; close releases it.
	admission *core.Admission

	// Set by establish, before CONNACK; read-only afterwards.
	expiry uint32 // granted session expiry interval, seconds; 0 = ends with the connection
	// noLocals counts the subscriptions with no-local: publishes carry the
	// publisher. (Next to expiry: they share a word.)
	noLocals atomic.Int32
	will     *willMsg

	// Owned by the client's read goroutine (Server.readPackets).
	pub      *publisher        // made by the first PUBLISH (session.publisher)
	ackCodes map[uint32][]byte // SUBACK and UNSUBACK codes by type<<16 | packet id (putAckCodes)
	retainQ  []outItem

	// closing counts the close in progress: establish waits for it.
	// (Inline: a channel would cost an allocation per connection.)
	closing sync.WaitGroup

	mu      sync.Mutex
	closed  bool   // REQUIRES: mu
	present bool   // session present in CONNACK; set by establish, read-only afterwards
	lastID  uint16 // REQUIRES: mu
	// (The small fields share a word.)
	conn     *core.Conn               // REQUIRES: mu
	cs       *core.Session            // opened on first use (coreSessionLocked); REQUIRES: mu
	q0, q1   *core.Queue              // REQUIRES: mu
	subs     map[string]*subscription // by filter as subscribed (nil: none yet); REQUIRES: mu
	inflight map[uint16]uint64        // packet id → delivery tag (0: retained; nil: none yet); REQUIRES: mu

	out core.Pump[outItem]

	q2     qos2State           // durable copy of inQoS2 for persistent sessions
	inQoS2 map[uint16]struct{} // client's QoS 2 packet ids awaiting PUBREL (nil: none yet); read goroutine
}

// closeReason says how a session ends.
type closeReason struct {
	end  bool // the session ends: delete its durable queue and record
	will bool // publish the will
}

func newSession(srv *Server, cl client, wc *wireConn, v *core.Vhost, user string) *session {
	// The maps and channels are made on first use: most connections stay
	// idle, and each would cost more than a hundred bytes on every one.
	s := &session{srv: srv, cl: cl, wc: wc, vhost: v, user: user, lastID: 32767}
	s.initPump()
	return s
}

// logger returns a logger naming the session. It is built when needed:
// keeping one per idle connection would cost more than the rest of the
// session.
func (s *session) logger() *slog.Logger {
	return s.srv.log.With("client", s.clientID(), "vhost", s.vhost.Name)
}

func (s *session) persistent() bool { return s.expiry > 0 }

// key is mochi's client id: the client id, qualified by a non-default
// vhost (set at login, before the session is made).
func (s *session) key() string { return s.cl.id() }

// clientID is the client id as the client knows it: key without its
// vhost (the session keeps no copy of its own).
func (s *session) clientID() string {
	k := s.cl.id()
	if i := strings.IndexByte(k, 0); i >= 0 {
		return k[i+1:]
	}
	return k
}

// establish runs before CONNACK: it takes over a live session with the
// same client id, cancels a pending delayed will, and decides whether an
// earlier session is resumed (its record returned, for start) or
// discarded. It creates nothing in the core, so a CONNACK that cannot be
// written leaves nothing behind.
//
// prev is the live connection it took over, if any.
func (s *session) establish(pk *packets.Packet) (resume *sessionRecord, prev client) {
	srv := s.srv
	clean := pk.Connect.Clean
	s.expiry = srv.grantedExpiry(s.cl.version(), pk)
	s.takeWill(pk)

	srv.mu.Lock()
	old := srv.sessions[s.key()]
	srv.sessions[s.key()] = s
	will := srv.wills[s.key()]
	delete(srv.wills, s.key())
	srv.mu.Unlock()
	srv.cancelExpiry(s.key()) // after taking the key: no expiry starts for it now
	if old != nil {
		// [MQTT-3.1.4-3] The old connection gets DISCONNECT 0x8E (mochi's
		// own attempt later finds it closed) and its session is closed
		// here, before the new one touches the same queues.
		srv.kick(old.cl, packets.ErrSessionTakenOver)
		old.close(closeReason{end: false, will: true})
		// The old connection may have been closing already (its client
		// disconnected just before): wait until its consumers have put
		// back what they held, or this session's consumer would get the
		// later messages first.
		old.closing.Wait()
		prev = old.cl
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
	q1 := queueName(s.clientID(), 1)
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
		// Most clean sessions had no predecessor: HasQueue spares them
		// building Queue's not-found error.
		if s.vhost.HasQueue(q1) {
			if q, err := s.vhost.Queue(nil, q1); err == nil && q.Durable {
				if _, err := s.vhost.DeleteQueue(nil, q1, false, false); err != nil {
					s.logger().Error("deleting the previous session's queue failed", "queue", q1, "err", err)
				}
			}
		}
		s.deleteQoS2Queue()
		return nil, prev
	}
	srv.mu.Lock()
	rec := srv.records[rkey]
	srv.mu.Unlock()
	if rec != nil {
		if q, err := s.vhost.Queue(nil, q1); err == nil && q.Durable {
			s.present = true
			return rec, prev
		}
	}
	return nil, prev
}

// start runs after CONNACK: it opens the core connection and session,
// declares the session queue of a persistent session and restores the
// subscriptions of a resumed one (resume, from establish). Messages may
// flow from here on.
func (s *session) start(resume *sessionRecord) error {
	srv := s.srv
	cl := s.cl
	proto := "MQTT 3.1.1"
	switch cl.version() {
	case 3:
		proto = "MQTT 3.1"
	case 5:
		proto = "MQTT 5.0"
	}
	peer, local := cl.remote(), srv.localName(s.wc.LocalAddr().String()) // mochi formatted the peer's already
	conn := s.vhost.Open(s.user, core.ConnInfo{
		Protocol: proto, Peer: peer, Local: local, // Info names it after these
		ConnectedAt: srv.clock.Now(),
		Close: func(string) {
			srv.goBackground(func() { srv.kick(cl, packets.ErrAdministrativeAction) })
		},
		Authz:     srv.Users,
		TopicVars: s.perms().TopicVars,
		Admission: s.admission,
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return core.ErrClosed
	}
	s.conn = conn
	if s.persistent() {
		if resume == nil {
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
	if resume != nil {
		for _, o := range resume.subs {
			if _, err := s.applyLocked(o); err != nil {
				s.logger().Warn("restoring subscription failed", "filter", o.filter, "err", err)
			}
		}
	}
	return nil
}

// coreSessionLocked returns the core session the session's queues are
// consumed through, opening it on first use: a clean connection that never
// subscribes (an idle device, or one that only publishes) keeps none.
// REQUIRES: s.mu, s.conn set (start).
func (s *session) coreSessionLocked() *core.Session {
	if s.cs == nil {
		recv := uint16(65535)
		if s.cl.version() == 5 && s.cl.receiveMaximum() > 0 {
			recv = s.cl.receiveMaximum()
		}
		s.cs = s.conn.NewSession()
		s.cs.SetPrefetch(int(min(recv, s.srv.MaxInflight)), true)
	}
	return s.cs
}

// cancelLocked cancels a consumer of the core session. REQUIRES: s.mu.
func (s *session) cancelLocked(tag string) {
	if s.cs != nil {
		s.cs.Cancel(tag)
	}
}

// closingHook, when set (by tests), runs as a session starts closing.
var closingHook atomic.Pointer[func(clientID string)]

// close ends the session's connection side: no more deliveries, unacked
// ones requeued (and removed from mochi's in-flight table, so a resumed
// session gets them from its queue, not twice), exclusive queues deleted.
// With r.end the session ends: its durable queue and record go too. With
// r.will its will is published, now or after the will delay. A second
// call returns at once; establish waits for the first (closing).
func (s *session) close(r closeReason) {
	srv := s.srv
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.closing.Add(1) // under mu: whoever sees closed can Wait
	defer s.closing.Done()
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
	if h := closingHook.Load(); h != nil {
		(*h)(s.clientID())
	}

	s.out.Close()
	if cs != nil {
		cs.Close()
	}
	s.closeQoS2()
	for _, id := range ids {
		s.cl.forgetDelivery(id)
	}
	if conn != nil {
		conn.Close()
	}
	s.admission.Release() // when the session closed before its connection opened
	srv.mu.Lock()
	if srv.sessions[s.key()] == s {
		delete(srv.sessions, s.key())
		if !r.end {
			// No other connection took the session over: its expiry
			// interval runs from now, and its client keeps the in-flight
			// state for the next connection (inheritInflight).
			srv.scheduleExpiryLocked(s.key(), s.vhost.Name, s.clientID(), expiry)
			srv.offline[s.key()] = s.cl
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
		srv.scheduleWill(s.key(), s.vhost, s.clientID(), s.will, srv.clock.Now().Add(delay), false)
	}
}

// endDurable deletes what a persistent session keeps between connections.
func (s *session) endDurable() { s.srv.endStored(s.vhost, s.clientID()) }
