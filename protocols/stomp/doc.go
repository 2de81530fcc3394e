// Package stomp is the STOMP 1.0, 1.1 and 1.2 adapter of the core. Frames
// are go-stomp's frame.Frame values, read within limits and written per
// version by the wire package; connections, subscriptions and acks are
// the adapter's, over the core's sessions, delivery helper (core.Pump) and
// authorization.
//
// # Mapping (RabbitMQ's STOMP plugin conventions)
//
//   - CONNECT or STOMP negotiates the highest common version
//     (accept-version; none means 1.0). login/passcode are checked
//     against the broker's users (core/auth; guest only from loopback); a
//     CONNECT without login gets Server.DefaultUser, as RabbitMQ does. The
//     host header names the vhost (default Server.DefaultVhost).
//     CONNECTED carries version, heart-beat, server and session.
//   - Heart-beats: the server sends an EOL every cy of the client's
//     "cx,cy" when nothing else went out, and closes the connection (with
//     an ERROR) when the client is silent for 2·cx plus a second.
//   - Destinations: /queue/q is queue q (durable, declared on first SEND
//     or SUBSCRIBE with the frame's x- arguments) through the default
//     exchange; /amq/queue/q is an existing queue, never declared;
//     /topic/k publishes to amq.topic with key k and subscribes with a
//     queue of the subscription's own bound with pattern k (exclusive and
//     auto-deleted, or, with durable:true or persistent:true, a durable
//     queue named by x-queue-name or after destination and id, which
//     survives disconnects and restarts until UNSUBSCRIBE with
//     durable:true); /exchange/e/k is the same on exchange e;
//     /temp-queue/x in a SEND's reply-to makes the connection's private
//     queue for x, subscribed to as /temp-queue/x (auto ack), and the
//     reply-to becomes /reply-queue/<its name>, where replies are sent.
//   - SEND headers: content-type, content-encoding, persistent:true
//     (delivery mode 2), priority, expiration, correlation-id, reply-to,
//     amqp-message-id, type, app-id, timestamp map onto the core's
//     properties; other headers are message headers (x- queue arguments
//     excepted). MESSAGE frames carry the same back, with subscription,
//     destination, message-id, redelivered, content-length and, in 1.2
//     with client acks, ack.
//   - SUBSCRIBE ack:auto is a no-ack consumer; client and
//     client-individual are acknowledging consumers with prefetch-count
//     as their prefetch. ACK and NACK name a message by message-id (1.0,
//     1.1) or the ack header's value (1.2); client acks are cumulative
//     within their subscription. NACK requeues unless requeue:false, which
//     drops the message (dead-lettering it where the queue says so).
//   - The RECEIPT of a SEND whose message went to the message store goes
//     out from the store's completion, after the fsync; COMMIT's and
//     DISCONNECT's receipts after a store barrier (core.Broker.Sync), so
//     they follow every earlier receipt.
//   - Transactions hold their SEND, ACK and NACK frames until COMMIT.
//   - Every refusal is an ERROR frame (message header, text body,
//     receipt-id when the frame asked for a receipt) built by errorFrame,
//     the one mapping of core errors, and the connection is closed.
//
// # Files
//
//	server.go     Server: settings, Serve, Shutdown
//	conn.go       the connection: read loop, writes, heart-beats, close
//	park.go       idle connections parked on the server's epoll poller
//	connect.go    CONNECT: versions, heart-beats, login, vhost, CONNECTED
//	dest.go       destinations
//	send.go       SEND into the core, receipts, reply-to temp queues
//	subscribe.go  SUBSCRIBE, UNSUBSCRIBE, subscription queues
//	deliver.go    deliveries from core.Pump as MESSAGE frames; message ids
//	ack.go        ACK and NACK
//	tx.go         BEGIN, COMMIT, ABORT; DISCONNECT
//	message.go    STOMP headers <-> core properties; x- queue arguments
//	errors.go     errors -> ERROR frames
//	websocket.go  STOMP over WebSocket
//	wire/         the frame codec (pure: no connection, no core)
//
// # Goroutines and locks
//
// One goroutine at a time reads each connection and handles its frames in
// order; it alone publishes, declares, subscribes and settles. It starts
// after the CONNECT handshake, with a small stack, and reads through a
// 2 KiB buffer from a pool. A plain TCP connection quiet between frames
// for 100 ms parks (park.go): its goroutine ends and its buffer goes back
// to the pool, and the server's poller (internal/netpark, one epoll
// goroutine) starts a new reader when bytes arrive; TLS and WebSocket
// connections keep their reader. Core deliveries and receipts that wait
// for the store are put in the connection's core.Pump (which never
// blocks), whose writer goroutine runs only while items wait. Heart-beats
// go out from a timer's function, so a parked connection holds no
// goroutine. Broker RSS per idle connection, 19,000 connections on a fresh
// server: 3.4 to 3.9 KiB parked, 10.9 KiB with a reader each.
//
// Lock order (left before right):
//
//	core locks -> Pump.mu (core callbacks only Put and ask Ready)
//	conn.wmu -> conn.park.slot's lock (netpark.Slot) -> netpark.Poller.mu (a failed write closes
//	the socket, which cancels a parking)
//	conn.mu: taken alone; core calls are made with none of conn's locks
//	held.
//
// conn.mu guards the subscriptions (and their pending delivery tags) and
// the closed flag; conn.wmu the socket's writes, so frames from the
// reader, the pump's writer and the heart-beat timer never interleave.
//
// # Time
//
// Socket deadlines (CONNECT timeout, heart-beats) and the heart-beat timer
// of a parked connection are real time: they wait for the network. The connection time reported to management comes from
// the core's clock.
package stomp
