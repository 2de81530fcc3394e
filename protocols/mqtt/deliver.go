package mqtt

import (
	"sort"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Deliveries to the client, second leg: a batch from the outbox becomes
// PUBLISH packets (QoS, properties, packet ids, topic aliases) written with
// one system call; the client's PUBACK or PUBREC settles each delivery in
// the core (settle).

// wbufs are the encoding buffers of send, shared by every session: a
// buffer kept per session would stay, as large as its biggest batch, on a
// subscriber gone idle.
var wbufs = sync.Pool{New: func() any { return new([]byte) }}

// send writes a batch of items as PUBLISH packets, encoded into one buffer
// and written with one system call.
func (s *session) send(batch []outItem) {
	now := s.srv.clock.Now()
	var acks []uint64 // settled as soon as written (or not sent at all)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	cs := s.cs
	version := s.cl.version()
	maxSize := s.cl.maxPacketSize()
	bp := wbufs.Get().(*[]byte)
	buf := (*bp)[:0]
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
				s.cl.forgetInflight(pk.PacketID)
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
		*bp = buf[:0]
		wbufs.Put(bp)
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
	v5 := s.cl.version() == 5
	if it.from == fromRetained {
		if it.sub == nil || s.subs[it.sub.filter] != it.sub {
			return pk, false, 0
		}
		m := it.ret
		qos := min(m.qos, it.sub.qos)
		pk = newPublish(m.topic, m.payload, qos, true, false) // [MQTT-3.3.1-8]
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
		local = publisherOf(msg) == s.clientID()
	}
	consider := func(sub *subscription) {
		if (local && sub.noLocal) || !filterAccepts(sub.inner, topic, sub.literalStar) {
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
		// The core says which of the queue's bindings match; each is
		// the key of the subscriptions bound to this queue with it.
		for _, key := range it.d.Bindings {
			for _, sub := range s.subs {
				if sub.key == key && sub.group == "" && (sub.qos == 0) == (it.from == fromQoS0) {
					consider(sub)
				}
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
	pk = newPublish(topic, msg.Body, qos, retain, qos > 0 && it.d.Redelivered)
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
		if s.inflight == nil {
			s.inflight = make(map[uint16]uint64)
		}
		s.inflight[id] = tag
		if pk.FixedHeader.Qos == 2 {
			// mochi answers the client's PUBREC from its in-flight table.
			s.cl.trackQoS2(pk)
		}
	}
	if v5 && s.cl.topicAliasMaximum() > 0 {
		alias, known := s.cl.outboundAlias(pk.TopicName)
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
		if s.cl.inflightUsed(s.lastID) {
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
