// Package broker is the composition root: it builds the core, the user
// store and the protocol servers from a configuration and runs them.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/amqp"
	"github.com/unifiedms/ums/protocols/mgmt"
)

// Broker is a running UMS server.
type Broker struct {
	cfg   *config.Config
	log   *slog.Logger
	Core  *core.Broker
	Users *auth.Store
	AMQP  *amqp.Server
	HTTP  *http.Server

	mu        sync.Mutex
	listeners map[string]net.Listener
	wg        sync.WaitGroup
}

// New builds a broker from cfg.
func New(cfg *config.Config, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	users := auth.NewStore()
	if cfg.DefaultUser != "" {
		if err := users.PutUser(cfg.DefaultUser, cfg.DefaultPass, []string{"administrator"}); err != nil {
			return nil, err
		}
		if err := users.SetLoopbackOnly(cfg.DefaultUser, !cfg.DefaultUserAnyHost); err != nil {
			return nil, err
		}
		if err := users.SetPermission(cfg.DefaultUser, "/", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
			return nil, err
		}
	}
	cb := core.NewBroker()
	b := &Broker{
		cfg: cfg, log: log, Core: cb, Users: users,
		AMQP: &amqp.Server{
			Broker: cb, Users: users, Logger: log,
			FrameMax:       uint32(cfg.AMQPFrameMax),
			ChannelMax:     uint16(cfg.AMQPChannelMax),
			Heartbeat:      cfg.AMQPHeartbeat,
			MaxMessageSize: cfg.MaxMessageSize,
			Product:        cfg.AMQPProduct,
		},
		listeners: make(map[string]net.Listener),
	}
	b.HTTP = &http.Server{Handler: (&mgmt.API{Broker: cb, Users: users}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	if cfg.AMQPHeartbeat == 0 {
		b.AMQP.Heartbeat = -1
	}
	return b, nil
}

// Start opens the configured listeners and serves them in the background.
func (b *Broker) Start() error {
	if addr := b.cfg.AMQPListen; addr != config.Off && addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("amqp listener: %w", err)
		}
		b.mu.Lock()
		b.listeners["amqp"] = l
		b.mu.Unlock()
		b.log.Info("AMQP 0-9-1 listening", "addr", l.Addr().String())
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.AMQP.Serve(l); err != nil && !errors.Is(err, amqp.ErrServerClosed) {
				b.log.Error("AMQP listener stopped", "err", err)
			}
		}()
	}
	if addr := b.cfg.HTTPListen; addr != config.Off && addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		b.mu.Lock()
		b.listeners["http"] = l
		b.mu.Unlock()
		b.log.Info("management HTTP listening", "addr", l.Addr().String())
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.HTTP.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.log.Error("HTTP listener stopped", "err", err)
			}
		}()
	}
	for name, addr := range map[string]string{
		"MQTT": b.cfg.MQTTListen, "MQTT WebSocket": b.cfg.MQTTWSListen,
		"STOMP": b.cfg.STOMPListen, "STOMP WebSocket": b.cfg.STOMPWSListen,
	} {
		if addr != config.Off && addr != "" {
			b.log.Info(name+" listener not yet available in this version", "addr", addr)
		}
	}
	return nil
}

// Addr returns the bound address of a listener ("amqp", "http"), or nil.
func (b *Broker) Addr(name string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.listeners[name]; ok {
		return l.Addr()
	}
	return nil
}

// Shutdown closes the listeners and connections (AMQP clients get 320
// CONNECTION_FORCED) and waits until they are done or ctx ends.
func (b *Broker) Shutdown(ctx context.Context) error {
	err := b.AMQP.Shutdown(ctx)
	if herr := b.HTTP.Shutdown(ctx); err == nil {
		err = herr
	}
	b.wg.Wait()
	return err
}
