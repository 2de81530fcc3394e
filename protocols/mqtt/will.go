package mqtt

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/internal/clock"
)

// willMsg is a client's will, kept by the adapter (mochi's copy is
// cleared so that only the core publishes it).
type willMsg struct {
	pk    packets.Packet
	delay uint32 // seconds
}

// takeWill moves the client's will from mochi to the session, with all
// its MQTT 5 properties.
func (s *session) takeWill(pk *packets.Packet) {
	if will, delay, ok := s.cl.takeWill(pk); ok {
		s.will = &willMsg{pk: will, delay: delay}
	}
}

// pendingWill is a will waiting for its delay.
type pendingWill struct {
	t        clock.Timer
	key      string // the session's key in Server.wills
	v        *core.Vhost
	clientID string
	w        *willMsg
	due      time.Time
	stored   bool // a record of it is in the Store
}

// scheduleWill publishes a will at due (at once when due has passed),
// unless a new connection to the session cancels it first. stored says
// the Store holds a record of it, to be deleted once it is published.
// During shutdown a will not yet due is stored instead.
func (srv *Server) scheduleWill(key string, v *core.Vhost, clientID string, w *willMsg, due time.Time, stored bool) {
	pw := &pendingWill{key: key, v: v, clientID: clientID, w: w, due: due, stored: stored}
	delay := due.Sub(srv.clock.Now())
	if delay <= 0 {
		srv.publishWill(v, clientID, w)
		srv.forgetWill(pw)
		return
	}
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		srv.saveWill(pw)
		return
	}
	defer srv.mu.Unlock()
	if old := srv.wills[key]; old != nil {
		old.t.Stop()
	}
	srv.wills[key] = pw
	pw.t = srv.clock.AfterFunc(delay, func() {
		srv.mu.Lock()
		mine := srv.wills[key] == pw && !srv.closing
		if mine {
			delete(srv.wills, key)
			srv.bg.Add(1)
		}
		srv.mu.Unlock()
		if mine {
			defer srv.bg.Done()
			srv.publishWill(v, clientID, w)
			srv.forgetWill(pw)
		}
	})
}

// publishWill publishes a will through the core like any PUBLISH.
func (srv *Server) publishWill(v *core.Vhost, clientID string, w *willMsg) {
	pk := w.pk
	now := srv.clock.Now()
	if pk.FixedHeader.Retain {
		if err := srv.retained.set(v.Name, retainedFromPacket(&pk, now)); err != nil {
			srv.log.Error("storing retained will failed", "client", clientID, "err", err)
		}
	}
	var r core.Router
	msg := toCoreMessage(srv.exchange, &pk, "", now)
	if _, err := v.Publish(&r, srv.exchange, msg, nil); err != nil {
		srv.log.Warn("publishing will failed", "client", clientID, "topic", pk.TopicName, "err", err)
		return
	}
	srv.log.Debug("will published", "client", clientID, "topic", pk.TopicName)
}

// saveWill stores a will whose delay outlasts the server.
func (srv *Server) saveWill(pw *pendingWill) {
	m := retainedFromPacket(&pw.w.pk, srv.clock.Now())
	e := encoder{}
	e.byte(willRecordV1)
	e.varint(pw.due.UnixMilli())
	e.str(pw.w.pk.TopicName)
	e.bool(pw.w.pk.FixedHeader.Retain)
	e.bytes(m.encode())
	if err := srv.store.Put(storeKey(kindWill, pw.v.Name, pw.clientID), e.b); err != nil {
		srv.log.Error("storing delayed will failed; it is lost", "client", pw.clientID, "err", err)
	}
}

// forgetWill deletes the stored record of a will that was published or
// cancelled.
func (srv *Server) forgetWill(pw *pendingWill) {
	if !pw.stored {
		return
	}
	if err := srv.store.Delete(storeKey(kindWill, pw.v.Name, pw.clientID)); err != nil {
		srv.log.Error("deleting stored will failed", "client", pw.clientID, "err", err)
	}
}

// loadWill schedules a stored will again.
func (srv *Server) loadWill(key string, v *core.Vhost, clientID string, b []byte) error {
	d := newDecoder(b)
	if d.byte() != willRecordV1 {
		return errBadRecord
	}
	due := time.UnixMilli(d.varint())
	topic := d.str()
	retain := d.bool()
	inner := d.bytes()
	if !d.done() {
		return errBadRecord
	}
	m, err := decodeRetained(topic, inner)
	if err != nil {
		return err
	}
	w := &willMsg{pk: newPublish(topic, m.payload, m.qos, retain, false)}
	w.pk.Properties = m.props
	if !m.expires.IsZero() {
		left := m.expires.Sub(srv.clock.Now())
		if left <= 0 {
			// Expired while the server was down.
			srv.forgetWill(&pendingWill{v: v, clientID: clientID, stored: true})
			return nil
		}
		w.pk.Properties.MessageExpiryInterval = expirySeconds(left)
	}
	srv.scheduleWill(key, v, clientID, w, due, true)
	return nil
}
