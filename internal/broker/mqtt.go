package broker

import (
	"context"
	"errors"
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

// startMQTT starts the MQTT listeners (TCP and WebSocket, plain and TLS)
// when configured.
func (b *Broker) startMQTT() error {
	secure := b.certs != nil && (listening(b.cfg.MQTTSListen) || listening(b.cfg.MQTTWSSListen))
	if !listening(b.cfg.MQTTListen) && !listening(b.cfg.MQTTWSListen) && !secure {
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
	for _, l := range []struct {
		name, label, addr string
		secure            bool
		run               func(net.Listener) error
	}{
		{"mqtt", "MQTT", b.cfg.MQTTListen, false, srv.Serve},
		{"mqtts", "MQTT over TLS", b.cfg.MQTTSListen, true, srv.Serve},
		{"mqtt-ws", "MQTT WebSocket", b.cfg.MQTTWSListen, false, srv.ServeWebSocket},
		{"mqtt-wss", "MQTT secure WebSocket", b.cfg.MQTTWSSListen, true, srv.ServeWebSocket},
	} {
		run := l.run
		if err := b.serve(l.name, l.label, l.addr, l.secure, func(nl net.Listener) error {
			if err := run(nl); !errors.Is(err, mqtt.ErrServerClosed) {
				return err
			}
			return nil
		}); err != nil {
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
