package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/protocols/mqtt"
)

// mqttKeyPrefix keeps the MQTT adapter's records apart from the core's
// definitions in the shared definition store.
const mqttKeyPrefix = "mqtt\x00"

// MQTT returns the broker's MQTT adapter, or nil when MQTT is off.
func (b *Broker) MQTT() *mqtt.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mqtt
}

// startMQTT starts the MQTT listeners (TCP and WebSocket) when configured.
func (b *Broker) startMQTT() error {
	tcp, ws := listening(b.cfg.MQTTListen), listening(b.cfg.MQTTWSListen)
	if !tcp && !ws {
		return nil
	}
	maxPacket := uint32(b.cfg.MQTTMaxPacketSize)
	if n := b.cfg.MaxMessageSize; n > 0 && n+64<<10 < int(maxPacket) {
		maxPacket = uint32(n + 64<<10) // room for the topic and properties
	}
	srv := &mqtt.Server{
		Broker: b.Core, Users: b.Users, Logger: b.log,
		Store:            prefixStore{meta: b.meta, prefix: mqttKeyPrefix},
		Exchange:         b.cfg.MQTTExchange,
		DefaultVhost:     b.cfg.MQTTDefaultVhost,
		MaxPacketSize:    maxPacket,
		MaxSessionExpiry: b.cfg.MQTTMaxSessionExpiry,
		MaxInflight:      uint16(b.cfg.MQTTMaxInflight),
		MaxQueueLength:   b.cfg.MQTTMaxQueueLength,
		AllowAnonymous:   b.cfg.MQTTAllowAnonymous,
		DefaultUser:      b.cfg.MQTTDefaultUser,
		DefaultPass:      b.cfg.MQTTDefaultPass,
	}
	b.mu.Lock()
	b.mqtt = srv
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
			if err := run(l); err != nil && !errors.Is(err, mqtt.ErrServerClosed) {
				b.log.Error(label+" listener stopped", "err", err)
			}
		}()
		return nil
	}
	if tcp {
		if err := serve("mqtt", "MQTT", b.cfg.MQTTListen, srv.Serve); err != nil {
			return err
		}
	}
	if ws {
		if err := serve("mqtt-ws", "MQTT WebSocket", b.cfg.MQTTWSListen, srv.ServeWebSocket); err != nil {
			return err
		}
	}
	return nil
}

func listening(addr string) bool { return addr != "" && addr != config.Off }

// stopMQTT closes the MQTT listeners and sessions.
func (b *Broker) stopMQTT(ctx context.Context) error {
	b.mu.Lock()
	s := b.mqtt
	b.mqtt = nil
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Shutdown(ctx)
}

// prefixStore gives the MQTT adapter its own part of the definition store.
type prefixStore struct {
	meta interface {
		Put(key string, val []byte) error
		Delete(key string) error
		All() map[string][]byte
	}
	prefix string
}

func (p prefixStore) Put(key string, val []byte) error { return p.meta.Put(p.prefix+key, val) }
func (p prefixStore) Delete(key string) error          { return p.meta.Delete(p.prefix + key) }

func (p prefixStore) All() map[string][]byte {
	out := make(map[string][]byte)
	for k, v := range p.meta.All() {
		if rest, ok := strings.CutPrefix(k, p.prefix); ok {
			out[rest] = v
		}
	}
	return out
}
