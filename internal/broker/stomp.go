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

// startSTOMP starts the STOMP listener when configured.
func (b *Broker) startSTOMP() error {
	if !listening(b.cfg.STOMPListen) {
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
	l, err := net.Listen("tcp", b.cfg.STOMPListen)
	if err != nil {
		return fmt.Errorf("stomp listener: %w", err)
	}
	b.mu.Lock()
	b.stomp = srv
	b.listeners["stomp"] = l
	b.mu.Unlock()
	b.log.Info("STOMP listening", "addr", l.Addr().String())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, stomp.ErrServerClosed) {
			b.log.Error("STOMP listener stopped", "err", err)
		}
	}()
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
