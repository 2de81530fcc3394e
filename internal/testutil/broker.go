// Package testutil holds helpers for tests that need a real server.
//
// StartBroker runs the whole broker (internal/broker, the composition
// root) with its listeners on loopback ports chosen by the operating
// system and its data in a temporary directory, and shuts it down when the
// test ends. It imports internal/broker, so packages that internal/broker
// imports (core, protocols/*) cannot use it from their in-package tests;
// only tests may import this package (test/imports_test.go checks that).
package testutil

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/clock"
)

// Listener names, as broker.Broker.Addr knows them.
const (
	AMQP    = "amqp"
	MQTT    = "mqtt"
	MQTTWS  = "mqtt-ws"
	HTTP    = "http"
	STOMP   = "stomp"
	STOMPWS = "stomp-ws"

	// The TLS listeners open only with a certificate: set
	// Config.TLSCertFile and TLSKeyFile with WithConfig.
	AMQPS    = "amqps"
	MQTTS    = "mqtts"
	MQTTWSS  = "mqtt-wss"
	HTTPS    = "https"
	STOMPS   = "stomps"
	STOMPWSS = "stomp-wss"
)

// shutdownTimeout bounds Stop.
const shutdownTimeout = 10 * time.Second

// Broker is a running broker started by StartBroker.
type Broker struct {
	*broker.Broker
	Config  *config.Config // the configuration it runs with
	DataDir string

	AMQPURL     string // amqp://guest:guest@127.0.0.1:port/; "" when AMQP is off
	MQTTAddr    string // 127.0.0.1:port; "" when MQTT is off
	MQTTWSAddr  string // 127.0.0.1:port; "" when MQTT over WebSocket is off
	HTTPURL     string // http://127.0.0.1:port; "" when the management API is off
	STOMPAddr   string // 127.0.0.1:port; "" when STOMP is off
	STOMPWSAddr string // 127.0.0.1:port; "" when STOMP over WebSocket is off

	AMQPSURL     string // amqps://guest:guest@127.0.0.1:port/; "" when AMQP over TLS is off
	MQTTSAddr    string // 127.0.0.1:port; "" when MQTT over TLS is off
	MQTTWSSAddr  string // 127.0.0.1:port; "" when MQTT over secure WebSocket is off
	HTTPSURL     string // https://127.0.0.1:port; "" when the management API over TLS is off
	STOMPSAddr   string // 127.0.0.1:port; "" when STOMP over TLS is off
	STOMPWSSAddr string // 127.0.0.1:port; "" when STOMP over secure WebSocket is off

	tb             testing.TB
	ignoreShutdown bool
	stopOnce       sync.Once
}

type options struct {
	protocols      []string
	dataDir        string
	deps           broker.Deps
	edits          []func(*config.Config)
	log            *slog.Logger
	ignoreShutdown bool
}

// Option changes how StartBroker builds the broker.
type Option func(*options)

// WithProtocols turns on the listeners named (AMQP, MQTT, MQTTWS, HTTP,
// STOMP, STOMPWS and their TLS counterparts) on 127.0.0.1:0 and every other one off. Without it only
// AMQP listens.
func WithProtocols(names ...string) Option {
	return func(o *options) { o.protocols = append(o.protocols, names...) }
}

// WithDataDir makes the broker keep its data in dir, which outlives it (so
// a test can restart a broker on the same data). The default is a new
// t.TempDir().
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithFS makes the stores write to fsys (store.NewMemFS() for a file system
// whose writes and fsyncs a test can fail or hold, and crash).
func WithFS(fsys store.FS) Option { return func(o *options) { o.deps.FS = fsys } }

// WithClock makes the broker take its time from c (a clock.Fake for TTLs,
// expiries and retries without sleeping).
func WithClock(c clock.Clock) Option { return func(o *options) { o.deps.Clock = c } }

// WithConfig edits the configuration after the listeners and the data
// directory are set; edits apply in order.
func WithConfig(edit func(*config.Config)) Option {
	return func(o *options) { o.edits = append(o.edits, edit) }
}

// WithLogger replaces the default logger (Logger()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// IgnoreShutdownError makes Stop ignore a failed shutdown: a test that
// failed a write or an fsync leaves a poisoned store behind on purpose.
func IgnoreShutdownError() Option { return func(o *options) { o.ignoreShutdown = true } }

// Logger is the broker log for tests: discarded unless UMS_TEST_LOG is set,
// then written to stderr at debug level.
func Logger() *slog.Logger {
	var out io.Writer = io.Discard
	if os.Getenv("UMS_TEST_LOG") != "" {
		out = os.Stderr
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// StartBroker builds and starts a broker; it stops when the test ends
// (Stop stops it earlier). A failure to build or start it fails the test.
func StartBroker(tb testing.TB, opts ...Option) *Broker {
	tb.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.protocols == nil {
		o.protocols = []string{AMQP}
	}
	if o.dataDir == "" {
		o.dataDir = tb.TempDir() // removed after Stop: cleanups run last-in first-out
	}
	if o.log == nil {
		o.log = Logger()
	}
	cfg := config.Default()
	cfg.DataDir = o.dataDir
	// Failed logins are answered at once, so that the many tests of
	// refused logins do not wait a second each; tests of the delay set
	// LoginFailureDelay with WithConfig.
	cfg.LoginFailureDelay = 0
	listeners := map[string]*string{
		AMQP: &cfg.AMQPListen, MQTT: &cfg.MQTTListen, MQTTWS: &cfg.MQTTWSListen,
		HTTP: &cfg.HTTPListen, STOMP: &cfg.STOMPListen, STOMPWS: &cfg.STOMPWSListen,
		AMQPS: &cfg.AMQPSListen, MQTTS: &cfg.MQTTSListen, MQTTWSS: &cfg.MQTTWSSListen,
		HTTPS: &cfg.HTTPSListen, STOMPS: &cfg.STOMPSListen, STOMPWSS: &cfg.STOMPWSSListen,
	}
	for _, addr := range listeners {
		*addr = config.Off
	}
	for _, name := range o.protocols {
		addr, ok := listeners[name]
		if !ok {
			tb.Fatalf("testutil: unknown listener %q", name)
		}
		*addr = "127.0.0.1:0"
	}
	for _, edit := range o.edits {
		edit(cfg)
	}
	bb, err := broker.NewWith(cfg, o.log, o.deps)
	if err != nil {
		tb.Fatalf("broker: %v", err)
	}
	b := &Broker{Broker: bb, Config: cfg, DataDir: cfg.DataDir, tb: tb, ignoreShutdown: o.ignoreShutdown}
	if err := bb.Start(); err != nil {
		b.ignoreShutdown = true // close what did start; the start error is the one to report
		b.Stop()
		tb.Fatalf("broker start: %v", err)
	}
	tb.Cleanup(b.Stop)
	if a := bb.Addr(AMQP); a != nil {
		b.AMQPURL = "amqp://guest:guest@" + a.String() + "/"
	}
	if a := bb.Addr(MQTT); a != nil {
		b.MQTTAddr = a.String()
	}
	if a := bb.Addr(MQTTWS); a != nil {
		b.MQTTWSAddr = a.String()
	}
	if a := bb.Addr(STOMP); a != nil {
		b.STOMPAddr = a.String()
	}
	if a := bb.Addr(STOMPWS); a != nil {
		b.STOMPWSAddr = a.String()
	}
	if a := bb.Addr(HTTP); a != nil {
		b.HTTPURL = "http://" + a.String()
	}
	if a := bb.Addr(AMQPS); a != nil {
		b.AMQPSURL = "amqps://guest:guest@" + a.String() + "/"
	}
	if a := bb.Addr(MQTTS); a != nil {
		b.MQTTSAddr = a.String()
	}
	if a := bb.Addr(MQTTWSS); a != nil {
		b.MQTTWSSAddr = a.String()
	}
	if a := bb.Addr(STOMPS); a != nil {
		b.STOMPSAddr = a.String()
	}
	if a := bb.Addr(STOMPWSS); a != nil {
		b.STOMPWSSAddr = a.String()
	}
	if a := bb.Addr(HTTPS); a != nil {
		b.HTTPSURL = "https://" + a.String()
	}
	return b
}

// Stop shuts the broker down (at most once) and fails the test if that
// fails, unless IgnoreShutdownError was given.
func (b *Broker) Stop() {
	b.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil && !b.ignoreShutdown {
			b.tb.Errorf("shutdown: %v", err)
		}
	})
}
