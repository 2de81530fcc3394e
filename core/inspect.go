package core

import (
	"slices"
	"sort"
)

// Read-only views of sessions and consumers for the management API. They
// take the same locks as the message path, briefly, in its order (queue,
// then session).

// SessionInfo describes one session (an AMQP channel, an MQTT or STOMP
// session) of a connection.
type SessionInfo struct {
	Consumers      int
	Unacked        int // deliveries awaiting settlement
	Prefetch       int // limit given to new consumers, 0 = none
	GlobalPrefetch int // session-wide limit, 0 = none
	Flow           bool
}

// Sessions describes the connection's open sessions, those with the most
// consumers first.
func (c *Conn) Sessions() []SessionInfo {
	c.mu.Lock()
	ss := slices.Clone(c.sessions)
	c.mu.Unlock()
	out := make([]SessionInfo, 0, len(ss))
	for _, s := range ss {
		s.mu.Lock()
		out = append(out, SessionInfo{Consumers: len(s.consumers), Unacked: s.inflight, Prefetch: s.consumerPrefetch,
			GlobalPrefetch: s.prefetch, Flow: !s.paused})
		s.mu.Unlock()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Consumers > out[j].Consumers })
	return out
}

// ConsumerInfo describes one consumer of a queue.
type ConsumerInfo struct {
	Tag       string
	Conn      *Conn
	NoAck     bool
	Exclusive bool
	Prefetch  int
	Priority  int64
	Unacked   int
}

// Consumers describes the queue's consumers in delivery order.
func (q *Queue) Consumers() []ConsumerInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]ConsumerInfo, 0, len(q.consumers))
	for _, c := range q.consumers {
		ci := ConsumerInfo{Tag: c.Tag, NoAck: c.NoAck, Exclusive: c.Exclusive, Prefetch: c.prefetch, Priority: c.priority}
		if s := c.session; s != nil {
			ci.Conn = s.conn
			s.mu.Lock()
			ci.Unacked = c.unacked
			s.mu.Unlock()
		}
		out = append(out, ci)
	}
	return out
}
