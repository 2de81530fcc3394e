package mqtt

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/internal/clock"
)

// Session expiry.
//
// A persistent session ends when its expiry interval has passed since its
// connection closed [MQTT-3.1.2-23]. The client may change the interval
// in DISCONNECT [MQTT-3.14.2-2], so the interval cannot be a fixed
// property of the session's queues: the adapter keeps it in the session
// record and runs a timer per disconnected session (Server.expiring), on
// the core's clock, which deletes the record and the queues. The queues' x-expires is the
// longest interval granted (Server.MaxSessionExpiry), a backstop that no
// client's interval exceeds. After a restart every stored session counts
// its interval again from the start, as the core's x-expires does.

// expiryTimer is the pending end of a disconnected session.
type expiryTimer struct {
	t    clock.Timer
	done chan struct{} // closed once the session ended, if the timer fired
}

// queueExpiry is the x-expires of a persistent session's queues.
func (srv *Server) queueExpiry(args core.Table) {
	if srv.MaxSessionExpiry != NoSessionExpiry {
		args["x-expires"] = int64(srv.MaxSessionExpiry) * 1000
	}
}

// scheduleExpiryLocked starts the expiry timer of the stored session key
// (vhost v, client id clientID). REQUIRES: srv.mu.
func (srv *Server) scheduleExpiryLocked(key, vhost, clientID string, expiry uint32) {
	if expiry == 0 || expiry == NoSessionExpiry || srv.closing {
		return
	}
	if old := srv.expiring[key]; old != nil {
		old.t.Stop()
	}
	e := &expiryTimer{done: make(chan struct{})}
	e.t = srv.clock.AfterFunc(time.Duration(expiry)*time.Second, func() {
		srv.goBackground(func() { srv.expire(key, vhost, clientID, e) })
	})
	srv.expiring[key] = e
}

// expire ends the stored session key whose timer e fired, unless a client
// is connected to it again (one that connects while it runs waits for it,
// see cancelExpiry, and finds no session).
func (srv *Server) expire(key, vhost, clientID string, e *expiryTimer) {
	defer close(e.done)
	srv.mu.Lock()
	if srv.expiring[key] != e || srv.sessions[key] != nil {
		if srv.expiring[key] == e {
			delete(srv.expiring, key)
		}
		srv.mu.Unlock()
		return
	}
	srv.mu.Unlock()
	if v, ok := srv.Broker.Vhost(vhost); ok {
		srv.endStored(v, clientID)
	}
	srv.forgetExpired(key)
	srv.mu.Lock()
	if srv.expiring[key] == e {
		delete(srv.expiring, key)
	}
	srv.mu.Unlock()
}

// cancelExpiry stops the expiry timer of session key, which a client is
// connecting to; if the timer already fired, it waits until the session
// has ended.
func (srv *Server) cancelExpiry(key string) {
	srv.mu.Lock()
	e := srv.expiring[key]
	if e != nil && e.t.Stop() {
		delete(srv.expiring, key)
		e = nil
	}
	srv.mu.Unlock()
	if e != nil {
		select {
		case <-e.done:
		case <-srv.done: // shutting down: the expiry will not run
		}
	}
}

// stopExpiries stops every expiry timer (shutdown: the stored sessions
// expire after the next start).
func (srv *Server) stopExpiries() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for key, e := range srv.expiring {
		e.t.Stop()
		delete(srv.expiring, key)
	}
}

// endStored deletes a persistent session's record, queues and the shared
// subscription queues only it held.
func (srv *Server) endStored(v *core.Vhost, clientID string) {
	key := storeKey(kindSession, v.Name, clientID)
	srv.mu.Lock()
	rec, had := srv.records[key]
	delete(srv.records, key)
	srv.mu.Unlock()
	if had {
		if err := srv.store.Delete(key); err != nil {
			srv.log.Error("deleting session record failed", "vhost", v.Name, "client", clientID, "err", err)
		}
	}
	name := queueName(clientID, 1)
	if q, err := v.Queue(nil, name); err == nil && q.Durable {
		if _, err := v.DeleteQueue(nil, name, false, false); err != nil {
			srv.log.Error("deleting session queue failed", "vhost", v.Name, "queue", name, "err", err)
		}
	}
	name = qos2QueueName(clientID)
	if _, err := v.DeleteInternalQueue(name); err != nil {
		srv.log.Error("deleting the QoS 2 marker queue failed", "vhost", v.Name, "queue", name, "err", err)
	}
	if rec != nil {
		var shared []string
		for _, o := range rec.subs {
			if group, inner, ok := parseShared(o.filter); ok {
				shared = append(shared, sharedQueueName(group, inner))
			}
		}
		srv.dropShared(v, shared)
	}
}

// setExpiry changes the expiry interval of a persistent session whose
// connection is ending, and stores it with the session.
func (s *session) setExpiry(expiry uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if expiry == s.expiry || expiry == 0 {
		return
	}
	s.expiry = expiry
	if err := s.saveRecordLocked(); err != nil {
		s.logger().Error("storing the session expiry interval failed", "err", err)
	}
}

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
