package mqtt

import (
	"errors"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// SUBSCRIBE and UNSUBSCRIBE, on the read goroutine. Each filter becomes a
// binding of a session queue (queues.go) or a consumer of a shared queue
// (shared.go); the reason codes go into the SUBACK or UNSUBACK that mochi
// writes (takeAckCodes), and the matching retained messages follow the
// SUBACK (sendRetained). A persistent session's subscriptions are stored
// (record.go) before the SUBACK reports them.

// subscription is a subscription and where it is bound.
type subscription struct {
	subOptions
	inner string // the filter without $share/group/
	group string // share group, "" for a normal subscription
	key   string // binding key
	queue string // bound queue
	tag   string // consumer tag of a shared subscription
	noAck bool   // shared subscription consumed without acks (QoS 0)
	// literalStar: the filter holds a literal '*', which binds as a
	// wildcard; deliveries are checked against the filter itself.
	literalStar bool
}

func (s *session) subscribePacket(pk *packets.Packet) {
	codes := make([]byte, len(pk.Filters))
	v5 := s.cl.version() == 5
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
	s.putAckCodes(packets.Suback, pk.PacketID, codes)
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
			s.cancelLocked(cur.tag)
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
	if !validFilter(f.Filter) {
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
		if errors.Is(err, core.ErrAccessRefused) || errors.Is(err, core.ErrLimitReached) {
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

// applyLocked creates or replaces a subscription: binds the right queue
// (and consumes a shared one) and unbinds what the subscription no longer
// uses. It reports whether the subscription existed. REQUIRES: s.mu.
func (s *session) applyLocked(o subOptions) (bool, error) {
	if s.closed || s.conn == nil {
		return false, core.ErrClosed
	}
	srv := s.srv
	group, inner, shared := parseShared(o.filter)
	sub := &subscription{subOptions: o, inner: inner, group: group, key: filterToKey(inner),
		literalStar: strings.Contains(inner, "*")}
	old := s.subs[o.filter]
	if shared {
		sub.queue = sharedQueueName(group, inner)
		sub.tag = "mqtt-share:" + o.filter
		sub.noAck = o.qos == 0
	} else {
		sub.queue = queueName(s.clientID(), o.qos)
	}
	// Checked before anything changes: the binding's rule (write on the
	// queue, read on the exchange, topic read permission on the key);
	// declaring and consuming the queue are checked by the core.
	if err := s.perms().AllowBind(sub.queue, srv.exchange, sub.key); err != nil {
		return false, err
	}
	if shared {
		if old != nil {
			s.cancelLocked(old.tag)
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
	if s.subs == nil {
		s.subs = make(map[string]*subscription)
	}
	s.subs[o.filter] = sub
	s.countNoLocal()
	return old != nil, nil
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
			s.cancelLocked(sub.tag)
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
	if failed && s.cl.version() < 5 {
		s.srv.kick(s.cl, packets.ErrUnspecifiedError)
	}
	s.srv.dropShared(s.vhost, left)
	s.putAckCodes(packets.Unsuback, pk.PacketID, codes)
}

// putAckCodes keeps the reason codes of the SUBACK or UNSUBACK (typ)
// answering packet id, for takeAckCodes.
func (s *session) putAckCodes(typ byte, id uint16, codes []byte) {
	if s.ackCodes == nil {
		s.ackCodes = make(map[uint32][]byte)
	}
	s.ackCodes[uint32(typ)<<16|uint32(id)] = codes
}

// takeAckCodes returns the reason codes for a SUBACK or UNSUBACK being
// written (on the read goroutine, like the SUBSCRIBE it answers).
func (s *session) takeAckCodes(typ byte, id uint16) ([]byte, bool) {
	k := uint32(typ)<<16 | uint32(id)
	codes, ok := s.ackCodes[k]
	if ok {
		delete(s.ackCodes, k)
	}
	return codes, ok
}

// sendRetained queues the retained messages matching the subscriptions of
// the SUBSCRIBE just answered.
func (s *session) sendRetained() {
	if len(s.retainQ) == 0 {
		return
	}
	now := s.srv.clock.Now()
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
