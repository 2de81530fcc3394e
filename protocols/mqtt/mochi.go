package mqtt

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Everything the adapter calls in mochi-mqtt is in this file, so that an
// upgrade of mochi is checked here: the embedded server and its hook, the
// client (codec, negotiated properties, the packet-level state mochi keeps
// for it) and the construction of packets. The rest of the package uses
// mochi's packet types as data only (packets.Packet, Properties, Code, the
// packet type and reason code constants); see doc.go.

// mochiServer is the embedded mochi server, part of Server.
type mochiServer struct {
	mochi     *mochi.Server
	hook      *hook
	mochiStop sync.Once

	// subsSink is every client's subscription table (newClient).
	subsSink *mochi.Subscriptions
}

// startMochi builds and starts the embedded mochi server. Its own
// subscription index, retained store and fan-out are not used.
func (s *Server) startMochi() error {
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = s.MaxPacketSize
	caps.MaximumSessionExpiryInterval = s.MaxSessionExpiry
	caps.MaximumMessageExpiryInterval = 0 // expiry is the core's business
	caps.MaximumClientWritesPending = 1   // mochi's own fan-out is not used
	caps.MaximumInflight = s.MaxInflight
	caps.TopicAliasMaximum = s.TopicAliasMaximum
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	m := mochi.New(&mochi.Options{
		Capabilities: caps,
		// wireConn batches socket reads in a borrowed buffer (park.go).
		ClientNetReadBufferSize: mqttReadBuffer,
		// mochi warns about every client's protocol slip and short
		// keep-alive; those are debug information for a broker operator.
		Logger: slog.New(demoteHandler{s.log.Handler()}),
		// $SYS statistics are not published: every topic goes through the
		// core, and mochi's counters would describe only half of the
		// traffic. The interval (seconds) is effectively never.
		SysTopicResendInterval: 1 << 32,
	})
	s.subsSink = mochi.NewSubscriptions()
	s.hook = &hook{srv: s}
	if err := m.AddHook(s.hook, nil); err != nil {
		return err
	}
	if err := m.Serve(); err != nil {
		return err
	}
	// Serve published one round of $SYS topics as retained messages in
	// mochi's own index; drop them so they never reach a subscriber.
	for topic := range m.Topics.Retained.GetAll() {
		m.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
	s.mochi = m
	return nil
}

// closeMochi stops the embedded server, once.
func (s *Server) closeMochi() {
	s.mochiStop.Do(func() { _ = s.mochi.Close() })
}

// demoteHandler logs mochi's info and warning records at debug level.
type demoteHandler struct{ slog.Handler }

func (h demoteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(l))
}

func (h demoteHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h demoteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return demoteHandler{h.Handler.WithAttrs(as)}
}

func (h demoteHandler) WithGroup(name string) slog.Handler {
	return demoteHandler{h.Handler.WithGroup(name)}
}

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}

// --- the client ---

// client is a connection as mochi knows it: its packet codec, what CONNECT
// negotiated, and the packet-level state mochi keeps for it (QoS 2
// handshakes in its in-flight table, topic aliases).
type client struct{ m *mochi.Client }

// newClient makes the mochi client of a new connection.
func (s *Server) newClient(wc *wireConn, listener string) client {
	m := s.mochi.NewClient(wc, listener, "", false)
	// mochi enters each SUBSCRIBE's filters in the client's own table,
	// which nothing reads (subscriptions live in the core; the hook
	// deletes them again once SUBACK is out, OnPacketProcessed): one
	// table serves every client, sparing each idle one 80 bytes.
	m.State.Subscriptions = s.subsSink
	return client{m}
}

// sessionOf returns the adapter session of a client.
func sessionOf(cl client) *session {
	if wc, ok := cl.wire(); ok {
		return wc.sess.Load()
	}
	return nil
}

func (c client) wire() (*wireConn, bool) {
	wc, ok := c.m.Net.Conn.(*wireConn)
	return wc, ok
}

// id is mochi's client id: the client id, qualified by a non-default
// vhost once login set it.
func (c client) id() string      { return c.m.ID }
func (c client) setID(id string) { c.m.ID = id }
func (c client) remote() string  { return c.m.Net.Remote }
func (c client) version() byte   { return c.m.Properties.ProtocolVersion }
func (c client) closed() bool    { return c.m.Closed() }

// stopCause is why a closed client stopped: nil after its DISCONNECT
// (mochi's processDisconnect stops it with CodeDisconnect), else the
// reason the server or a failed read gave.
func (c client) stopCause() error {
	err := c.m.StopCause()
	if err == nil || err == error(packets.CodeDisconnect) {
		return nil
	}
	return err
}
func (c client) stop(err error)   { c.m.Stop(err) }
func (c client) cleanStart() bool { return c.m.Properties.Clean }

// The client's MQTT 5 CONNECT (and DISCONNECT) properties.
func (c client) receiveMaximum() uint16    { return c.m.Properties.Props.ReceiveMaximum }
func (c client) maxPacketSize() uint32     { return c.m.Properties.Props.MaximumPacketSize }
func (c client) topicAliasMaximum() uint16 { return c.m.Properties.Props.TopicAliasMaximum }
func (c client) sessionExpiry() uint32     { return c.m.Properties.Props.SessionExpiryInterval }

// refreshDeadline moves the connection's deadline to one and a half
// keep-alive intervals from now [MQTT-3.1.2-22]; keep-alive 0 has none.
func (c client) refreshDeadline() {
	var t time.Time
	if ka := c.m.State.Keepalive; ka > 0 {
		t = time.Now().Add(time.Duration(ka) * 1500 * time.Millisecond)
	}
	_ = c.m.Net.Conn.SetDeadline(t)
}

// --- the codec ---

func (c client) readFixedHeader(fh *packets.FixedHeader) error { return c.m.ReadFixedHeader(fh) }

func (c client) readPacket(fh *packets.FixedHeader) (packets.Packet, error) {
	return c.m.ReadPacket(fh)
}

// parseConnect takes CONNECT's client id, protocol version, properties and
// will into the client. Its topic alias tables are dropped and made on
// first use (outboundAlias, inboundAlias): only MQTT 5 clients that
// accept or send aliases need them, and on every idle connection they
// would cost about 200 bytes.
//
// mochi's decoder leaves strings and byte slices pointing into the
// packet's body, so the client id and the user name it keeps would hold
// all of CONNECT (credentials included) for the life of the connection:
// the id is copied, and the user name, which only mochi's own
// authentication hooks (not used) read, is dropped (login reads the
// packet).
func (c client) parseConnect(listener string, pk packets.Packet) {
	c.m.ParseConnect(listener, pk)
	c.m.State.TopicAliases = mochi.TopicAliases{}
	c.m.Properties.Username = nil
	c.m.ID = strings.Clone(c.m.ID)
}

// write encodes pk (through the hook's OnPacketEncode) and writes it.
func (c client) write(pk packets.Packet) error { return c.m.WritePacket(pk) }

// checkConnect applies the spec's rules on CONNECT's fields.
func checkConnect(pk *packets.Packet) packets.Code { return pk.ConnectValidate() }

// checkPublish applies the spec's rules on a client's PUBLISH.
func (s *Server) checkPublish(pk *packets.Packet) packets.Code {
	return pk.PublishValidate(s.mochi.Options.Capabilities.TopicAliasMaximum)
}

// validFilter reports whether f is a legal topic filter.
func validFilter(f string) bool { return mochi.IsValidFilter(f, false) }

// newPublish builds a PUBLISH.
func newPublish(topic string, payload []byte, qos byte, retain, dup bool) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain, Dup: dup},
		TopicName: topic, Payload: payload}
}

// newAck builds a PUBACK, PUBREC or PUBCOMP (typ) for packet id.
func newAck(typ byte, id uint16, code packets.Code) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id, ReasonCode: code.Code}
}

// refuse answers CONNECT with code and returns it, which ends the
// connection.
func refuse(cl client, code packets.Code) error {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code}
	if cl.version() == 5 {
		ack.Properties.ReasonString = code.Reason
	}
	_ = cl.write(ack) // OnPacketEncode maps the code for MQTT 3
	return code
}

// takeWill moves the client's will out of mochi, so that only the core
// publishes it: the PUBLISH it becomes, with all its MQTT 5 properties,
// and its delay in seconds.
func (c client) takeWill(pk *packets.Packet) (will packets.Packet, delay uint32, ok bool) {
	w := &c.m.Properties.Will
	if atomic.LoadUint32(&w.Flag) == 0 {
		return will, 0, false
	}
	wp := &pk.Connect.WillProperties
	will = newPublish(w.TopicName, w.Payload, w.Qos, w.Retain, false)
	will.Properties = packets.Properties{
		ContentType:           wp.ContentType,
		ResponseTopic:         wp.ResponseTopic,
		CorrelationData:       wp.CorrelationData,
		PayloadFormat:         wp.PayloadFormat,
		PayloadFormatFlag:     wp.PayloadFormatFlag,
		MessageExpiryInterval: wp.MessageExpiryInterval,
		User:                  wp.User,
	}
	delay = w.WillDelayInterval
	atomic.StoreUint32(&w.Flag, 0)
	return will, delay, true
}

// --- mochi's packet-level state ---

// The server's receive maximum, announced in CONNACK.
func (s *Server) receiveMaximum() uint16 { return s.mochi.Options.Capabilities.ReceiveMaximum }

// trackQoS2 enters a QoS 2 delivery in mochi's in-flight table: mochi
// answers the client's PUBREC from it.
func (c client) trackQoS2(pk packets.Packet) { c.m.State.Inflight.Set(pk) }

// inflightUsed reports whether mochi's in-flight table holds packet id.
func (c client) inflightUsed(id uint16) bool {
	_, used := c.m.State.Inflight.Get(id)
	return used
}

// forgetInflight removes packet id from mochi's in-flight table.
func (c client) forgetInflight(id uint16) { c.m.State.Inflight.Delete(id) }

// forgetDelivery removes packet id from mochi's in-flight table when it
// holds a delivery (a PUBLISH) under it.
func (c client) forgetDelivery(id uint16) {
	if pk, ok := c.m.State.Inflight.Get(id); ok && pk.FixedHeader.Type == packets.Publish {
		c.m.State.Inflight.Delete(id)
	}
}

// resendInflight sends again what mochi's in-flight table holds (a resumed
// session's QoS 2 handshakes).
func (c client) resendInflight() error { return c.m.ResendInflightMessages(true) }

// outboundAlias returns the topic alias for a delivery's topic (0: none)
// and whether the client knows it already.
// REQUIRES: the session's mu (deliveries are numbered under it).
func (c client) outboundAlias(topic string) (uint16, bool) {
	a := &c.m.State.TopicAliases
	if a.Outbound == nil {
		a.Outbound = mochi.NewOutboundTopicAliases(c.m.Properties.Props.TopicAliasMaximum)
	}
	return a.Outbound.Set(topic)
}

// inboundAlias resolves the client's topic alias, setting it when topic is
// not empty; "" means the alias is unknown. Read goroutine.
func (s *Server) inboundAlias(c client, alias uint16, topic string) string {
	a := &c.m.State.TopicAliases
	if a.Inbound == nil {
		a.Inbound = mochi.NewInboundTopicAliases(s.mochi.Options.Capabilities.TopicAliasMaximum)
	}
	return a.Inbound.Set(alias, topic)
}

// inheritInflight carries the packet-level state of a resumed session (QoS
// 2 handshakes in progress, which mochi tracks) over from the previous
// connection with the same client id, and forgets it for a clean start:
// prev, the live connection establish took over (and closed), or else
// the last connection of the stored session (Server.offline).
func (s *Server) inheritInflight(c, prev client, pk *packets.Packet) {
	cl, old := c.m, prev.m
	s.mu.Lock()
	if o, ok := s.offline[cl.ID]; ok {
		delete(s.offline, cl.ID) // this connection is the session's now
		if old == nil {
			old = o.m
		}
	}
	s.mu.Unlock()
	if old == nil {
		return
	}
	if pk.Connect.Clean || (old.Properties.Clean && old.Properties.ProtocolVersion < 5) {
		old.ClearInflights()
		return
	}
	if old.State.Inflight.Len() > 0 {
		cl.State.Inflight = old.State.Inflight.Clone() // [MQTT-3.1.2-5]
		cl.State.Inflight.ResetReceiveQuota(int32(s.mochi.Options.Capabilities.ReceiveMaximum))
		cl.State.Inflight.ResetSendQuota(int32(cl.Properties.Props.ReceiveMaximum))
	}
	old.ClearInflights()
}

// --- the server's side of a connection ---

// The adapter keeps its clients [MQTT-4.1.0-1], not mochi's client list:
// mochi walks that list every second, twice, copying it each time and
// every client's in-flight table once (expiry of clients and in-flight
// messages, both the adapter's business); at 19,000 idle connections that
// was most of an idle server's CPU, and mochi's packet processing does not
// use it. A connected client is its session's (Server.sessions); the
// client of a persistent session whose connection ended stays in
// Server.offline (session.close), for its in-flight state, until the next
// connection takes it (inheritInflight) or the session expires
// (forgetExpired).

// forgetClient drops an ended session's in-flight state, unless a newer
// connection took its client id over [MQTT-4.1.0-2].
func (s *Server) forgetClient(cl client) {
	key := cl.id()
	s.mu.Lock()
	cur := s.sessions[key]
	taken := cur != nil && cur.cl != cl
	if o, ok := s.offline[key]; ok && o == cl {
		delete(s.offline, key)
	}
	s.mu.Unlock()
	if !taken {
		cl.m.ClearInflights()
	}
}

// forgetExpired drops the client of a persistent session that expired
// (key: mochi client id).
func (s *Server) forgetExpired(key string) {
	s.mu.Lock()
	cl, ok := s.offline[key]
	delete(s.offline, key)
	s.mu.Unlock()
	if ok {
		cl.m.ClearInflights()
	}
}

// sendConnack answers CONNECT with code.
func (s *Server) sendConnack(cl client, code packets.Code, present bool) error {
	return s.mochi.SendConnack(cl.m, code, present, nil)
}

// inject hands a packet the adapter does not handle itself to mochi's
// packet processing, whose hooks bridge to the core.
func (s *Server) inject(cl client, pk packets.Packet) error { return s.mochi.InjectPacket(cl.m, pk) }

// kick disconnects a client from the server side: MQTT 5 clients get a
// DISCONNECT with code; MQTT 3 has no server DISCONNECT, so the
// connection just closes.
func (s *Server) kick(cl client, code packets.Code) {
	if cl.version() == 5 {
		_ = s.mochi.DisconnectClient(cl.m, code)
		return
	}
	cl.stop(code)
}

// disconnectAll ends every connected client's connection.
func (s *Server) disconnectAll() {
	s.mu.Lock()
	open := make([]client, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if !sess.cl.closed() {
			open = append(open, sess.cl)
		}
	}
	s.mu.Unlock()
	for _, cl := range open {
		s.kick(cl, packets.ErrServerShuttingDown)
	}
}

// clientCount is the number of clients the adapter keeps (for tests).
func (s *Server) clientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions) + len(s.offline)
}

// --- the hook ---

// hook is the bridge between mochi and the core. mochi calls it on the
// client's read goroutine, except OnPacketEncode, which runs on whichever
// goroutine writes a packet. Connecting and disconnecting are the
// adapter's own (Server.serveConn and Server.endConnection, which call
// login and endSession).
type hook struct {
	mochi.HookBase
	srv *Server
}

func (h *hook) ID() string { return "ums-core-bridge" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnACLCheck, mochi.OnPacketEncode, mochi.OnPacketProcessed,
		mochi.OnSubscribe, mochi.OnUnsubscribe:
		return true
	}
	return false
}

// OnACLCheck lets mochi go on with a SUBSCRIBE: permissions are checked
// in the session (applyLocked), where the SUBACK codes are made, and
// PUBLISH never reaches mochi (see inbound.go).
func (h *hook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *hook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if s := sessionOf(client{cl}); s != nil {
		s.subscribePacket(&pk)
	}
	return pk
}

func (h *hook) OnUnsubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if s := sessionOf(client{cl}); s != nil {
		s.unsubscribePacket(&pk)
	}
	return pk
}

// OnPacketProcessed settles deliveries the client acknowledged, and after a
// SUBSCRIBE (its SUBACK written) sends the matching retained messages.
func (h *hook) OnPacketProcessed(cl *mochi.Client, pk packets.Packet, _ error) {
	s := sessionOf(client{cl})
	if s == nil {
		return
	}
	switch pk.FixedHeader.Type {
	case packets.Puback:
		s.settle(pk.PacketID, pk.ReasonCode >= packets.ErrUnspecifiedError.Code)
	case packets.Pubrec:
		// The client owns a QoS 2 message once it sent PUBREC; mochi
		// finishes the handshake (PUBREL/PUBCOMP) from its in-flight table.
		s.settle(pk.PacketID, pk.ReasonCode >= packets.ErrUnspecifiedError.Code)
	case packets.Subscribe:
		// Subscriptions live in the core; mochi's own index would only
		// duplicate them and is never used for delivery.
		for _, f := range pk.Filters {
			h.srv.mochi.Topics.Unsubscribe(f.Filter, cl.ID)
			cl.State.Subscriptions.Delete(f.Filter)
		}
		s.sendRetained()
	}
}

// OnPacketEncode puts the adapter's answers into packets mochi builds
// (deliveries are encoded by the adapter itself, see appendPublish):
// session present and limits in CONNACK (and MQTT 3 return codes), and the
// reason codes of SUBACK and UNSUBACK.
func (h *hook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		switch cl.Properties.ProtocolVersion {
		case 3, 4:
			pk.ReasonCode = v3ConnackCode(pk.ReasonCode)
		case 5:
		default:
			// A level we do not speak: answer in MQTT 3.1.1 terms
			// [MQTT-3.1.2-2].
			pk.ReasonCode, pk.ProtocolVersion = 0x01, 4
		}
		s := sessionOf(client{cl})
		if s == nil || pk.ReasonCode != 0 {
			pk.SessionPresent = false
			return pk
		}
		pk.SessionPresent = s.present
		if cl.Properties.ProtocolVersion == 5 {
			pk.Properties.MaximumPacketSize = h.srv.MaxPacketSize
			pk.Properties.TopicAliasMaximum = h.srv.TopicAliasMaximum
		}
	case packets.Suback, packets.Unsuback:
		if s := sessionOf(client{cl}); s != nil {
			if codes, ok := s.takeAckCodes(pk.FixedHeader.Type, pk.PacketID); ok {
				pk.ReasonCodes = codes
				if cl.Properties.ProtocolVersion < 5 {
					pk.Properties = packets.Properties{}
				}
			}
		}
	}
	return pk
}
