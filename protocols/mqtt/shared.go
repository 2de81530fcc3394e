package mqtt

import (
	"errors"

	"github.com/unifiedms/ums/core"
)

// Shared subscriptions ($share/group/filter): one durable queue per group
// and filter, consumed by every member of the group.

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
		q, err = s.conn.DeclareQueue(sub.queue, core.QueueOptions{Durable: true, Args: s.srv.sharedQueueArgs()})
		if err != nil {
			return err
		}
		if err = s.vhost.Bind(s.conn, sub.queue, s.srv.exchange, sub.key, nil); err != nil {
			continue
		}
		if _, err = s.coreSessionLocked().Consume(q, s.consumeOptions(sub.tag, fromShared, sub.noAck, sub)); err == nil || errors.Is(err, core.ErrLimitReached) {
			return err // a full group stays full: no retry
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

// sharedQueueName is the queue of a shared subscription group.
func sharedQueueName(group, filter string) string {
	return "mqtt-shared-" + group + "/" + filter
}
