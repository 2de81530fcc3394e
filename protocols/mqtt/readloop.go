package mqtt

import (
	"errors"
	"io"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A connected client's packet loop, and the end of its connection.

// readLoop reads and processes the client's packets until the connection
// ends, then ends the connection's session.
func (s *Server) readLoop(cl client) {
	err := s.readPackets(cl)
	if err == errParked {
		return // the poller, Close or the keep-alive timer has it now
	}
	defer s.conns.Done()
	if wc, ok := cl.wire(); ok {
		s.forgetParking(wc)
	}
	s.endConnection(cl, err)
}

// readPackets is the packet loop. While it waits for input its stack holds
// only itself and the read path; each packet is handled in nextPacket's
// larger frame.
// Between packets the connection may park (park.go): then it returns
// errParked.
func (s *Server) readPackets(cl client) error {
	wc, _ := cl.wire()
	for {
		if cl.closed() {
			// nil after the client's DISCONNECT; the server's reason when
			// it closed the connection (a shutdown, an administrator),
			// which publishes the will [MQTT-3.1.2-8] as a failed read
			// would have.
			return cl.stopCause()
		}
		cl.refreshDeadline()
		var fh packets.FixedHeader
		if err := cl.readFixedHeader(&fh); err != nil {
			if errors.Is(err, errPark) && wc != nil {
				if s.parkNow(wc) {
					return errParked
				}
				wc.deadline = 0 // the read deadline is in the past: set it again
				continue
			}
			return s.packetError(cl, err)
		}
		if err := s.nextPacket(cl, &fh); err != nil {
			return err
		}
		if wc != nil {
			wc.consumed += packetSize(fh.Remaining)
			wc.park.active.Store(true)
		}
	}
}

// nextPacket reads the body of the packet fh starts and processes it.
//
//go:noinline
func (s *Server) nextPacket(cl client, fh *packets.FixedHeader) error {
	pk, err := cl.readPacket(fh)
	if err != nil {
		return s.packetError(cl, err)
	}
	switch pk.FixedHeader.Type {
	case packets.Auth:
		// Only after a CONNECT with an authentication method, which is
		// refused [MQTT-4.12.0-1].
		return s.packetError(cl, packets.ErrProtocolViolation)
	case packets.Publish, packets.Pubrel:
		pk.ProtocolVersion = cl.version()
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
	if err := s.inject(cl, pk); err != nil {
		return s.packetError(cl, err)
	}
	return nil
}

// packetError ends the connection for err. An MQTT 5 client learns the
// reason from a DISCONNECT when err carries a reason code (a malformed or
// oversize packet, a protocol error) [MQTT-4.13.1-1].
func (s *Server) packetError(cl client, err error) error {
	var code packets.Code
	if errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code &&
		cl.version() == 5 && !cl.closed() {
		s.kick(cl, code)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("connection ended", "client", cl.id(), "remote", cl.remote(), "err", err)
	}
	return err
}

// endConnection closes a connection that got past CONNECT and ends or
// keeps its session. err is nil after the client's DISCONNECT.
func (s *Server) endConnection(cl client, err error) {
	cl.stop(err)
	expire := (cl.version() == 5 && cl.sessionExpiry() == 0) ||
		(cl.version() < 5 && cl.cleanStart())
	s.endSession(cl, err, expire)
	if expire {
		s.forgetClient(cl) // [MQTT-4.1.0-2]
	}
}

// endSession closes the session of a connection that ended: err is nil
// after the client's DISCONNECT, and expire says whether the session ends
// with the connection.
func (srv *Server) endSession(cl client, err error, expire bool) {
	s := sessionOf(cl)
	if s == nil {
		return
	}
	if !expire && s.persistent() && cl.version() == 5 {
		// DISCONNECT may have changed the interval [MQTT-3.14.2-2]
		// (mochi's processDisconnect took it, refusing a change from 0).
		s.setExpiry(min(cl.sessionExpiry(), srv.MaxSessionExpiry))
	}
	r := closeReason{end: expire || !s.persistent()}
	// A will is published unless the client sent DISCONNECT
	// [MQTT-3.1.2-10], also when the server closes the connection (a
	// shutdown included) [MQTT-3.1.2-8].
	r.will = err != nil
	s.close(r)
}
