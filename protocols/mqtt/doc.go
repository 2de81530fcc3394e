// Package mqtt is the MQTT 3.1, 3.1.1 and 5.0 adapter of the core. It
// embeds mochi-mqtt for the wire protocol (packet codec, SUBSCRIBE and
// UNSUBSCRIBE, the server's side of outbound QoS 1/2, topic aliases) and
// bridges it into the core with one mochi hook; mochi's own subscription
// index, retained store and fan-out are not used, so every message goes
// through the core once and nothing is delivered twice. The connection
// itself (CONNECT, the packet loop, keep-alive, session takeover) and the
// client's PUBLISH and PUBREL are the adapter's (connect.go, readloop.go,
// session.go, inbound.go).
//
// # Mapping (RabbitMQ's MQTT plugin conventions)
//
//   - PUBLISH to topic a/b/c goes to exchange amq.topic (Server.Exchange)
//     with routing key a.b.c. '/' and '.' swap places, so MQTT "a/b.c" is
//     key "a.b/c"; SUBSCRIBE a/+/# binds with a.*.#.
//   - QoS 1 and 2 publishes are persistent (delivery mode 2). PUBACK (QoS 1)
//     or PUBREC (QoS 2) is sent once the core took the message and, when it
//     went to the message store, once it is durable. A stored message does
//     not hold up the connection: the acknowledgement is sent from the
//     store's completion, in publish order, by a per-connection ack queue
//     (ack.go) of at most the advertised receive maximum; the read
//     goroutine waits only when it is full. A refused message gets a
//     reason code (MQTT 5); an MQTT 3 connection is closed instead. The
//     packet ids of a persistent session's QoS 2 messages between PUBREC
//     and PUBREL are stored as markers (qos2.go), so exactly-once holds
//     across restarts.
//   - Each session owns mqtt-subscription-<client id>qos1 for QoS 1/2
//     subscriptions (durable for a persistent session, which the adapter
//     ends when its expiry interval, changeable in DISCONNECT, has passed
//     (expiry.go), with x-expires = the longest interval as a backstop;
//     exclusive otherwise) and
//     mqtt-subscription-<client id>qos0 for QoS 0 ones (exclusive: QoS 0
//     messages are not kept for an absent client). Both are bounded
//     (Server.MaxQueueLength): the QoS 1 queue refuses new messages when full
//     (reject-publish), the QoS 0 queue drops its oldest. Before that, a
//     queue (QoS 1 or 0) with a subscriber draining it holds back its
//     publishers at nine tenths of the bound (the core's publisher flow
//     control, core.QueueOptions.HoldPublishers for QoS 0; inbound.go
//     waitForRoom), so a connected subscriber loses no QoS 0 message to a
//     faster publisher; the oldest go only when that bounded wait runs
//     out or nobody drains the queue. $share/group/f
//     consumes from a durable queue per group and filter, which lasts while
//     a persistent session is subscribed and goes with the last member
//     otherwise.
//   - Deliveries are matched again against the session's MQTT filters, for
//     the delivered QoS (the lower of published and granted), subscription
//     identifiers, no-local, retain-as-published, and the rule that
//     wildcards do not match '$' topics.
//   - The client's receive maximum (capped by Server.MaxInflight) is the
//     core session's prefetch for QoS 1/2 deliveries. That core session
//     (a channel in the management API) is opened when the session first
//     consumes: at its first subscription, or at connect when a stored
//     session resumes or persists. A clean connection that only publishes,
//     or only stays connected, has none.
//   - Properties: content type, correlation data ↔ correlation-id (or the
//     x-correlation-id header when not a short UTF-8 string), response topic
//     ↔ reply-to (as a routing key), message expiry ↔ expiration, payload
//     format indicator ↔ the x-mqtt-payload-format-indicator header, user
//     properties ↔ headers.
//   - Retained messages live in a per-vhost topic trie, written through to
//     the Store; persistent sessions' subscriptions are in the Store too,
//     their messages in the core's durable queue.
//   - "vhost:user" as user name picks a vhost; client ids are per vhost.
//     A client without a user name gets Server.DefaultUser's rights (and
//     its loopback-only rule) when Server.AllowAnonymous is set.
//   - The receive maximum announced in CONNACK bounds a client's
//     unacknowledged QoS 1/2 PUBLISHes; an MQTT 5 client over it is
//     disconnected with 0x93 (inbound.go).
//
// # Files
//
// A file is one idea:
//
//	server.go     Server: its settings, start and shutdown
//	listen.go     listeners: TCP and WebSocket
//	conn.go       wireConn (coalesced writes, lazy deadlines); WebSocket streams: internal/wsconn
//	connect.go    the CONNECT handshake, up to CONNACK and session start
//	login.go      authentication and the vhost of a CONNECT
//	readloop.go   the packet loop; the end of a connection and its session
//	session.go    the session: state, establish (takeover, resume or
//	              discard), start, close
//	queues.go     the session's own queues and their consumers
//	subscribe.go  SUBSCRIBE and UNSUBSCRIBE, bindings, SUBACK codes
//	shared.go     shared subscriptions ($share/group/filter)
//	access.go     permission checks (core/auth)
//	inbound.go    the client's PUBLISH and PUBREL into the core
//	ack.go        ordered, pipelined PUBACK/PUBREC after the store's fsync
//	qos2.go       durable QoS 2 markers of persistent sessions
//	outbox.go     core deliveries handed to the writer goroutine
//	deliver.go    deliveries as PUBLISH packets; settling them on PUBACK
//	encode.go     the adapter's own PUBLISH encoder
//	message.go    MQTT PUBLISH <-> core message and properties
//	topic.go      topics and filters <-> routing and binding keys
//	retain.go     the retained message index
//	will.go       wills and will delays
//	expiry.go     session expiry
//	record.go     the stored session record
//	store.go      Store, key layout, record encoding, loading at start
//	reasons.go    core errors -> MQTT reason codes
//	mochi.go      every call into mochi-mqtt
//
// # What of mochi is used, and where
//
// Only mochi.go calls into mochi-mqtt (the server/v2 package and the
// methods of its packets package), so an upgrade is checked in one file:
//
//   - the embedded mochi.Server, built with capabilities that switch off
//     what the core does instead (message expiry, fan-out, $SYS topics),
//     and its hook (OnSubscribe, OnUnsubscribe, OnPacketProcessed,
//     OnPacketEncode, OnACLCheck), which hands SUBSCRIBE, UNSUBSCRIBE,
//     PUBACK and PUBREC to the session and puts the adapter's codes into
//     CONNACK, SUBACK and UNSUBACK;
//   - InjectPacket for every packet after CONNECT but PUBLISH, PUBREL and
//     AUTH (so SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBCOMP, PINGREQ and
//     DISCONNECT are processed by mochi), SendConnack and
//     DisconnectClient. mochi's client list is not used: the adapter keeps
//     its clients (Server.sessions and Server.offline, see mochi.go), so
//     mochi's once-a-second sweeps over that list find it empty;
//   - the client (type client): its codec (ReadFixedHeader, ReadPacket,
//     WritePacket, ParseConnect, the CONNECT and PUBLISH validation), what
//     CONNECT negotiated (version, receive maximum, maximum packet size,
//     topic alias maximum, session expiry, keep-alive, the will), its
//     in-flight table (QoS 2 handshakes, which mochi completes, and packet
//     ids the adapter must not reuse) and its topic aliases;
//   - packet construction (newPublish, newAck, the CONNACK refusal).
//
// mochi's packet types are data elsewhere: packets.Packet and
// packets.Properties flow through the package (wrapping them would copy
// every field), packets.Code is the reason code and error type, and the
// packet type, property and reason code constants are the spec's.
// encode.go writes PUBLISH from a packets.Packet with the spec's property
// identifiers, and message.go, retain.go and store.go keep
// packets.Properties.
//
// # Time
//
// The adapter takes its time from the core's clock (core.Broker.Clock):
// session expiry, will delays, message and retained message expiry, and
// the connection time it reports. Tests run it on a clock.Fake. Socket
// deadlines (keep-alive, the CONNECT timeout, the final flush) and the
// bound on publisher flow control (maxFlowWait) are real time: they wait
// for the network, not for the broker's notion of time.
//
// # Goroutines and locks
//
// One goroutine reads each connection (Server.readPackets); it starts
// after the CONNECT handshake with a small stack, unless the client sent
// nothing more, in which case the connection parks at once. A plain TCP
// connection that stays quiet between packets parks (park.go): a sweeper
// asks it to,
// its reader registers the socket with the server's epoll poller
// (internal/netpark) and returns, and a new reader starts when the client
// sends again, so an idle connection holds no goroutine and no read
// buffer. Hooks run on it, and it owns the session's publishing
// state. Core deliveries are handed by the Deliver
// callback (which must not block) to an outbox; a writer goroutine runs
// while the outbox is not empty and exits when it is, so an idle connection
// costs no goroutine of ours. Writes are coalesced by wireConn and flushed
// when the reader needs input, when a delivery batch ends, or before a hook
// blocks.
//
// Lock order (left before right):
//
//	session.mu -> core locks -> outbox.mu
//	Server.mu and wireConn.mu are taken alone (Server.mu may be taken
//	under session.mu).
//
//	Server.parkMu is taken alone; a wireConn's parking slot
//	(netpark.Slot) -> the poller's lock (netpark.Poller.mu).
//
//	session.pub.acks.mu is taken alone.
//
//	session.q2.mu -> session.mu (qos2QueueLocked).
//
//	The clock's timers (session expiry, will delays) are armed and
//	stopped under Server.mu; their functions run without it (a
//	clock.Fake runs them in the goroutine that advances it) and take
//	Server.mu themselves.
//
//	retainIndex.wmu -> retainIndex.mu, both alone otherwise.
//
// Core callbacks (Deliver, Ready) take only outbox.mu; Cancelled takes
// nothing and defers its work. Network writes never happen under
// session.mu.
package mqtt
