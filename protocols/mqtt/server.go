package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gorilla/websocket"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// ErrServerClosed is returned by Serve and ServeWebSocket after Shutdown.
var ErrServerClosed = errors.New("mqtt: server closed")

// Defaults of the Server's limits.
const (
	DefaultExchange         = "amq.topic"
	DefaultVhost            = "/"
	DefaultMaxPacketSize    = 16 << 20
	DefaultMaxInflight      = 256
	DefaultMaxSessionExpiry = 24 * 60 * 60
	DefaultMaxQueueLength   = 100_000
	DefaultTopicAliasMax    = 1024
	DefaultAnonymousUser    = "guest"
	DefaultAnonymousPass    = "guest"
	// NoSessionExpiry as MaxSessionExpiry keeps persistent sessions
	// forever.
	NoSessionExpiry = math.MaxUint32
)

// WebSocketPath is where ServeWebSocket accepts MQTT over WebSocket, as
// RabbitMQ's Web-MQTT plugin does.
const WebSocketPath = "/ws"

// Listener ids, as mochi and the management listing see them.
const (
	listenerTCP = "mqtt"
	listenerWS  = "mqtt-ws"
)

// Server is the MQTT 3.1, 3.1.1 and 5.0 adapter of the core. Set its fields,
// then call Serve and/or ServeWebSocket; they may be called for several
// listeners. Fields must not change once serving.
type Server struct {
	Broker *core.Broker
	Users  *auth.Store
	Logger *slog.Logger
	// Exchange is the topic exchange PUBLISH goes to and SUBSCRIBE binds
	// to in every vhost (default amq.topic).
	Exchange string
	// DefaultVhost is used when the user name has no "vhost:" prefix
	// (default "/").
	DefaultVhost string
	// Store keeps retained messages and persistent sessions' subscriptions
	// (nil: memory only).
	Store Store
	// MaxPacketSize is the largest packet accepted, advertised in CONNACK
	// (default 16 MiB).
	MaxPacketSize uint32
	// MaxInflight caps unacknowledged QoS 1/2 deliveries per client, on
	// top of the client's receive maximum (default 256).
	MaxInflight uint16
	// MaxSessionExpiry caps a session's expiry interval in seconds; MQTT
	// 3.1.1 persistent sessions get it. Default one day, as RabbitMQ;
	// NoSessionExpiry keeps sessions forever.
	MaxSessionExpiry uint32
	// MaxQueueLength bounds each session queue. A full QoS 1 queue
	// refuses new messages (publishers get a negative acknowledgement, as
	// with x-overflow reject-publish); a full QoS 0 queue drops its oldest
	// message. A QoS 1 queue that a connected subscriber drains slows its
	// publishers down from nine tenths of the bound on. Default 100,000;
	// negative: no bound.
	MaxQueueLength int
	// TopicAliasMaximum is advertised to MQTT 5 clients (default 1024).
	TopicAliasMaximum uint16
	// AllowAnonymous lets clients connect without a user name; they get
	// DefaultUser's rights (and its limits: guest only from loopback).
	AllowAnonymous bool
	// DefaultUser and DefaultPass are the credentials anonymous clients
	// log in with (default guest/guest).
	DefaultUser, DefaultPass string

	startOnce sync.Once
	startErr  error
	mochi     *mochi.Server
	hook      *hook
	log       *slog.Logger
	retained  *retainIndex
	store     Store
	exchange  string
	done      chan struct{} // closed by Shutdown

	mu        sync.Mutex
	closing   bool                      // REQUIRES: mu
	listeners map[net.Listener]struct{} // REQUIRES: mu
	https     map[*http.Server]struct{} // REQUIRES: mu
	sessions  map[string]*session       // live sessions by mochi client id; REQUIRES: mu
	records   map[string]*sessionRecord // persistent sessions by storeKey; REQUIRES: mu
	wills     map[string]*pendingWill   // delayed wills by mochi client id; REQUIRES: mu
	expiring  map[string]*expiryTimer   // disconnected persistent sessions by mochi client id; REQUIRES: mu
	conns     sync.WaitGroup            // one per connection being served
	bg        sync.WaitGroup            // background work: delayed wills, server-side disconnects
	mochiStop sync.Once
}

// start builds the embedded mochi server and loads stored state, once.
func (s *Server) start() error {
	s.startOnce.Do(func() { s.startErr = s.init() })
	return s.startErr
}

func (s *Server) init() error {
	if s.Broker == nil || s.Users == nil {
		return errors.New("mqtt: Server needs a Broker and Users")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.log = s.log.With("protocol", "mqtt")
	s.exchange = s.Exchange
	if s.exchange == "" {
		s.exchange = DefaultExchange
	}
	if s.DefaultVhost == "" {
		s.DefaultVhost = DefaultVhost
	}
	if s.MaxPacketSize == 0 {
		s.MaxPacketSize = DefaultMaxPacketSize
	}
	if s.MaxInflight == 0 {
		s.MaxInflight = DefaultMaxInflight
	}
	if s.MaxSessionExpiry == 0 {
		s.MaxSessionExpiry = DefaultMaxSessionExpiry
	}
	if s.MaxQueueLength == 0 {
		s.MaxQueueLength = DefaultMaxQueueLength
	}
	if s.DefaultUser == "" {
		s.DefaultUser, s.DefaultPass = DefaultAnonymousUser, DefaultAnonymousPass
	}
	if s.TopicAliasMaximum == 0 {
		s.TopicAliasMaximum = DefaultTopicAliasMax
	}
	s.store = s.Store
	if s.store == nil {
		s.store = &MemoryStore{}
	}
	s.done = make(chan struct{})
	s.listeners = make(map[net.Listener]struct{})
	s.https = make(map[*http.Server]struct{})
	s.sessions = make(map[string]*session)
	s.records = make(map[string]*sessionRecord)
	s.wills = make(map[string]*pendingWill)
	s.expiring = make(map[string]*expiryTimer)
	s.retained = newRetainIndex(s.store)
	s.loadStore()

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = s.MaxPacketSize
	caps.MaximumSessionExpiryInterval = s.MaxSessionExpiry
	caps.MaximumMessageExpiryInterval = 0 // expiry is the core's business
	caps.MaximumClientWritesPending = 1   // mochi's own fan-out is not used
	caps.MaximumInflight = s.MaxInflight
	caps.TopicAliasMaximum = s.TopicAliasMaximum
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	m := mochi.New(&mochi.Options{
		Capabilities: caps,
		// mochi warns about every client's protocol slip and short
		// keep-alive; those are debug information for a broker operator.
		Logger: slog.New(demoteHandler{s.log.Handler()}),
		// $SYS statistics are not published: every topic goes through the
		// core, and mochi's counters would describe only half of the
		// traffic. The interval (seconds) is effectively never.
		SysTopicResendInterval: 1 << 32,
	})
	s.hook = &hook{srv: s}
	if err := m.AddHook(s.hook, nil); err != nil {
		return err
	}
	if err := m.Serve(); err != nil {
		return err
	}
	// Serve published one round of $SYS topics as retained messages in
	// mochi's own index; drop them so they never reach a subscriber.
	for topic := range m.Topics.Retained.GetAll() {
		m.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
	s.mochi = m
	return nil
}

// loadStore reads retained messages and persistent sessions, forgetting
// sessions whose queue no longer exists (expired or deleted while the
// server was down).
func (s *Server) loadStore() {
	var retained, sessions, dropped, wills int
	for key, val := range s.store.All() {
		kind, vhost, name, ok := parseStoreKey(key)
		if !ok {
			continue
		}
		switch kind {
		case kindRetained:
			m, err := decodeRetained(name, val)
			if err != nil {
				s.log.Error("skipping unreadable retained message", "vhost", vhost, "topic", name)
				continue
			}
			s.retained.load(vhost, m)
			retained++
		case kindSession:
			r, err := decodeSessionRecord(val)
			v, vok := s.Broker.Vhost(vhost)
			var qerr error = core.ErrNotFound
			if vok {
				_, qerr = v.Queue(nil, queueName(name, 1))
			}
			if err != nil || qerr != nil {
				dropped++
				if derr := s.store.Delete(key); derr != nil {
					s.log.Error("deleting session record failed", "key", key, "err", derr)
				}
				continue
			}
			s.records[key] = r
			sessKey := name
			if vhost != s.DefaultVhost {
				sessKey = vhost + "\x00" + name
			}
			s.mu.Lock()
			s.scheduleExpiryLocked(sessKey, vhost, name, r.expiry)
			s.mu.Unlock()
			sessions++
		case kindWill:
			v, ok := s.Broker.Vhost(vhost)
			var err error = core.ErrNotFound
			if ok {
				sessKey := name
				if vhost != s.DefaultVhost {
					sessKey = vhost + "\x00" + name
				}
				err = s.loadWill(sessKey, v, name, val)
			}
			if err != nil {
				s.log.Error("skipping unreadable delayed will", "vhost", vhost, "client", name, "err", err)
				if derr := s.store.Delete(key); derr != nil {
					s.log.Error("deleting will record failed", "key", key, "err", derr)
				}
				continue
			}
			wills++
		}
	}
	if retained+sessions+dropped+wills > 0 {
		s.log.Info("MQTT state loaded", "retained", retained, "sessions", sessions, "expired_sessions", dropped, "delayed_wills", wills)
	}
}

// Serve accepts MQTT connections on l until Shutdown. It always returns an
// error: ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	if !s.track(l, nil, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.track(l, nil, false)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.addConn() {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(listenerTCP, c)
	}
}

// ServeWebSocket accepts MQTT over WebSocket connections on l, at
// WebSocketPath with subprotocol "mqtt", until Shutdown.
func (s *Server) ServeWebSocket(l net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	up := &websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// Browsers connect from pages served anywhere, as with
		// RabbitMQ's Web-MQTT; authentication is MQTT's.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
		if !s.addConn() {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			s.conns.Done()
			return // Upgrade answered the request
		}
		s.serveConn(listenerWS, &wsConn{ws: ws})
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if !s.track(nil, hs, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.track(nil, hs, false)
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || s.isClosing() {
		return ErrServerClosed
	}
	return err
}

// connectTimeout is how long a new connection may take to send CONNECT.
const connectTimeout = 10 * time.Second

// serveConn runs the CONNECT handshake of a new connection on the calling
// goroutine, then hands the connection to a fresh goroutine that reads its
// packets (readLoop) and returns. The handshake runs deep (authentication,
// session setup in the core) and leaves a large stack behind; the reader
// starts small, and since it waits for input with only a few small frames
// on its stack, the runtime shrinks it back after every burst of work. An
// idle connection so costs a few KiB of stack, not the 16 KiB or more of a
// goroutine that once ran the handshake.
//
// The handshake and the read loop follow mochi's own (attachClient); only
// CONNECT handling is the adapter's, every later packet goes to mochi's
// packet processing (InjectPacket), whose hooks bridge to the core.
func (s *Server) serveConn(listener string, c net.Conn) {
	wc := newWireConn(c)
	cl := s.mochi.NewClient(wc, listener, "", false)
	if err := s.handshake(cl, listener, wc); err != nil {
		cl.Stop(err)
		if !errors.Is(err, io.EOF) {
			s.log.Debug("connection refused", "remote", c.RemoteAddr().String(), "err", err)
		}
		s.conns.Done()
		return
	}
	go s.readLoop(cl) // inherits this connection's count in s.conns
}

// handshake reads CONNECT and answers it. On success the session is
// established and its CONNACK written; on failure the client got the
// CONNACK refusal (when one is due) and nothing of it remains.
func (s *Server) handshake(cl *mochi.Client, listener string, wc *wireConn) error {
	_ = wc.SetDeadline(time.Now().Add(connectTimeout))
	var fh packets.FixedHeader
	if err := cl.ReadFixedHeader(&fh); err != nil {
		return err
	}
	if fh.Type != packets.Connect {
		return packets.ErrProtocolViolationRequireFirstConnect // [MQTT-3.1.0-1]
	}
	pk, err := cl.ReadPacket(&fh)
	if err != nil {
		return err
	}
	if !knownProtocolName(&pk) {
		// Not MQTT: no CONNACK, the connection just closes
		// [MQTT-3.1.2-1]; MQTT 5 allows this too (or CONNACK 0x84).
		return packets.ErrProtocolViolationProtocolName
	}
	cl.ParseConnect(listener, pk)
	if code := validateConnect(cl, &pk); code != packets.CodeSuccess {
		_ = s.mochi.SendConnack(cl, code, false, nil) // [MQTT-3.2.2-7] [MQTT-3.1.4-6]
		return code
	}
	if err := s.hook.connect(cl, &pk); err != nil {
		return err
	}
	refreshDeadline(cl)
	sess := sessionOf(cl)
	sess.establish(&pk)
	s.inheritInflight(cl, &pk)
	s.mochi.Clients.Add(cl) // [MQTT-4.1.0-1]
	if err := s.mochi.SendConnack(cl, packets.CodeSuccess, sess.present, nil); err != nil {
		s.endConnection(cl, err)
		return err
	}
	if sess.present {
		if err := cl.ResendInflightMessages(true); err != nil {
			s.endConnection(cl, err)
			return err
		}
	}
	if err := sess.start(); err != nil {
		sess.logger().Error("MQTT session setup failed", "err", err)
		s.kick(cl, reasonFor(err))
		s.endConnection(cl, err)
		return err
	}
	if sess.present {
		sess.restoreQoS2()
	}
	return nil
}

// knownProtocolName reports whether CONNECT names the protocol MQTT:
// "MQTT", or "MQIsdp" for MQTT 3.1 (level 3).
func knownProtocolName(pk *packets.Packet) bool {
	switch string(pk.Connect.ProtocolName) {
	case "MQTT":
		return true
	case "MQIsdp":
		return pk.ProtocolVersion == 3
	}
	return false
}

// validateConnect checks what the packet decoder does not: the spec's rules
// on CONNECT's fields and an empty client id asking for a kept session
// (refused by MQTT 3.1.1 [MQTT-3.1.3-8]).
func validateConnect(cl *mochi.Client, pk *packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return code
	}
	if cl.Properties.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "" {
		return packets.ErrUnspecifiedError // CONNACK 0x02 in MQTT 3.1.1
	}
	return packets.CodeSuccess
}

// inheritInflight carries the packet-level state of a resumed session (QoS
// 2 handshakes in progress, which mochi tracks) over from the previous
// connection with the same client id, and forgets it for a clean start.
// The previous connection was already closed by establish.
func (s *Server) inheritInflight(cl *mochi.Client, pk *packets.Packet) {
	old, ok := s.mochi.Clients.Get(cl.ID)
	if !ok {
		return
	}
	if pk.Connect.Clean || (old.Properties.Clean && old.Properties.ProtocolVersion < 5) {
		old.ClearInflights()
		return
	}
	if old.State.Inflight.Len() > 0 {
		cl.State.Inflight = old.State.Inflight.Clone() // [MQTT-3.1.2-5]
		cl.State.Inflight.ResetReceiveQuota(int32(s.mochi.Options.Capabilities.ReceiveMaximum))
		cl.State.Inflight.ResetSendQuota(int32(cl.Properties.Props.ReceiveMaximum))
	}
	old.ClearInflights()
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

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// addConn counts a connection about to be served, unless shutting down.
func (s *Server) addConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns.Add(1)
	return true
}

// goBackground runs fn as tracked background work, unless shutting down.
func (s *Server) goBackground(fn func()) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		fn()
	}()
}

func (s *Server) track(l net.Listener, hs *http.Server, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add && s.closing {
		return false
	}
	switch {
	case l != nil && add:
		s.listeners[l] = struct{}{}
	case l != nil:
		delete(s.listeners, l)
	case add:
		s.https[hs] = struct{}{}
	default:
		delete(s.https, hs)
	}
	return true
}

// Shutdown stops accepting connections, disconnects every client (MQTT 5
// clients get DISCONNECT 0x8B, server shutting down) and waits for their
// sessions to close, or for ctx. Persistent sessions keep their queues.
// The server closing a connection triggers its will [MQTT-3.1.2-8]: wills
// without delay are published now; delayed ones (and those still waiting)
// are stored and published when their delay ends after the next start,
// unless the client reconnects first.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.start() != nil || s.mochi == nil {
		return nil
	}
	s.mu.Lock()
	already := s.closing
	s.closing = true
	ls := make([]net.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	hss := make([]*http.Server, 0, len(s.https))
	for hs := range s.https {
		hss = append(hss, hs)
	}
	var delayed []*pendingWill
	for id, w := range s.wills {
		if w.t.Stop() {
			delayed = append(delayed, w)
		}
		delete(s.wills, id)
	}
	s.mu.Unlock()
	s.stopExpiries()
	for _, w := range delayed {
		s.saveWill(w) // its delay runs on after the next start
	}
	if !already {
		close(s.done)
	}
	for _, l := range ls {
		l.Close()
	}
	for _, hs := range hss {
		hs.Close() // hijacked WebSocket connections are closed below
	}
	waited := make(chan struct{})
	go func() {
		s.conns.Wait()
		s.bg.Wait()
		close(waited)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.disconnectAll()
		select {
		case <-waited:
			s.mochiStop.Do(func() { _ = s.mochi.Close() })
			return nil
		case <-ctx.Done():
			return fmt.Errorf("mqtt shutdown: %w", ctx.Err())
		case <-tick.C:
			// Connections that were mid-handshake are connected now.
		}
	}
}

// disconnectAll ends every connected client's connection.
func (s *Server) disconnectAll() {
	for _, cl := range s.mochi.Clients.GetAll() {
		if !cl.Closed() {
			s.kick(cl, packets.ErrServerShuttingDown)
		}
	}
}

// kick disconnects a client from the server side: MQTT 5 clients get a
// DISCONNECT with code; MQTT 3 has no server DISCONNECT, so the
// connection just closes.
func (s *Server) kick(cl *mochi.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = s.mochi.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}

// RetainedCount returns the number of retained messages across vhosts.
func (s *Server) RetainedCount() int {
	if s.start() != nil {
		return 0
	}
	return s.retained.size()
}

// demoteHandler logs mochi's info and warning records at debug level.
type demoteHandler struct{ slog.Handler }

func (h demoteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(l))
}

func (h demoteHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h demoteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return demoteHandler{h.Handler.WithAttrs(as)}
}

func (h demoteHandler) WithGroup(name string) slog.Handler {
	return demoteHandler{h.Handler.WithGroup(name)}
}

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}
