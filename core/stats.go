package core

import "sync/atomic"

// Stats are the broker-wide message counters since start, as RabbitMQ's
// global_messages_*_total metrics count them.
type Stats struct {
	Received     uint64 // messages accepted from publishers (routed or not)
	Delivered    uint64 // deliveries to consumers and basic.get answers
	Redelivered  uint64 // deliveries of messages delivered before
	Acknowledged uint64 // deliveries acknowledged by clients
	Confirmed    uint64 // publisher confirms sent (basic.ack to a publisher)
}

// stats are the counters behind Stats. They are plain atomics: the
// message path takes no lock to count.
type stats struct {
	received, delivered, redelivered, acknowledged, confirmed atomic.Uint64
}

// Stats returns the message counters.
func (b *Broker) Stats() Stats {
	s := &b.stats
	return Stats{
		Received: s.received.Load(), Delivered: s.delivered.Load(), Redelivered: s.redelivered.Load(),
		Acknowledged: s.acknowledged.Load(), Confirmed: s.confirmed.Load(),
	}
}

// CountConfirmed adds n publisher confirms; adapters call it when they
// confirm publishes to a client.
func (b *Broker) CountConfirmed(n uint64) { b.stats.confirmed.Add(n) }
