package mqtt

import (
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// The session's own queues, named as in RabbitMQ, and their consumers.

// queueArgs are the arguments of a session queue.
func (s *session) queueArgs(qos byte, durable bool) core.Table {
	args := core.Table{}
	if n := s.srv.MaxQueueLength; n > 0 {
		args["x-max-length"] = int64(n)
		if qos > 0 {
			args["x-overflow"] = core.OverflowRejectPublish
		} else {
			args["x-overflow"] = core.OverflowDropHead
		}
	}
	if durable {
		s.srv.queueExpiry(args)
	}
	return args
}

// ensureQ1Locked declares (or finds) the QoS 1/2 queue and consumes it.
// REQUIRES: s.mu.
func (s *session) ensureQ1Locked() error {
	if s.q1 != nil {
		return nil
	}
	name := queueName(s.clientID(), 1)
	q, err := s.vhost.Queue(s.conn, name)
	if err != nil || q.Deleted() {
		durable := s.persistent()
		q, err = s.conn.DeclareQueue(name, core.QueueOptions{
			Durable: durable, Exclusive: !durable, ReportBindings: true, Args: s.queueArgs(1, durable)})
		if err != nil {
			return err
		}
	} else if !q.ReportsBindings() {
		// Stored by an earlier version: deliveries must say which
		// subscriptions they match.
		if err := s.vhost.EnableReportBindings(q); err != nil {
			return err
		}
	}
	if _, err := s.coreSessionLocked().Consume(q, s.consumeOptions("mqtt-qos1", fromQoS1, false, nil)); err != nil {
		return err
	}
	s.q1 = q
	return nil
}

// ensureQ0Locked declares the QoS 0 queue and consumes it. REQUIRES: s.mu.
func (s *session) ensureQ0Locked() error {
	if s.q0 != nil {
		return nil
	}
	q, err := s.conn.DeclareQueue(queueName(s.clientID(), 0), core.QueueOptions{
		Exclusive: true, ReportBindings: true, HoldPublishers: true, Args: s.queueArgs(0, false)})
	if err != nil {
		return err
	}
	if _, err := s.coreSessionLocked().Consume(q, s.consumeOptions("mqtt-qos0", fromQoS0, true, nil)); err != nil {
		return err
	}
	s.q0 = q
	return nil
}

func (s *session) consumeOptions(tag string, from source, noAck bool, sub *subscription) core.ConsumeOptions {
	return core.ConsumeOptions{
		Tag:   tag,
		NoAck: noAck,
		Deliver: func(d core.Delivery) {
			s.enqueue(outItem{d: d, from: from, noAck: noAck, sub: sub})
		},
		Ready:     s.ready,
		Cancelled: s.cancelled,
	}
}

// cancelled: a queue the session consumes was deleted from outside (the
// session deletes its own only after cancelling its consumers). The client
// is disconnected, as RabbitMQ does.
func (s *session) cancelled() {
	s.srv.goBackground(func() {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			s.logger().Warn("a queue of the session was deleted; disconnecting")
			s.srv.kick(s.cl, packets.ErrAdministrativeAction)
		}
	})
}

// queueName is the name of a session's queue for QoS 0 or QoS 1/2
// subscriptions, as in RabbitMQ.
func queueName(clientID string, qos byte) string {
	if qos == 0 {
		return "mqtt-subscription-" + clientID + "qos0"
	}
	return "mqtt-subscription-" + clientID + "qos1"
}
