package mqtt

import (
	"errors"
	"net"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// hook is the bridge between mochi and the core. mochi calls it on the
// client's read goroutine, except OnPacketEncode, which runs on whichever
// goroutine writes a packet. Connecting and disconnecting are the
// adapter's own (Server.serveConn), which calls connect and disconnect.
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

// sessionOf returns the adapter session of a mochi client.
func sessionOf(cl *mochi.Client) *session {
	if wc, ok := cl.Net.Conn.(*wireConn); ok {
		return wc.sess.Load()
	}
	return nil
}

// connect authenticates the client and picks its vhost. A refusal is
// answered here with the precise CONNACK code and ends the connection.
func (h *hook) connect(cl *mochi.Client, pk *packets.Packet) error {
	s := h.srv
	wc, ok := cl.Net.Conn.(*wireConn)
	if !ok {
		return packets.ErrUnspecifiedError
	}
	if s.isClosing() {
		return refuse(cl, packets.ErrServerShuttingDown)
	}
	if pk.Properties.AuthenticationMethod != "" {
		// MQTT 5 enhanced authentication: no method is supported.
		return refuse(cl, packets.ErrBadAuthenticationMethod)
	}
	vhost, user := s.splitUsername(string(pk.Connect.Username))
	pass := string(pk.Connect.Password)
	if len(pk.Connect.Username) == 0 {
		// Anonymous: the default user's rights, and its restrictions
		// (guest only from loopback), as RabbitMQ's MQTT plugin does.
		if !s.AllowAnonymous {
			s.log.Warn("MQTT login refused: anonymous clients are not allowed", "remote", cl.Net.Remote)
			return refuse(cl, packets.ErrNotAuthorized)
		}
		user, pass = s.DefaultUser, s.DefaultPass
	}
	if user == "" {
		return refuse(cl, packets.ErrBadUsernameOrPassword)
	}
	if _, err := s.Users.Authenticate(user, pass, isLoopback(wc.RemoteAddr())); err != nil {
		if errors.Is(err, auth.ErrLoopbackOnly) {
			s.log.Warn("MQTT login refused: user can only connect via localhost", "user", user, "remote", cl.Net.Remote)
			return refuse(cl, packets.ErrNotAuthorized)
		}
		s.log.Warn("MQTT login refused: invalid credentials", "user", user, "remote", cl.Net.Remote)
		return refuse(cl, packets.ErrBadUsernameOrPassword)
	}
	v, ok := s.Broker.Vhost(vhost)
	if !ok || !s.Users.CanAccessVhost(user, vhost) {
		s.log.Warn("MQTT login refused: no access to vhost", "user", user, "vhost", vhost)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	clientID := cl.ID
	if pk.Connect.WillFlag && (!s.Users.Check(user, vhost, auth.Write, s.exchange) ||
		!s.Users.CheckTopic(user, vhost, auth.Write, s.exchange, topicToKey(pk.Connect.WillTopic), auth.TopicVars{ClientID: clientID})) {
		s.log.Warn("MQTT login refused: no write access to the will topic", "user", user, "vhost", vhost, "topic", pk.Connect.WillTopic)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	persistent := s.grantedExpiry(cl.Properties.ProtocolVersion, pk) > 0
	if persistent && !s.canConfigure(user, vhost, queueName(clientID, 1)) {
		s.log.Warn("MQTT login refused: no permission for the session queue", "user", user, "vhost", vhost, "client", clientID)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	sess := newSession(s, cl, wc, v, user, clientID)
	wc.sess.Store(sess)
	// mochi keys clients by id across the whole server; ids are per vhost
	// here, so the key carries the vhost (NUL cannot occur in either).
	if vhost != s.DefaultVhost {
		cl.ID = vhost + "\x00" + clientID
	}
	sess.key = cl.ID
	return nil
}

// refuse answers CONNECT with code and returns it, which ends the
// connection.
func refuse(cl *mochi.Client, code packets.Code) error {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code}
	if cl.Properties.ProtocolVersion == 5 {
		ack.Properties.ReasonString = code.Reason
	}
	_ = cl.WritePacket(ack) // OnPacketEncode maps the code for MQTT 3
	return code
}

// splitUsername reads "vhost:user"; a name without ':' is a user of the
// default vhost.
func (s *Server) splitUsername(name string) (vhost, user string) {
	if v, u, ok := strings.Cut(name, ":"); ok {
		return v, u
	}
	return s.DefaultVhost, name
}

func isLoopback(a net.Addr) bool {
	var ip net.IP
	switch x := a.(type) {
	case *net.TCPAddr:
		ip = x.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return false
		}
		ip = net.ParseIP(host)
	}
	return ip != nil && ip.IsLoopback()
}

// OnACLCheck lets mochi go on with a SUBSCRIBE: permissions are checked
// in the session (applyLocked), where the SUBACK codes are made, and
// PUBLISH never reaches mochi (see inbound.go).
func (h *hook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// disconnect closes the session of a connection that ended: err is nil
// after the client's DISCONNECT, and expire says whether the session ends
// with the connection.
func (h *hook) disconnect(cl *mochi.Client, err error, expire bool) {
	s := sessionOf(cl)
	if s == nil {
		return
	}
	if !expire && s.persistent() && cl.Properties.ProtocolVersion == 5 {
		// DISCONNECT may have changed the interval [MQTT-3.14.2-2]
		// (mochi's processDisconnect took it, refusing a change from 0).
		s.setExpiry(min(cl.Properties.Props.SessionExpiryInterval, h.srv.MaxSessionExpiry))
	}
	r := closeReason{end: expire || !s.persistent()}
	// A will is published unless the client sent DISCONNECT
	// [MQTT-3.1.2-10], also when the server closes the connection (a
	// shutdown included) [MQTT-3.1.2-8].
	r.will = err != nil
	s.close(r)
}

func (h *hook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if s := sessionOf(cl); s != nil {
		s.subscribePacket(&pk)
	}
	return pk
}

func (h *hook) OnUnsubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if s := sessionOf(cl); s != nil {
		s.unsubscribePacket(&pk)
	}
	return pk
}

// OnPacketProcessed settles deliveries the client acknowledged, and after a
// SUBSCRIBE (its SUBACK written) sends the matching retained messages.
func (h *hook) OnPacketProcessed(cl *mochi.Client, pk packets.Packet, _ error) {
	s := sessionOf(cl)
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
		s := sessionOf(cl)
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
		if s := sessionOf(cl); s != nil {
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

// v3ConnackCode maps an MQTT 5 CONNACK reason code onto the MQTT 3.1.1
// return codes.
func v3ConnackCode(c byte) byte {
	switch c {
	case 0x00, 0x01, 0x02, 0x03, 0x04, 0x05:
		return c
	case packets.ErrUnsupportedProtocolVersion.Code:
		return 0x01
	case packets.ErrClientIdentifierNotValid.Code, packets.ErrUnspecifiedError.Code:
		return 0x02
	case packets.ErrBadUsernameOrPassword.Code, packets.ErrMalformedPacket.Code:
		return 0x04
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return 0x05
	}
	return 0x03 // server unavailable
}

// reasonFor maps a core error onto an MQTT 5 reason code.
func reasonFor(err error) packets.Code {
	switch {
	case err == nil:
		return packets.CodeSuccess
	case errors.Is(err, core.ErrAccessRefused):
		return packets.ErrNotAuthorized
	case errors.Is(err, core.ErrResourceLocked):
		return packets.ErrQuotaExceeded
	case errors.Is(err, core.ErrNotFound):
		return packets.ErrImplementationSpecificError
	case errors.Is(err, core.ErrPreconditionFailed):
		return packets.ErrImplementationSpecificError
	case errors.Is(err, core.ErrClosed):
		return packets.ErrUnspecifiedError
	}
	return packets.ErrUnspecifiedError
}
