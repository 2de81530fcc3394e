package mqtt

import (
	"math"
	"sort"
)

// The stored part of a persistent session: its subscriptions and expiry
// interval, kept in the Store under a kindSession key. Its messages are in
// the core's durable queue.

// sessionRecord is the stored part of a persistent session: what a client
// subscribed to. Its queued messages live in the core's durable queue.
type sessionRecord struct {
	subs []subOptions
	// expiry is the session expiry interval in seconds, which the client
	// may change in DISCONNECT; 0 in records written before it was kept
	// (their queues expire by x-expires alone).
	expiry uint32
}

// subOptions is one subscription as the client asked for it.
type subOptions struct {
	filter            string // as subscribed, including any $share/group/ prefix
	qos               byte
	noLocal           bool
	retainAsPublished bool
	retainHandling    byte
	id                int // subscription identifier, 0 = none
}

func (r *sessionRecord) encode() []byte {
	e := encoder{b: make([]byte, 0, 16+32*len(r.subs))}
	e.byte(sessionRecordV2)
	e.uvarint(uint64(r.expiry))
	e.uvarint(uint64(len(r.subs)))
	for _, s := range r.subs {
		e.str(s.filter)
		e.byte(s.qos)
		e.byte(boolByte(s.noLocal) | boolByte(s.retainAsPublished)<<1 | s.retainHandling<<2)
		e.uvarint(uint64(s.id))
	}
	return e.b
}

func decodeSessionRecord(b []byte) (*sessionRecord, error) {
	d := newDecoder(b)
	var expiry uint64
	switch d.byte() {
	case sessionRecordV1:
	case sessionRecordV2:
		expiry = d.uvarint()
	default:
		return nil, errBadRecord
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) || expiry > math.MaxUint32 {
		return nil, errBadRecord
	}
	r := &sessionRecord{subs: make([]subOptions, 0, n), expiry: uint32(expiry)}
	for i := uint64(0); i < n; i++ {
		var s subOptions
		s.filter = d.str()
		s.qos = d.byte()
		fl := d.byte()
		s.noLocal, s.retainAsPublished, s.retainHandling = fl&1 != 0, fl&2 != 0, (fl>>2)&3
		s.id = int(d.uvarint())
		if s.qos > 2 {
			d.fail()
		}
		r.subs = append(r.subs, s)
	}
	if !d.done() {
		return nil, errBadRecord
	}
	return r, nil
}

// recordKey is the Store key of the session's record.
func (s *session) recordKey() string { return storeKey(kindSession, s.vhost.Name, s.clientID()) }

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
