package broker

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/unifiedms/ums/protocols/stomp"
)

// STOMP returns the broker's STOMP adapter, or nil when STOMP is off.
func (b *Broker) STOMP() *stomp.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stomp
}

// startSTOMP starts the STOMP listeners (TCP and WebSocket) when
// configured.
func (b *Broker) startSTOMP() error {
	tcp, ws := listening(b.cfg.STOMPListen), listening(b.cfg.STOMPWSListen)
	if !tcp && !ws {
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
	serve := func(name, label, addr string, run func(net.Listener) error) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", name, err)
		}
		b.mu.Lock()
		b.listeners[name] = l
		b.mu.Unlock()
		b.log.Info(label+" listening", "addr", l.Addr().String())
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := run(l); err != nil && !errors.Is(err, stomp.ErrServerClosed) {
				b.log.Error(label+" listener stopped", "err", err)
			}
		}()
		return nil
	}
	if tcp {
		if err := serve("stomp", "STOMP", b.cfg.STOMPListen, srv.Serve); err != nil {
			return err
		}
	}
	if ws {
		if err := serve("stomp-ws", "STOMP WebSocket", b.cfg.STOMPWSListen, srv.ServeWebSocket); err != nil {
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
