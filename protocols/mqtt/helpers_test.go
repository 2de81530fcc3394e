package mqtt_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/mqtt"
)

const waitFor = 5 * time.Second

// testServer is an MQTT adapter on a loopback port over an in-memory core.
type testServer struct {
	*mqtt.Server
	broker *core.Broker
	users  *auth.Store
	addr   string
	wsAddr string
	store  mqtt.Store
	anon   bool // clients connect without a user name (as the default user)
	// parkAfter is the parking sweeper's period (0: 20 ms).
	parkAfter time.Duration
}

// logins are the ways test clients log in: as guest, and anonymously,
// which gives them the default user's (guest's) rights.
var logins = []struct {
	name  string
	tweak func(*testServer)
}{
	{"guest", func(*testServer) {}},
	{"anonymous", func(ts *testServer) { ts.anon = true }},
}

// forEachLogin runs test once per login; test passes login to startMQTT.
func forEachLogin(t *testing.T, test func(t *testing.T, login func(*testServer))) {
	for _, l := range logins {
		t.Run(l.name, func(t *testing.T) { test(t, l.tweak) })
	}
}

func testLogger() *slog.Logger {
	var out io.Writer = io.Discard
	if os.Getenv("UMS_TEST_LOG") != "" {
		out = os.Stderr
	}
	level := slog.LevelDebug
	if os.Getenv("UMS_TEST_LOG_LEVEL") == "info" {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
}

// startMQTT runs an adapter with user guest/guest (all permissions on "/")
// and stops it with the test.
func startMQTT(t testing.TB, tweak ...func(*testServer)) *testServer {
	t.Helper()
	users := auth.NewStore()
	if err := users.PutUser("guest", "guest", []string{"administrator"}); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPermission("guest", "/", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{broker: core.NewBroker(), users: users, store: &mqtt.MemoryStore{}}
	for _, f := range tweak {
		f(ts)
	}
	return ts.serve(t)
}

// serve starts a Server over ts's broker, users and store.
func (ts *testServer) serve(t testing.TB) *testServer {
	t.Helper()
	srv := &mqtt.Server{Broker: ts.broker, Users: ts.users, Logger: testLogger(), Store: ts.store, AllowAnonymous: ts.anon}
	if ts.Server != nil {
		srv.MaxInflight = ts.Server.MaxInflight
		srv.MaxQueueLength = ts.Server.MaxQueueLength
		srv.MaxPacketSize = ts.Server.MaxPacketSize
		srv.NoPark = ts.Server.NoPark
	}
	// Every test runs with idle connections parking after 20 to 40 ms,
	// so that parking and waking happen all through them.
	srv.SetParkAfter(cmp.Or(ts.parkAfter, 20*time.Millisecond))
	ts.Server = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr, ts.wsAddr = l.Addr().String(), wl.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(l); !errors.Is(err, mqtt.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.ServeWebSocket(wl); !errors.Is(err, mqtt.ErrServerClosed) {
			t.Errorf("ServeWebSocket: %v", err)
		}
	}()
	t.Cleanup(func() {
		ts.stop(t)
		wg.Wait()
	})
	return ts
}

func (ts *testServer) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// received is a channel of publishes a v5 client got.
type received chan *paho.Publish

func (r received) next(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case p := <-r:
		return p
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a message")
		return nil
	}
}

func (r received) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case p := <-r:
		t.Fatalf("unexpected message on %q: %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}

// v5opts tune a v5 connection.
type v5opts struct {
	user, pass string
	clean      bool
	expiry     uint32
	recvMax    uint16
	maxPacket  uint32
	will       *paho.WillMessage
	willProps  *paho.WillProperties
	ws         bool
	noCleanup  bool
}

// dialV5 connects an MQTT 5 client; it disconnects with the test.
func (ts *testServer) dialV5(t testing.TB, clientID string, o v5opts) (*paho.Client, received, *paho.Connack, error) {
	t.Helper()
	if o.user == "" && !ts.anon {
		o.user, o.pass = "guest", "guest"
	}
	var conn net.Conn
	var err error
	if o.ws {
		conn, err = dialWS(ts.wsAddr)
	} else {
		conn, err = net.Dial("tcp", ts.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := make(received, 1000)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: o.clean,
		WillMessage: o.will, WillProperties: o.willProps, Properties: &paho.ConnectProperties{}}
	if o.user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = o.user, true, []byte(o.pass), true
	}
	if o.expiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.expiry
	}
	if o.recvMax > 0 {
		cp.Properties.ReceiveMaximum = &o.recvMax
	}
	if o.maxPacket > 0 {
		cp.Properties.MaximumPacketSize = &o.maxPacket
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		return nil, nil, ca, err
	}
	if !o.noCleanup {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, got, ca, nil
}

func (ts *testServer) v5(t testing.TB, clientID string) (*paho.Client, received) {
	t.Helper()
	c, got, _, err := ts.dialV5(t, clientID, v5opts{clean: true})
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c, got
}

func subscribe5(t testing.TB, c *paho.Client, topic string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
}

func publish5(t testing.TB, c *paho.Client, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// v3 connects an MQTT 3.1.1 client; messages arrive on the returned channel.
func (ts *testServer) v3(t testing.TB, clientID string, clean bool, tweak ...func(*paho3.ClientOptions)) (paho3.Client, chan paho3.Message) {
	t.Helper()
	c, got, _ := ts.v3p(t, clientID, clean, tweak...)
	return c, got
}

// v3p is v3 that also reports CONNACK's session present flag.
func (ts *testServer) v3p(t testing.TB, clientID string, clean bool, tweak ...func(*paho3.ClientOptions)) (paho3.Client, chan paho3.Message, bool) {
	t.Helper()
	got := make(chan paho3.Message, 1000)
	o := paho3.NewClientOptions().AddBroker("tcp://" + ts.addr).SetClientID(clientID).
		SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { got <- m })
	if !ts.anon {
		o.SetUsername("guest").SetPassword("guest")
	}
	for _, f := range tweak {
		f(o)
	}
	c := paho3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatal("v3 connect timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("v3 connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, got, tok.(*paho3.ConnectToken).SessionPresent()
}

func newLimits(maxQueue int) *mqtt.Server { return &mqtt.Server{MaxQueueLength: maxQueue} }

func wait3(t testing.TB, tok paho3.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitFor) {
		t.Fatal("timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

func next3(t testing.TB, ch chan paho3.Message) paho3.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a v3 message")
		return nil
	}
}

// eventually retries cond until it holds or the wait ends.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitFor)
}

var _ = fmt.Sprint

func corePerm(configure, write, read string) auth.Permission {
	return auth.Permission{Configure: configure, Write: write, Read: read}
}

// waitIdle waits until the durable queue has no consumer: its session's
// connection is closed on the server side too.
func (ts *testServer) waitIdle(t testing.TB, queue string) {
	t.Helper()
	v, _ := ts.broker.Vhost("/")
	eventually(t, "queue "+queue+" without consumers", func() bool {
		q, err := v.Queue(nil, queue)
		if err != nil {
			return false
		}
		_, consumers := q.Counts()
		return consumers == 0
	})
}
