package mqtt

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/unifiedms/ums/core"
)

// Inbound QoS 2 state of persistent sessions.
//
// A QoS 2 PUBLISH is delivered once and answered with PUBREC; until the
// client's PUBREL the server must answer a retransmission of it (same
// packet id) with PUBREC again and not deliver it again [MQTT-4.3.3-10].
// mochi remembers those packet ids in memory only. For a persistent
// session they are also kept as persistent marker messages (the body is
// the packet id) in the session's queue mqtt-qos2-<client id>, an internal
// core queue (core.QueueOptions.Internal) that no client can see, consume,
// purge, delete or publish into, so users of other protocols cannot break
// exactly-once: the marker
// is written to the message log after the message itself and PUBREC waits
// for the marker's fsync, so a PUBREC the client saw is always backed by a
// durable marker, and after a restart the session knows which packet ids
// are still between PUBREC and PUBREL. A crash between the message's and
// the marker's fsync can at worst deliver the retransmitted message twice;
// never lose it.
//
// The markers are taken (basic.get, unacknowledged) by a core session of
// their own and acknowledged at PUBREL; closing the connection requeues
// them for the next one.
//
// The adapter, not mochi, handles the client's PUBLISH and PUBREL packets
// (see inbound.go): mochi keeps one in-flight table for both directions,
// and a client's packet id may equal one of the server's.

// qos2QueueName is the marker queue of a persistent session.
func qos2QueueName(clientID string) string { return "mqtt-qos2-" + clientID }

// qos2State is a session's marker queue and the markers it holds.
type qos2State struct {
	mu   sync.Mutex
	cs   *core.Session     // REQUIRES: mu
	q    *core.Queue       // REQUIRES: mu
	held map[uint16]uint64 // packet id -> delivery tag of its marker; REQUIRES: mu
}

// qos2Queue returns the session's marker queue, declaring it (and the core
// session holding its markers) on first use. REQUIRES: s.q2.mu.
func (s *session) qos2QueueLocked(create bool) (*core.Queue, error) {
	st := &s.q2
	if st.q != nil && !st.q.Deleted() {
		return st.q, nil
	}
	s.mu.Lock()
	conn, closed := s.conn, s.closed
	s.mu.Unlock()
	if closed || conn == nil {
		return nil, core.ErrClosed
	}
	name := qos2QueueName(s.clientID())
	q, err := s.vhost.InternalQueue(name)
	if err != nil {
		if !create {
			return nil, nil
		}
		args := core.Table{}
		s.srv.queueExpiry(args)
		q, err = s.vhost.DeclareQueue(conn, name, core.QueueOptions{Durable: true, Internal: true, Args: args})
		if err != nil {
			return nil, err
		}
	}
	if st.cs == nil {
		st.cs = conn.NewSession()
		st.held = make(map[uint16]uint64)
	}
	st.q = q
	return q, nil
}

// markQoS2 stores the marker of packet id after its message was published;
// a's acknowledgement (PUBREC) waits for it. It reports whether the marker
// went to the store.
func (s *session) markQoS2(id uint16, a *pubAck) (bool, error) {
	st := &s.q2
	st.mu.Lock()
	q, err := s.qos2QueueLocked(true)
	st.mu.Unlock()
	if err != nil {
		return false, err
	}
	msg := &core.Message{RoutingKey: q.Name, Body: binary.BigEndian.AppendUint16(nil, id)}
	msg.Props.DeliveryMode = core.Persistent
	res, err := s.vhost.PublishInternal(q, msg, func(err error) { s.ackDurable(a, err) })
	if err != nil {
		return false, err
	}
	if !res.Stored {
		return false, errors.New("mqtt: QoS 2 marker not stored")
	}
	return true, nil
}

// fetchQoS2Locked takes markers from the queue until the one for want is
// held (want 0: all of them), and returns the ids it took. REQUIRES:
// s.q2.mu.
func (s *session) fetchQoS2Locked(want uint16) []uint16 {
	st := &s.q2
	var ids []uint16
	for {
		if want != 0 {
			if _, ok := st.held[want]; ok {
				return ids
			}
		}
		d, _, ok, err := st.cs.Get(st.q, false)
		if err != nil || !ok {
			return ids
		}
		if len(d.Msg.Body) != 2 {
			_ = st.cs.Ack(d.Tag, false) // not ours
			continue
		}
		id := binary.BigEndian.Uint16(d.Msg.Body)
		if old, dup := st.held[id]; dup {
			_ = st.cs.Ack(old, false) // an older marker for a reused id
		}
		st.held[id] = d.Tag
		ids = append(ids, id)
	}
}

// releaseQoS2 drops the marker of packet id: its PUBREL came, or a new
// message (DUP 0) reuses the id.
func (s *session) releaseQoS2(id uint16) {
	st := &s.q2
	st.mu.Lock()
	defer st.mu.Unlock()
	if q, err := s.qos2QueueLocked(false); err != nil || q == nil {
		return
	}
	s.fetchQoS2Locked(id)
	if tag, ok := st.held[id]; ok {
		delete(st.held, id)
		_ = st.cs.Ack(tag, false)
	}
}

// restoreQoS2 takes the markers a resumed session left: their packet ids
// are waiting for PUBREL, as the session would know had the connection
// not changed.
func (s *session) restoreQoS2() {
	st := &s.q2
	st.mu.Lock()
	defer st.mu.Unlock()
	if q, err := s.qos2QueueLocked(false); err != nil || q == nil {
		return
	}
	for _, id := range s.fetchQoS2Locked(0) {
		s.pendingQoS2(id)
	}
}

// pendingQoS2 records that the client's QoS 2 message id awaits PUBREL.
// Read goroutine (or the handshake, before it starts).
func (s *session) pendingQoS2(id uint16) {
	if s.inQoS2 == nil {
		s.inQoS2 = make(map[uint16]struct{})
	}
	s.inQoS2[id] = struct{}{}
}

// deleteQoS2Queue deletes the session's marker queue: the session ends.
func (s *session) deleteQoS2Queue() {
	name := qos2QueueName(s.clientID())
	if _, err := s.vhost.DeleteInternalQueue(name); err != nil {
		s.logger().Error("deleting the QoS 2 marker queue failed", "queue", name, "err", err)
	}
}

// closeQoS2 gives the held markers back to the queue (the session's next
// connection takes them again).
func (s *session) closeQoS2() {
	st := &s.q2
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cs != nil {
		st.cs.Close()
		st.cs = nil
	}
	st.q, st.held = nil, nil
}
