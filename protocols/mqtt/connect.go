package mqtt

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A new connection: the CONNECT handshake, up to the CONNACK and the start
// of the session.

// connectTimeout is how long a new connection may take to send CONNECT.
const connectTimeout = 10 * time.Second

// serveConn runs the CONNECT handshake of a new connection on the calling
// goroutine (for TCP a handshaker, listen.go), then parks the connection
// when the client sent nothing more (park.go), or else hands it to a
// fresh goroutine that reads its packets (readLoop), and returns. The handshake runs deep (authentication,
// session setup in the core) and leaves a large stack behind; the reader
// starts small, and since it waits for input with only a few small frames
// on its stack, the runtime shrinks it back after every burst of work. An
// idle connection so costs a few KiB of stack, not the 16 KiB or more of a
// goroutine that once ran the handshake.
//
// The handshake and the read loop follow mochi's own (attachClient); only
// CONNECT handling is the adapter's, every later packet goes to mochi's
// packet processing (InjectPacket), whose hooks bridge to the core.
func (s *Server) serveConn(listener string, c net.Conn) {
	wc := newWireConn(c)
	cl := s.newClient(wc, listener)
	s.initParking(cl, wc)
	if err := s.handshake(cl, listener, wc); err != nil {
		cl.stop(err)
		if !errors.Is(err, io.EOF) {
			s.log.Debug("connection refused", "remote", c.RemoteAddr().String(), "err", err)
		}
		s.conns.Done()
		return
	}
	s.trackParking(wc)
	if s.parkAfterConnect(cl, wc) {
		return // the poller has it, with this connection's count in s.conns
	}
	go s.readLoop(cl) // inherits this connection's count in s.conns
}

// handshake reads CONNECT and answers it. On success the session is
// established and its CONNACK written; on failure the client got the
// CONNACK refusal (when one is due) and nothing of it remains.
func (s *Server) handshake(cl client, listener string, wc *wireConn) error {
	_ = wc.SetDeadline(time.Now().Add(connectTimeout))
	var fh packets.FixedHeader
	if err := cl.readFixedHeader(&fh); err != nil {
		return err
	}
	if fh.Type != packets.Connect {
		return packets.ErrProtocolViolationRequireFirstConnect // [MQTT-3.1.0-1]
	}
	pk, err := cl.readPacket(&fh)
	if err != nil {
		return err
	}
	wc.consumed += packetSize(fh.Remaining)
	if !knownProtocolName(&pk) {
		// Not MQTT: no CONNACK, the connection just closes
		// [MQTT-3.1.2-1]; MQTT 5 allows this too (or CONNACK 0x84).
		return packets.ErrProtocolViolationProtocolName
	}
	cl.parseConnect(listener, pk)
	if code := validateConnect(cl, &pk); code != packets.CodeSuccess {
		_ = s.sendConnack(cl, code, false) // [MQTT-3.2.2-7] [MQTT-3.1.4-6]
		return code
	}
	if err := s.login(cl, &pk); err != nil {
		return err
	}
	cl.refreshDeadline()
	sess := sessionOf(cl)
	resume, prev := sess.establish(&pk) // the session is known from here [MQTT-4.1.0-1]
	s.inheritInflight(cl, prev, &pk)
	if err := s.sendConnack(cl, packets.CodeSuccess, sess.present); err != nil {
		s.endConnection(cl, err)
		return err
	}
	if sess.present {
		if err := cl.resendInflight(); err != nil {
			s.endConnection(cl, err)
			return err
		}
	}
	if err := sess.start(resume); err != nil {
		sess.logger().Error("MQTT session setup failed", "err", err)
		s.kick(cl, reasonFor(err))
		s.endConnection(cl, err)
		return err
	}
	if sess.present {
		sess.restoreQoS2()
	}
	return nil
}

// knownProtocolName reports whether CONNECT names the protocol MQTT:
// "MQTT", or "MQIsdp" for MQTT 3.1 (level 3).
func knownProtocolName(pk *packets.Packet) bool {
	switch string(pk.Connect.ProtocolName) {
	case "MQTT":
		return true
	case "MQIsdp":
		return pk.ProtocolVersion == 3
	}
	return false
}

// validateConnect checks what the packet decoder does not: the spec's rules
// on CONNECT's fields and an empty client id asking for a kept session
// (refused by MQTT 3.1.1 [MQTT-3.1.3-8]).
func validateConnect(cl client, pk *packets.Packet) packets.Code {
	if code := checkConnect(pk); code != packets.CodeSuccess {
		return code
	}
	if cl.version() < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "" {
		return packets.ErrUnspecifiedError // CONNACK 0x02 in MQTT 3.1.1
	}
	return packets.CodeSuccess
}
