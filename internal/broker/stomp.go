package broker

import (
	"context"
	"errors"
	"net"

	"github.com/unifiedms/ums/protocols/stomp"
)

// STOMP returns the broker's STOMP adapter, or nil when STOMP is off.
func (b *Broker) STOMP() *stomp.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stomp
}

// startSTOMP starts the STOMP listeners (TCP and WebSocket, plain and TLS) when
// configured.
func (b *Broker) startSTOMP() error {
	secure := b.certs != nil && (listening(b.cfg.STOMPSListen) || listening(b.cfg.STOMPWSSListen))
	if !listening(b.cfg.STOMPListen) && !listening(b.cfg.STOMPWSListen) && !secure {
		return nil
	}
	maxFrame := b.cfg.STOMPMaxFrameSize
	if n := b.cfg.MaxMessageSize; n > 0 && n+64<<10 < maxFrame {
		maxFrame = n + 64<<10 // room for the headers
	}
	srv := &stomp.Server{
		Broker: b.Core, Users: b.Users, Logger: b.log,
		MaxFrameSize:    maxFrame,
		MaxHeaders:      b.cfg.STOMPMaxHeaders,
		MaxHeaderLength: b.cfg.STOMPMaxHeaderLength,
	}
	b.mu.Lock()
	b.stomp = srv
	b.mu.Unlock()
	for _, l := range []struct {
		name, label, addr string
		secure            bool
		run               func(net.Listener) error
	}{
		{"stomp", "STOMP", b.cfg.STOMPListen, false, srv.Serve},
		{"stomps", "STOMP over TLS", b.cfg.STOMPSListen, true, srv.Serve},
		{"stomp-ws", "STOMP WebSocket", b.cfg.STOMPWSListen, false, srv.ServeWebSocket},
		{"stomp-wss", "STOMP secure WebSocket", b.cfg.STOMPWSSListen, true, srv.ServeWebSocket},
	} {
		run := l.run
		if err := b.serve(l.name, l.label, l.addr, l.secure, func(nl net.Listener) error {
			if err := run(nl); !errors.Is(err, stomp.ErrServerClosed) {
				return err
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// stopSTOMP closes the STOMP listener and connections.
func (b *Broker) stopSTOMP(ctx context.Context) error {
	b.mu.Lock()
	s := b.stomp
	b.stomp = nil
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Shutdown(ctx)
}
