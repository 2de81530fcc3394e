// Package core is the protocol-neutral routing core of UMS: virtual hosts,
// exchanges, queues, bindings, consumers with acknowledgements and prefetch.
//
// Protocol adapters translate their frames into calls on [Vhost], [Conn] and
// [Session], and receive deliveries through the callbacks they pass to
// [Session.Consume]. The semantics follow RabbitMQ 3.13.
//
// # Messages
//
// A [Message] is immutable once published: its body is shared by every queue
// it is routed to and by every delivery of it, so nothing may modify it.
//
// # Locks
//
// Lock order (take left before right, never the other way round):
//
//	Broker.mu -> Vhost.mu -> Queue.mu -> Session.mu -> (adapter delivery callbacks)
//
// Exchange.mu (bindings) is taken on its own: routing holds it only while it
// collects destinations, never while it enqueues. The per-message path takes
// the vhost's read lock to resolve names, an exchange's read lock to match,
// and one queue lock per destination queue; no lock is exclusive to the
// whole broker. Delivery callbacks run with Queue.mu and Session.mu held:
// they must not block and must not call back into this package.
package core
