package mqtt

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// The client's PUBLISH and PUBREL are handled here, not by mochi: mochi
// keeps the packet ids of both directions in one in-flight table, where a
// client's QoS 1/2 PUBLISH could delete or overwrite the entry of a
// delivery that happens to use the same id, and it acknowledges QoS 2
// synchronously. Here a client's QoS 2 packet ids awaiting PUBREL live in
// session.inQoS2 (and, for persistent sessions, as durable markers, see
// qos2.go), and PUBACKs and PUBRECs both go through the ordered, pipelined
// acknowledgement queue (ack.go).

// handlePublish processes a client's PUBLISH.
func (s *Server) handlePublish(cl client, sess *session, pk *packets.Packet) error {
	if code := s.checkPublish(pk); code != packets.CodeSuccess {
		return code
	}
	if pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 { // [MQTT-3.3.2-11]
		pk.TopicName = s.inboundAlias(cl, pk.Properties.TopicAlias, pk.TopicName)
		if pk.TopicName == "" {
			// An alias this connection never set (aliases do not outlive
			// their connection [MQTT-3.3.2-7]): a protocol error.
			return packets.ErrProtocolViolationNoTopic
		}
	}
	qos := pk.FixedHeader.Qos
	if qos == 2 {
		if _, pending := sess.inQoS2[pk.PacketID]; pending {
			if pk.FixedHeader.Dup {
				// Sent again before its PUBREL: acknowledged again (after
				// the acknowledgements before it), not delivered again
				// [MQTT-4.3.3-10].
				a := sess.reserveAck(pk.PacketID, packets.Pubrec)
				if !sess.finishAck(a, packets.CodeSuccess, false) {
					sess.writeAck(a)
				}
				return nil
			}
			// A first transmission (DUP 0) [MQTT-3.3.1-1] reusing the id:
			// the client had its PUBCOMP, whose release of the id a crash
			// undid. It is a new message.
			delete(sess.inQoS2, pk.PacketID)
			if sess.persistent() {
				sess.releaseQoS2(pk.PacketID)
			}
		}
	}

	if qos > 0 && cl.version() == 5 && sess.unacknowledged() >= sess.ackLimit() {
		// More unacknowledged QoS 1/2 PUBLISHes than the receive maximum
		// announced in CONNACK [MQTT-3.3.4-7] [MQTT-3.3.4-8]. (MQTT 3 has
		// no such limit: its publishers are just not read from while
		// their acknowledgements are pending, see reserveAck.)
		sess.logger().Warn("MQTT client exceeded the receive maximum", "limit", sess.ackLimit())
		return packets.ErrReceiveMaximum
	}
	var a *pubAck
	switch qos {
	case 1:
		a = sess.reserveAck(pk.PacketID, packets.Puback)
	case 2:
		a = sess.reserveAck(pk.PacketID, packets.Pubrec)
		a.marker = sess.persistent()
	}
	code, stored := packets.ErrNotAuthorized, false
	if sess.perms().Allow(auth.Write, "exchange", s.exchange) == nil {
		code, stored = sess.publish(pk, a)
	}
	if qos == 2 && code == packets.CodeSuccess {
		sess.pendingQoS2(pk.PacketID)
		if a.marker {
			var err error
			if stored, err = sess.markQoS2(pk.PacketID, a); err != nil {
				// The message's own fsync was left to the marker's.
				sess.logger().Error("storing the QoS 2 state failed", "packet_id", pk.PacketID, "err", err)
				delete(sess.inQoS2, pk.PacketID)
				code = packets.ErrUnspecifiedError
			}
		}
	}

	v5 := cl.version() == 5
	if code != packets.CodeSuccess && ((!v5 && qos > 0) || (code == packets.ErrNotAuthorized && (!v5 || qos == 0))) {
		// A refusal with no negative acknowledgement to carry it (MQTT 3
		// has none; QoS 0 has no acknowledgement at all) closes the
		// connection rather than leave the publisher waiting for a
		// PUBACK that never comes. An MQTT 3 client with a kept session
		// sends its unacknowledged messages again when it reconnects
		// [MQTT-4.4.0-1]; MQTT 5 clients learn why from DISCONNECT (0x87
		// not authorized). Refused QoS 0 messages are otherwise dropped,
		// as QoS 0 allows. Earlier publishes are acknowledged first.
		sess.logger().Warn("MQTT publish refused; closing the connection", "topic", pk.TopicName, "qos", qos, "reason", code.Reason)
		if a != nil {
			sess.finishAck(a, code, stored)
		}
		sess.waitAcks(1)
		s.kick(cl, code)
		return nil
	}
	if a != nil && !sess.finishAck(a, code, stored) {
		sess.writeAck(a) // nothing to wait for
	}
	s.waitForRoom(sess)
	return nil
}

// maxFlowWait bounds how long one publisher is not read from while a
// queue its message went to is nearly full (see waitForRoom).
const maxFlowWait = 5 * time.Second

// waitForRoom is publisher flow control: when the last publish reached a
// nearly full reject-publish queue that a consumer drains (typically a
// QoS 1 subscriber slower than its publishers), the publisher's next packets are not read
// until that queue is back under its mark, so TCP slows the publisher to
// the subscriber's pace instead of its messages being refused at the
// queue's limit. The wait is bounded (maxFlowWait); after it the queue's
// limit refuses what does not fit, as before.
func (s *Server) waitForRoom(sess *session) {
	if sess.pub == nil || sess.pub.flow == nil {
		return
	}
	flow := sess.pub.flow
	sess.pub.flow = nil
	_ = sess.wc.Flush() // acknowledgements already due go out now
	t := time.NewTimer(maxFlowWait)
	defer t.Stop()
	select {
	case <-flow:
	case <-t.C:
		sess.logger().Debug("MQTT publisher flow control: queue still full", "waited", maxFlowWait)
	case <-s.done:
	}
}

// handlePubrel completes a client's QoS 2 PUBLISH: its packet id is free
// again [MQTT-4.3.3-11].
func (s *Server) handlePubrel(cl client, sess *session, pk *packets.Packet) error {
	_, pending := sess.inQoS2[pk.PacketID]
	if pending {
		delete(sess.inQoS2, pk.PacketID)
		if sess.persistent() {
			sess.releaseQoS2(pk.PacketID)
		}
	}
	if pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
		return nil // the client gave up on it [MQTT-4.3.3-9]
	}
	code := packets.CodeSuccess
	if !pending {
		code = packets.ErrPacketIdentifierNotFound
	}
	return cl.write(newAck(packets.Pubcomp, pk.PacketID, code))
}

// publish sends a PUBLISH into the core and returns the acknowledgement's
// reason code. It returns once the core took the message and, when the
// message went to the message store, once it is durable, except with a
// (QoS 1): then a stored message is acknowledged through a once durable,
// and stored is true.
func (s *session) publish(pk *packets.Packet, a *pubAck) (code packets.Code, stored bool) {
	srv := s.srv
	var now time.Time
	if pk.FixedHeader.Retain || pk.Properties.MessageExpiryInterval > 0 {
		now = srv.clock.Now()
	}
	if !validTopicName(pk.TopicName) {
		return packets.ErrTopicNameInvalid, false
	}
	if srv.Users.HasTopicPermissions() { // skips the key conversion when nobody has any
		if err := s.perms().AllowPublish(srv.exchange, topicToKey(pk.TopicName)); err != nil {
			s.logger().Warn("MQTT publish refused: no write access to the topic", "topic", pk.TopicName)
			return packets.ErrNotAuthorized, false
		}
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
		publisher = s.clientID()
	}
	msg := toCoreMessage(srv.exchange, pk, publisher, now)
	p := s.publisher()
	done := p.doneFn
	switch {
	case a != nil && a.marker:
		done = nil // the marker's fsync covers the message
	case a != nil:
		done = func(err error) { s.ackDurable(a, err) }
	}
	res, err := s.vhost.PublishTo(&p.router, x, msg, done)
	if err != nil {
		s.logger().Debug("publish failed", "topic", pk.TopicName, "err", err)
		return reasonFor(err), false
	}
	if res.Flow != nil && !s.ownQueue(res.Full) {
		// Not its own queue: a client subscribed to what it publishes
		// must go on reading its PUBACKs for that queue to drain.
		p.flow = res.Flow
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
		if err := <-p.doneCh; err != nil {
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
	p := s.publisher()
	if p.exch == nil || p.exch.Deleted() {
		x, err := s.vhost.Exchange(s.srv.exchange)
		if err != nil {
			return nil, err
		}
		p.exch = x
	}
	return p.exch, nil
}

// publisher is what only a publishing session needs, made by its first
// PUBLISH: most connections only subscribe, or stay idle, and this would
// add a third to every session.
type publisher struct {
	router core.Router // counts for the session's connection
	exch   *core.Exchange
	doneCh chan error
	doneFn func(error)     // the message store's completion, to doneCh
	flow   <-chan struct{} // set by publish: a nearly full queue asks to wait (see waitForRoom)
	acks   ackQueue        // QoS 1 and 2 acknowledgements waiting for the message store
}

// publisher returns the session's publishing state, made on first use.
// Read goroutine; other goroutines reach it through an acknowledgement
// it queued, made after it.
func (s *session) publisher() *publisher {
	if s.pub == nil {
		p := &publisher{doneCh: make(chan error, 1)}
		p.doneFn = func(err error) { p.doneCh <- err }
		s.mu.Lock()
		p.router.CountFor(s.conn)
		s.mu.Unlock()
		s.pub = p
	}
	return s.pub
}
