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
//	Vhost.defMu -> Vhost.mu -> Exchange.mu
//	Vhost.mu -> scheduler.mu (a leaf: see delay.go)
//	Vhost.defMu -> Vhost.mu -> Queue.mu -> Session.mu -> Vhost.replyMu
//	Queue.mu -> Broker.flow.mu, and the message store's own lock (Log.mu)
//	Conn.mu -> Broker.connMu
//	Broker.mu is taken alone (the vhost table).
//
// Vhost.defMu serializes definition changes (declare, delete, bind,
// unbind) and is held across the definition store's write and fsync. It is
// never taken on the message path, and while it is held only Vhost.mu,
// Exchange.mu, Queue.mu and the store are taken: no adapter callback runs
// under it (consumers of a deleted queue are cancelled after it is
// released). A change is checked under Vhost.mu's read lock, written under
// defMu alone, then made visible under Vhost.mu for writing, which is
// therefore held only for map updates, never across I/O.
//
// The message path takes no vhost lock: exchanges and queues are looked up
// in lock-free indexes (sync.Map beside Vhost.exchanges and Vhost.queues,
// updated under Vhost.mu), an exchange's read lock is held only while its
// bindings are matched, and then one Queue.mu per destination queue. The
// publishing gate (memory and disk alarms) and user permissions
// (auth.Store) are atomic loads. Exchange.mu is taken under Vhost.mu when
// bindings change, and alone when routing.
//
// Delivery callbacks run with Queue.mu and Session.mu held: they must not
// block and must not call back into this package. Session.mu is taken
// under Queue.mu when a delivery is offered; Conn.mu only around its
// session and exclusive-queue sets.
//
// Queue.mu is never held across I/O either: paged-out bodies are read back
// by a page-in outside it (pagein.go), and dead letters are published after
// it is released (Queue.unlock). Releases go to the message store under
// Queue.mu; the store takes its own lock briefly and never calls back.
//
// A scheduler (scheduled delivery, delay.go) holds its mu only to change
// its heaps and arm its timer: routing, queues and the message store are
// called without it, and deleting an exchange closes its scheduler under
// Vhost.mu and releases the stored messages after (flushLater).
//
// The message store calls done callbacks (MessageStore.Append, Sync) from
// its flusher goroutine, with no core lock and no store lock held. A
// callback must not block, must not wait for another append or sync (the
// flusher is the one running it: MessageStore.Read of an unwritten record
// or Sync would deadlock), and must not take a lock that anyone holds while
// waiting for a done callback.
package core
