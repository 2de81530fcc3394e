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
// # Writing an adapter
//
// An adapter (a protocol server, or in-process code such as notification
// workers) makes these calls, in this order:
//
//  1. Authenticate the user with the auth.Store (on failure wait on
//     Broker.LoginFailed before answering), pick the vhost with
//     Broker.Vhost, count the client connection with Broker.Admit (it
//     refuses beyond the user's connection limit), and open a connection:
//     v.Open(user, ConnInfo{..., Admission: adm, Authz: users, TopicVars:
//     auth.TopicVars{ClientID: id}}). With Authz
//     set, every operation below is checked by the core with RabbitMQ's
//     rules (see authz.go); the adapter keeps no permission logic.
//  2. Open a Session per channel (AMQP), subscription context (STOMP) or
//     client session (MQTT): conn.NewSession(), and SetPrefetch.
//  3. Declare and bind through the connection: conn.DeclareQueue,
//     conn.DeclareExchange, conn.Bind, conn.Purge, conn.DeleteQueue... The
//     Vhost methods of the same names are the unchecked API for the core's
//     own callers. State the protocol needs but users must not touch goes in
//     internal queues (QueueOptions.Internal; Vhost.InternalQueue,
//     PublishInternal, DeleteInternalQueue): invisible to other clients.
//  4. Publish: x, err := conn.PublishExchange(name) once (keep it while
//     !x.Deleted()), then per message conn.AllowTopic(auth.Write, x, key)
//     and v.PublishTo(&router, x, msg, done), with one Router per
//     publishing goroutine. PublishResult says where it went: Queues == 0
//     is unroutable (AMQP mandatory returns it), Rejected > 0 means a queue
//     refused it (nack), Stored means done will be called once, from the
//     store's flusher, after the fsync (only then may the adapter confirm:
//     basic.ack, PUBACK, RECEIPT) or with the storage error (refuse it the
//     protocol's way). Flow, when set, asks the publisher to wait; before
//     reading more from a publisher, wait on Broker.PublishGate when it is
//     not nil (memory or disk alarm).
//  5. Consume: q, err := conn.ReadQueue(name), then s.Consume(q,
//     ConsumeOptions{...}) for a push consumer or s.Pull(q, PullOptions{...})
//     for a pulling one (Next(ctx)). Push callbacks run with Queue.mu and
//     Session.mu held: Deliver must only encode into the adapter's own
//     buffer; Ready returning false holds deliveries back until the adapter
//     calls s.Kick when its buffer drained; Started runs before the first
//     delivery (send consume-ok from it); Cancelled runs without locks when
//     the queue is deleted.
//  6. Settle with s.Ack, s.Nack, s.Recover; close with s.Close and
//     conn.Close (unacknowledged deliveries are requeued, exclusive queues
//     deleted).
//
// The delivery helpers are the buffer an adapter needs between the core's
// callbacks, which run under core locks and must not block, and its
// socket; an adapter keeps no delivery buffer of its own:
//
//   - [Outbox] (push, encoded at delivery): Deliver encodes its frames
//     straight into the connection's outbox, behind every other frame of
//     the connection, and the adapter's writer goroutine sends everything
//     queued with one writev. Ready (ConsumeOptions.Ready) and Kick give
//     the flow control; Over tells the reader to stop reading. AMQP uses
//     it: one buffer for every frame keeps deliveries in order with the
//     replies the reader sends (a delivery never follows a cancel-ok or
//     close-ok sent after it), and encoding at delivery costs no hand-off.
//     With ConsumeOptions.Flush, Deliver queues without waking the writer
//     (UnlockDeferred) and the flush, which the core calls once the
//     deliveries are made and its locks released, writes them on the
//     delivering goroutine or wakes the writer (Signal).
//   - [Pump] (push, items): Deliver puts the delivery (or an adapter's own
//     item) into the pump, and a writer goroutine started only while
//     something waits encodes and writes batches (MQTT, whose frames are
//     written through mochi; STOMP).
//   - [Puller] (pull): Next(ctx) for in-process consumers (notification
//     workers).
//
// Errors wrap one of the kinds in errors.go; an adapter maps them with
// errors.Is in one function: ErrNotFound 404, ErrAccessRefused 403,
// ErrResourceLocked 405, ErrPreconditionFailed 406, ErrNotAllowed 530,
// ErrCommandInvalid 503, ErrResourceError 506, ErrInternal 541 (storage
// failed; nothing changed), ErrClosed. A refusal by a node limit
// (limits.go) is ErrNotAllowed and also matches ErrLimitReached, which
// adapters without AMQP's codes test first (MQTT 0x97 quota exceeded).
// Time comes from Broker.Clock.
//
// For example, a worker that takes jobs from a queue:
//
//	conn := v.Open("worker", core.ConnInfo{Authz: users})
//	defer conn.Close()
//	q, err := conn.ReadQueue("jobs")
//	if err != nil {
//		return err
//	}
//	p, err := conn.NewSession().Pull(q, core.PullOptions{Buffer: 16})
//	if err != nil {
//		return err
//	}
//	for {
//		d, err := p.Next(ctx)
//		if err != nil {
//			return err
//		}
//		handle(d.Msg)
//		p.Ack(d)
//	}
//
// # Locks
//
// Lock order (take left before right, never the other way round):
//
//	Vhost.defMu -> Vhost.mu -> Exchange.mu
//	Vhost.mu -> scheduler.mu (a leaf: see delay.go)
//	Vhost.defMu -> Vhost.mu -> Queue.mu -> Session.mu -> Vhost.replyMu
//	Queue.mu -> Broker.flow.mu, and the message store's own lock (Log.mu)
//	Queue.mu -> Session.mu -> Pump.mu, Puller.mu, Outbox.mu (leaves: the delivery helpers)
//	Conn.mu -> Broker.connMu (which also guards the per-user connection
//	counts; Broker.Admit takes it alone)
//	Broker.mu is taken alone (the vhost table).
//	Broker.hookMu -> whatever an OnVhost hook takes (it is held while hooks
//	run, and never under another core lock).
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
