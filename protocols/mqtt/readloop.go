package mqtt

import (
	"errors"
	"io"
	"net"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A connected client's packet loop, and the end of its connection.

// readLoop reads and processes the client's packets until the connection
// ends, then ends the connection's session.
func (s *Server) readLoop(cl *mochi.Client) {
	defer s.conns.Done()
	err := s.readPackets(cl)
	s.endConnection(cl, err)
}

// readPackets is the packet loop. While it waits for input its stack holds
// only itself and the read path; each packet is handled in nextPacket's
// larger frame.
func (s *Server) readPackets(cl *mochi.Client) error {
	for {
		if cl.Closed() {
			return nil // DISCONNECT, or closed by the server
		}
		refreshDeadline(cl)
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			return s.packetError(cl, err)
		}
		if err := s.nextPacket(cl, &fh); err != nil {
			return err
		}
	}
}

// nextPacket reads the body of the packet fh starts and processes it.
//
//go:noinline
func (s *Server) nextPacket(cl *mochi.Client, fh *packets.FixedHeader) error {
	pk, err := cl.ReadPacket(fh)
	if err != nil {
		return s.packetError(cl, err)
	}
	switch pk.FixedHeader.Type {
	case packets.Auth:
		// Only after a CONNECT with an authentication method, which is
		// refused [MQTT-4.12.0-1].
		return s.packetError(cl, packets.ErrProtocolViolation)
	case packets.Publish, packets.Pubrel:
		pk.ProtocolVersion = cl.Properties.ProtocolVersion
		sess := sessionOf(cl)
		if pk.FixedHeader.Type == packets.Publish {
			err = s.handlePublish(cl, sess, &pk)
		} else {
			err = s.handlePubrel(cl, sess, &pk)
		}
		if err != nil {
			return s.packetError(cl, err)
		}
		return nil
	}
	if err := s.mochi.InjectPacket(cl, pk); err != nil {
		return s.packetError(cl, err)
	}
	return nil
}

// refreshDeadline moves the connection's deadline to one and a half
// keep-alive intervals from now [MQTT-3.1.2-22]; keep-alive 0 has none.
func refreshDeadline(cl *mochi.Client) {
	var t time.Time
	if ka := cl.State.Keepalive; ka > 0 {
		t = time.Now().Add(time.Duration(ka+ka/2) * time.Second)
	}
	_ = cl.Net.Conn.SetDeadline(t)
}

// packetError ends the connection for err. An MQTT 5 client learns the
// reason from a DISCONNECT when err carries a reason code (a malformed or
// oversize packet, a protocol error) [MQTT-4.13.1-1].
func (s *Server) packetError(cl *mochi.Client, err error) error {
	var code packets.Code
	if errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code &&
		cl.Properties.ProtocolVersion == 5 && !cl.Closed() {
		_ = s.mochi.DisconnectClient(cl, code)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("connection ended", "client", cl.ID, "remote", cl.Net.Remote, "err", err)
	}
	return err
}

// endConnection closes a connection that got past CONNECT and ends or
// keeps its session. err is nil after the client's DISCONNECT.
func (s *Server) endConnection(cl *mochi.Client, err error) {
	cl.Stop(err)
	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
		(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	s.hook.disconnect(cl, err, expire)
	if cur, ok := s.mochi.Clients.Get(cl.ID); ok && cur == cl {
		if expire {
			cl.ClearInflights()
			s.mochi.Clients.Delete(cl.ID) // [MQTT-4.1.0-2]
		}
	}
}
