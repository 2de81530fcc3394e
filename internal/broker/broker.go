// Package broker is the composition root: it builds the core, the user
// store and the protocol servers from a configuration and runs them.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/internal/metrics"
	"github.com/unifiedms/ums/protocols/amqp"
	"github.com/unifiedms/ums/protocols/mgmt"
	"github.com/unifiedms/ums/protocols/mgmt/console"
	"github.com/unifiedms/ums/protocols/mqtt"
	"github.com/unifiedms/ums/protocols/stomp"
)

// Broker is a running UMS server.
type Broker struct {
	cfg   *config.Config
	log   *slog.Logger
	Core  *core.Broker
	Users *auth.Store
	AMQP  *amqp.Server
	HTTP  *http.Server
	// Metrics is the registry /metrics serves; MetricsHTTP serves it on a
	// listener of its own when --metrics-listen is set (else nil).
	Metrics     *metrics.Metrics
	MetricsHTTP *http.Server
	// PprofHTTP serves Go's profiler on --pprof-listen (nil when off).
	PprofHTTP *http.Server

	msgs   *store.Log
	meta   *store.Meta
	notify *notifyParts
	certs  *certHolder    // nil without --tls-cert-file
	hup    chan os.Signal // SIGHUP reloads certs

	mu        sync.Mutex
	mqtt      *mqtt.Server  // nil when MQTT is off
	stomp     *stomp.Server // nil when STOMP is off
	listeners map[string]net.Listener
	limited   map[string]*connlimit.Listener // listeners with --max-connections
	wg        sync.WaitGroup
	closeOnce sync.Once
	stopWatch chan struct{}
	stopOnce  sync.Once

	// state is what readiness reports: stateStarting until Start has
	// opened every listener, then stateServing until Shutdown begins.
	state atomic.Int32
}

// Broker states, for readiness.
const (
	stateStarting int32 = iota
	stateServing
	stateStopping
)

// Ready reports nil while the broker serves: recovery is done (New) and
// every listener is open (Start), and Shutdown has not begun. Otherwise
// its error says which (what /readyz answers).
func (b *Broker) Ready() error {
	switch b.state.Load() {
	case stateStarting:
		return errors.New("starting: listeners not open yet")
	case stateStopping:
		return errors.New("shutting down")
	}
	return nil
}

// New builds a broker from cfg.
func New(cfg *config.Config, log *slog.Logger) (*Broker, error) {
	return NewWithFS(cfg, log, store.OS())
}

// NewWithFS is New with the file system the stores write to (tests use a
// crash-testable or failing one).
func NewWithFS(cfg *config.Config, log *slog.Logger, fsys store.FS) (*Broker, error) {
	return NewWith(cfg, log, Deps{FS: fsys})
}

// Deps are what a broker takes from its surroundings; tests replace them.
type Deps struct {
	FS    store.FS    // nil: the operating system's
	Clock clock.Clock // nil: the system clock
}

// NewWith is New with the given dependencies.
func NewWith(cfg *config.Config, log *slog.Logger, d Deps) (*Broker, error) {
	fsys := d.FS
	if fsys == nil {
		fsys = store.OS()
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	msgDir := filepath.Join(cfg.DataDir, "messages")
	met := metrics.New()
	mlog, report, err := store.OpenLog(fsys, msgDir, store.Options{Logger: log, OnSync: met.ObserveSync})
	if err != nil {
		return nil, fmt.Errorf("message store: %w", err)
	}
	meta, err := store.OpenMeta(fsys, filepath.Join(cfg.DataDir, "definitions"))
	if err != nil {
		mlog.Close()
		return nil, fmt.Errorf("definition store: %w", err)
	}
	users, err := openUsers(cfg, meta, log)
	if err != nil {
		mlog.Close()
		meta.Close()
		return nil, fmt.Errorf("user store: %w", err)
	}
	cb := core.NewBrokerWith(core.Options{Messages: mlog, Meta: meta, Logger: log, PageAfter: cfg.QueuePageAfter, Clock: d.Clock,
		MaxConnectionsPerUser: cfg.MaxConnectionsPerUser,
		MaxConsumersPerQueue:  cfg.MaxConsumersPerQueue,
		LoginFailureDelay:     cfg.LoginFailureDelay,
	})
	st, err := cb.Recover(mlog.Replay)
	if err != nil {
		mlog.Close()
		meta.Close()
		return nil, fmt.Errorf("recovery: %w", err)
	}
	log.Info("recovered", "exchanges", st.Exchanges, "queues", st.Queues, "bindings", st.Bindings,
		"messages", st.Messages, "scheduled", st.Scheduled, "dropped", st.Dropped, "segments", report.Segments,
		"truncated_bytes", report.TruncatedBytes, "duration", report.Duration+st.Duration)
	for _, c := range report.Corrupt {
		log.Error("message store damage", "detail", c)
	}
	b := &Broker{
		msgs: mlog, meta: meta,
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
		limited:   make(map[string]*connlimit.Listener),
		Metrics:   met,
	}
	met.WatchBroker(cb, cfg.MetricsPerQueue)
	if cfg.TLSCertFile != "" {
		if b.certs, err = newCertHolder(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile, cfg.TLSVerifyPeer, log); err != nil {
			mlog.Close()
			meta.Close()
			return nil, err
		}
	}
	if b.notify, err = b.buildNotify(fsys); err != nil {
		mlog.Close()
		meta.Close()
		return nil, err
	}
	api := &mgmt.API{Broker: cb, Users: users, Notify: b.notify.pipe, Ready: b.Ready,
		DataDir: cfg.DataDir, MemoryLimit: memoryLimit(cfg.MemoryHighWatermark), DiskFreeLimit: cfg.DiskFreeLimit, Started: time.Now(),
		MaxConnections: cfg.MaxConnections, ChannelMax: cfg.AMQPChannelMax}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", b.notify.pipe.Handler())
	mux.HandleFunc("POST /api/v1/callbacks/twilio", b.twilioCallback)
	apiHandler := api.Handler()
	mux.Handle("/api/", apiHandler)
	mux.Handle("GET /healthz", apiHandler)
	mux.Handle("GET /readyz", apiHandler)
	web := &console.Console{Users: users, Clock: cb.Clock(), LoginFailed: cb.LoginFailed, PollInterval: cfg.ConsoleRefresh, Version: mgmt.Version, Logger: log}
	webHandler, err := web.Handler()
	if err != nil {
		mlog.Close()
		meta.Close()
		return nil, fmt.Errorf("web console: %w", err)
	}
	mux.Handle("/", webHandler)
	// /metrics needs no login, as with RabbitMQ's prometheus plugin: it
	// tells counts, never names or contents (unless --metrics-per-queue,
	// which names queues).
	if cfg.MetricsListen == "" {
		mux.Handle("GET /metrics", met.Handler())
	} else if cfg.MetricsListen != config.Off {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", met.Handler())
		b.MetricsHTTP = &http.Server{Handler: mm, ReadHeaderTimeout: 10 * time.Second}
	}
	if listening(cfg.PprofListen) {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		b.PprofHTTP = &http.Server{Handler: pm, ReadHeaderTimeout: 10 * time.Second}
	}
	// The console's session cookie authenticates the APIs too.
	b.HTTP = &http.Server{Handler: web.Wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	if cfg.AMQPHeartbeat == 0 {
		b.AMQP.Heartbeat = -1
	}
	return b, nil
}

// Start opens the configured listeners and serves them in the background.
func (b *Broker) Start() error {
	b.stopWatch = make(chan struct{})
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.watchResources(b.stopWatch) }()
	if err := b.notify.pipe.Start(); err != nil {
		return err
	}
	if b.certs != nil {
		b.hup = make(chan os.Signal, 1)
		signal.Notify(b.hup, syscall.SIGHUP)
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.certs.watch(b.stopWatch, b.hup) }()
	}
	amqpServe := func(l net.Listener) error {
		if err := b.AMQP.Serve(l); !errors.Is(err, amqp.ErrServerClosed) {
			return err
		}
		return nil
	}
	httpServe := func(l net.Listener) error {
		if err := b.HTTP.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	if err := b.serve("amqp", "AMQP 0-9-1", b.cfg.AMQPListen, false, amqpServe); err != nil {
		return err
	}
	if err := b.serve("amqps", "AMQP 0-9-1 over TLS", b.cfg.AMQPSListen, true, amqpServe); err != nil {
		return err
	}
	if err := b.serve("http", "management HTTP", b.cfg.HTTPListen, false, httpServe); err != nil {
		return err
	}
	if err := b.serve("https", "management HTTPS", b.cfg.HTTPSListen, true, httpServe); err != nil {
		return err
	}
	if b.MetricsHTTP != nil {
		if err := b.serveHTTPOn("metrics", b.cfg.MetricsListen, b.MetricsHTTP); err != nil {
			return err
		}
	}
	if b.PprofHTTP != nil {
		if err := b.serveHTTPOn("pprof", b.cfg.PprofListen, b.PprofHTTP); err != nil {
			return err
		}
	}
	if err := b.startMQTT(); err != nil {
		return err
	}
	if err := b.startSTOMP(); err != nil {
		return err
	}
	b.state.CompareAndSwap(stateStarting, stateServing)
	return nil
}

// serveHTTPOn serves s on a listener of its own at addr, named name in
// Addr (the metrics and profiler listeners).
func (b *Broker) serveHTTPOn(name, addr string, s *http.Server) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	b.mu.Lock()
	b.listeners[name] = l
	b.mu.Unlock()
	b.log.Info(name+" listening", "addr", l.Addr().String())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error(name+" listener stopped", "err", err)
		}
	}()
	return nil
}

// serve opens a listener on addr, named name in Addr, and runs run on it
// in the background; secure listeners speak TLS with the broker's
// certificate and open only when one is configured. Off or empty
// addresses open nothing. run returns nil when its server was shut down.
func (b *Broker) serve(name, label, addr string, secure bool, run func(net.Listener) error) error {
	if !listening(addr) || secure && b.certs == nil {
		return nil
	}
	// No TCP keep-alive on accepted connections, as RabbitMQ's and
	// Mosquitto's listeners: the protocols have their own (AMQP
	// heart-beats, MQTT keep-alive, STOMP heart-beats), and the socket
	// options cost three system calls per connection.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	b.mu.Lock()
	b.listeners[name] = l
	b.mu.Unlock()
	b.log.Info(label+" listening", "addr", l.Addr().String())
	if name != "http" && name != "https" {
		// Client listeners: --max-connections each (the management API
		// answers short requests and is not limited).
		l = connlimit.Wrap(l, b.cfg.MaxConnections)
		if cl, ok := l.(*connlimit.Listener); ok {
			b.mu.Lock()
			b.limited[name] = cl
			b.mu.Unlock()
		}
	}
	if secure {
		l = tls.NewListener(l, b.certs.Config())
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := run(l); err != nil {
			b.log.Error(label+" listener stopped", "err", err)
		}
	}()
	return nil
}

// ReloadTLS reads the certificate, key and CA files again, as SIGHUP
// does; connections already open keep theirs. Without TLS it does nothing.
func (b *Broker) ReloadTLS() error {
	if b.certs == nil {
		return nil
	}
	return b.certs.Reload()
}

// Addr returns the bound address of a listener ("amqp", "http", "stomp"...), or nil.
func (b *Broker) Addr(name string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.listeners[name]; ok {
		return l.Addr()
	}
	return nil
}

// ListenerConnections returns the open connections of a client listener
// with a connection limit (--max-connections): those within the limit
// and those beyond it being refused. ok is false for a listener without
// a limit or not open.
func (b *Broker) ListenerConnections(name string) (live, refusing int, ok bool) {
	b.mu.Lock()
	l, ok := b.limited[name]
	b.mu.Unlock()
	if !ok {
		return 0, 0, false
	}
	live, refusing = l.Open()
	return live, refusing, true
}

// Shutdown closes the listeners and connections (AMQP clients get 320
// CONNECTION_FORCED) and waits until they are done or ctx ends.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.state.Store(stateStopping)
	if b.stopWatch != nil {
		b.stopOnce.Do(func() { close(b.stopWatch) })
	}
	if b.hup != nil {
		signal.Stop(b.hup)
	}
	// MQTT first: the wills of its clients reach AMQP consumers still
	// connected.
	err := b.stopMQTT(ctx)
	if serr := b.stopSTOMP(ctx); err == nil {
		err = serr
	}
	if aerr := b.AMQP.Shutdown(ctx); err == nil {
		err = aerr
	}
	if herr := b.HTTP.Shutdown(ctx); err == nil {
		err = herr
	}
	for _, s := range []*http.Server{b.MetricsHTTP, b.PprofHTTP} {
		if s == nil {
			continue
		}
		if merr := s.Shutdown(ctx); err == nil {
			err = merr
		}
	}
	b.wg.Wait()
	b.closeOnce.Do(func() {
		if nerr := b.notify.shutdown(); nerr != nil && err == nil {
			err = nerr
		}
		// No scheduled message is routed into a closing store: the stored
		// ones stay scheduled for the next start.
		b.Core.StopScheduling()
		if cerr := b.msgs.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if cerr := b.meta.Close(); cerr != nil && err == nil {
			err = cerr
		}
	})
	return err
}
