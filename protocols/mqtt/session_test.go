package mqtt_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/protocols/mqtt"
)

// An MQTT 3.1.1 clean session = 0 keeps its subscriptions and QoS 1
// messages while disconnected; clean session = 1 discards them.
func TestPersistentSessionV3(t *testing.T) { forEachLogin(t, testPersistentSessionV3) }

func testPersistentSessionV3(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	sub, _ := ts.v3(t, "keeper", false)
	wait3(t, sub.Subscribe("p/#", 1, nil))
	wait3(t, sub.Subscribe("p0/#", 0, nil))
	sub.Disconnect(100)
	ts.waitIdle(t, "mqtt-subscription-keeperqos1")

	pub, _ := ts.v3(t, "pub", true)
	for i := range 5 {
		wait3(t, pub.Publish("p/x", 1, false, fmt.Sprint(i)))
	}
	wait3(t, pub.Publish("p0/x", 0, false, "qos0 is not kept"))
	wait3(t, pub.Publish("barrier", 1, false, "")) // the QoS 0 publish was handled

	c, got, present := ts.v3p(t, "keeper", false)
	if !present {
		t.Fatal("session not present")
	}
	for i := range 5 {
		m := next3(t, got)
		if string(m.Payload()) != fmt.Sprint(i) || m.Qos() != 1 {
			t.Fatalf("message %d: %q at QoS %d", i, m.Payload(), m.Qos())
		}
	}
	// The subscriptions are still there.
	wait3(t, pub.Publish("p0/x", 0, false, "live"))
	if m := next3(t, got); string(m.Payload()) != "live" {
		t.Fatalf("got %q", m.Payload())
	}
	c.Disconnect(100)

	// Clean session: everything goes.
	_, got, present = ts.v3p(t, "keeper", true)
	if present {
		t.Fatal("session present on a clean session")
	}
	wait3(t, pub.Publish("p/x", 1, false, "after clean"))
	select {
	case m := <-got:
		t.Fatalf("clean session got %q", m.Payload())
	case <-time.After(100 * time.Millisecond):
	}
	v, _ := ts.broker.Vhost("/")
	if _, err := v.Queue(nil, "mqtt-subscription-keeperqos1"); err == nil {
		t.Fatal("the persistent session's queue survived a clean session")
	}
}

func TestSessionPresentV5(t *testing.T) { forEachLogin(t, testSessionPresentV5) }

func testSessionPresentV5(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	c, _, ca, err := ts.dialV5(t, "sp", v5opts{expiry: 300, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("session present on the first connection")
	}
	subscribe5(t, c, "sp/#", 2)
	_ = c.Disconnect(&paho.Disconnect{})
	ts.waitIdle(t, "mqtt-subscription-spqos1")

	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "sp/1", QoS: 2, Payload: []byte("queued")})

	_, got, ca, err := ts.dialV5(t, "sp", v5opts{expiry: 300})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Fatal("session not present on reconnect")
	}
	if m := got.next(t); string(m.Payload) != "queued" || m.QoS != 2 {
		t.Fatalf("got %q at %d", m.Payload, m.QoS)
	}
}

// Session expiry 0 ends the session with the connection.
func TestSessionExpiryZero(t *testing.T) {
	ts := startMQTT(t)
	c, _, _, err := ts.dialV5(t, "short", v5opts{noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "s/#", 1)
	_ = c.Disconnect(&paho.Disconnect{})
	eventually(t, "the connection to close", func() bool { return len(ts.broker.Connections()) == 0 })
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "s/1", QoS: 1, Payload: []byte("lost")})
	_, got, ca, err := ts.dialV5(t, "short", v5opts{})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("session present after expiry 0")
	}
	got.none(t, 100*time.Millisecond)
}

// A session expires after its interval (the queue gets x-expires).
func TestSessionExpires(t *testing.T) {
	ts := startMQTT(t)
	c, _, _, err := ts.dialV5(t, "brief", v5opts{expiry: 1, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "b/#", 1)
	_ = c.Disconnect(&paho.Disconnect{})
	v, _ := ts.broker.Vhost("/")
	eventually(t, "session queue expiry", func() bool {
		_, err := v.Queue(nil, "mqtt-subscription-briefqos1")
		return err != nil
	})
	_, _, ca, err := ts.dialV5(t, "brief", v5opts{expiry: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("expired session present")
	}
}

// Unacknowledged deliveries come back, marked duplicate, when the session
// resumes; nothing is delivered twice on the new connection.
func TestUnackedRedeliveredOnResume(t *testing.T) {
	ts := startMQTT(t)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan *paho.Publish, 10)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, EnableManualAcknowledgment: true,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			first <- pr.Packet // never acknowledged
			return true, nil
		}}})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "slow", KeepAlive: 30, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}}); err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "slow", 1)
	pub, _ := ts.v5(t, "pub")
	for i := range 3 {
		publish5(t, pub, &paho.Publish{Topic: "slow", QoS: 1, Payload: []byte{byte(i)}})
	}
	for range 3 {
		select {
		case <-first:
		case <-time.After(waitFor):
			t.Fatal("first delivery missing")
		}
	}
	_ = conn.Close() // drop without acknowledging

	_, got, ca, err := ts.dialV5(t, "slow", v5opts{expiry: 300})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Fatal("session not present")
	}
	for i := range 3 {
		m := got.next(t)
		if m.Payload[0] != byte(i) {
			t.Fatalf("redelivery %d: payload %v", i, m.Payload)
		}
	}
	got.none(t, 200*time.Millisecond)
}

// Receive maximum bounds the unacknowledged QoS 1 deliveries.
func TestReceiveMaximum(t *testing.T) {
	ts := startMQTT(t)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan *paho.Publish, 100)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, EnableManualAcknowledgment: true,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			held <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "rm", CleanStart: true, KeepAlive: 30, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true, Properties: &paho.ConnectProperties{ReceiveMaximum: ptr(uint16(3))}}); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	subscribe5(t, c, "rm", 1)
	pub, _ := ts.v5(t, "pub")
	for i := range 10 {
		publish5(t, pub, &paho.Publish{Topic: "rm", QoS: 1, Payload: []byte{byte(i)}})
	}
	v, _ := ts.broker.Vhost("/")
	q, err := v.Queue(nil, "mqtt-subscription-rmqos1")
	if err == nil {
		t.Fatal("a clean session's queue should be exclusive to its connection")
	}
	var got []*paho.Publish
	for len(got) < 3 {
		select {
		case p := <-held:
			got = append(got, p)
		case <-time.After(waitFor):
			t.Fatalf("got %d deliveries, want 3", len(got))
		}
	}
	select {
	case p := <-held:
		t.Fatalf("a 4th delivery (%v) beyond receive maximum 3", p.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	_ = q
	for _, p := range got {
		if err := c.Ack(p); err != nil {
			t.Fatal(err)
		}
	}
	for n := 3; n < 10; {
		select {
		case p := <-held:
			if err := c.Ack(p); err != nil {
				t.Fatal(err)
			}
			n++
		case <-time.After(waitFor):
			t.Fatalf("only %d deliveries after acks", n)
		}
	}
}

// A bounded session queue refuses new QoS 1 messages when full; the
// publisher hears it.
func TestQueueOverflow(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = newLimits(3) })
	c, _, _, err := ts.dialV5(t, "full", v5opts{expiry: 300, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "full", 1)
	_ = c.Disconnect(&paho.Disconnect{})
	ts.waitIdle(t, "mqtt-subscription-fullqos1")
	pub, _ := ts.v5(t, "pub")
	for i := range 3 {
		publish5(t, pub, &paho.Publish{Topic: "full", QoS: 1, Payload: []byte{byte(i)}})
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	r, err := pub.Publish(ctx, &paho.Publish{Topic: "full", QoS: 1, Payload: []byte("too many")})
	if err == nil || r == nil || r.ReasonCode != 0x97 {
		t.Fatalf("4th publish: %+v %v, want reason 0x97 (quota exceeded)", r, err)
	}
}

// While a resource alarm is raised publishers wait; then they go on.
func TestResourceAlarmBlocksPublishers(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "alarm", 1)
	pub, _ := ts.v5(t, "pub")
	ts.broker.SetAlarm("memory", "test", true)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		_, err := pub.Publish(ctx, &paho.Publish{Topic: "alarm", QoS: 1, Payload: []byte("x")})
		done <- err
	}()
	got.none(t, 200*time.Millisecond)
	select {
	case <-done:
		t.Fatal("publish completed during the alarm")
	default:
	}
	ts.broker.SetAlarm("memory", "", false)
	got.next(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestManagementClose(t *testing.T) {
	ts := startMQTT(t)
	gone := make(chan *paho.Disconnect, 1)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "victim", CleanStart: true, KeepAlive: 30,
		Username: "guest", UsernameFlag: true, Password: []byte("guest"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	var target *core.Conn
	eventually(t, "the core connection", func() bool {
		for _, cc := range ts.broker.Connections() {
			if cc.Info().ClientProperties["client_id"] == "victim" && cc.Info().Protocol == "MQTT 5.0" {
				target = cc
			}
		}
		return target != nil
	})
	if !target.Kill("test") {
		t.Fatal("Kill not supported")
	}
	select {
	case d := <-gone:
		if d.ReasonCode != 0x98 {
			t.Fatalf("reason %#x, want 0x98 (administrative action)", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("not disconnected")
	}
	eventually(t, "the core connection to close", func() bool { return len(ts.broker.Connections()) == 0 })
}

// Restarting the adapter over the same core and store keeps persistent
// sessions and retained messages.
func TestAdapterRestartKeepsSessions(t *testing.T) {
	ts := startMQTT(t)
	c, _, _, err := ts.dialV5(t, "durable", v5opts{expiry: 3600, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "d/#", 1)
	_ = c.Disconnect(&paho.Disconnect{})
	ts.waitIdle(t, "mqtt-subscription-durableqos1")
	pub, _, _, err := ts.dialV5(t, "pub", v5opts{clean: true, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	publish5(t, pub, &paho.Publish{Topic: "d/1", QoS: 1, Payload: []byte("kept")})
	publish5(t, pub, &paho.Publish{Topic: "r/1", QoS: 1, Retain: true, Payload: []byte("retained")})
	ts.stop(t)

	ts2 := (&testServer{broker: ts.broker, users: ts.users, store: ts.store}).serve(t)
	d, got, ca, err := ts2.dialV5(t, "durable", v5opts{expiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Fatal("session lost across an adapter restart")
	}
	if m := got.next(t); string(m.Payload) != "kept" {
		t.Fatalf("got %q", m.Payload)
	}
	subscribe5(t, d, "r/#", 1)
	if m := got.next(t); string(m.Payload) != "retained" || !m.Retain {
		t.Fatalf("got %q retain %v", m.Payload, m.Retain)
	}
	// The restored subscription is live.
	p2, _ := ts2.v5(t, "pub2")
	publish5(t, p2, &paho.Publish{Topic: "d/2", QoS: 1, Payload: []byte("live")})
	if m := got.next(t); string(m.Payload) != "live" {
		t.Fatalf("got %q", m.Payload)
	}
}

// Deleting a session's queue from outside (management) disconnects the
// client, as RabbitMQ does.
func TestSessionQueueDeletedDisconnects(t *testing.T) {
	ts := startMQTT(t)
	gone := make(chan *paho.Disconnect, 1)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "doomed", KeepAlive: 30, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(600))}}); err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "d", 1)
	v, _ := ts.broker.Vhost("/")
	if _, err := v.DeleteQueue(nil, "mqtt-subscription-doomedqos1", false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-gone:
		if d.ReasonCode != 0x98 {
			t.Fatalf("reason %#x, want 0x98", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("not disconnected")
	}
}

// Shutdown tells MQTT 5 clients why they are disconnected.
func TestShutdownDisconnectsClients(t *testing.T) {
	ts := startMQTT(t)
	gone := make(chan *paho.Disconnect, 1)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "bye", KeepAlive: 30, CleanStart: true, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	ts.stop(t)
	select {
	case d := <-gone:
		if d.ReasonCode != 0x8B {
			t.Fatalf("reason %#x, want 0x8B (server shutting down)", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("not disconnected")
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Fatal("still accepting connections")
	}
}

// Topic aliases from the client are resolved (mochi) before the core sees
// the topic.
func TestInboundTopicAlias(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "alias/#", 0)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "alias/long/topic", Payload: []byte("1"), Properties: &paho.PublishProperties{TopicAlias: ptr(uint16(1))}})
	publish5(t, pub, &paho.Publish{Topic: "", Payload: []byte("2"), Properties: &paho.PublishProperties{TopicAlias: ptr(uint16(1))}})
	for _, want := range []string{"1", "2"} {
		if m := got.next(t); m.Topic != "alias/long/topic" || string(m.Payload) != want {
			t.Fatalf("got %q on %q", m.Payload, m.Topic)
		}
	}
}

// MQTT 3 has no negative PUBACK: a QoS 1 message the full queue refuses
// closes the publisher's connection instead of leaving it waiting for an
// acknowledgement that never comes.
func TestQueueOverflowV3ClosesPublisher(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = newLimits(3) })
	sub, _ := ts.v3(t, "full3", false)
	wait3(t, sub.Subscribe("full3", 1, nil))
	sub.Disconnect(100)
	ts.waitIdle(t, "mqtt-subscription-full3qos1")
	pub, _ := ts.v3(t, "pub3", true)
	for i := range 3 {
		wait3(t, pub.Publish("full3", 1, false, []byte{byte(i)}))
	}
	pub.Publish("full3", 1, false, "too many")
	eventually(t, "the publisher's connection to close", func() bool { return !pub.IsConnectionOpen() })
	v, _ := ts.broker.Vhost("/")
	q, err := v.Queue(nil, "mqtt-subscription-full3qos1")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Counts(); n != 3 {
		t.Fatalf("%d messages queued, want 3", n)
	}
}

// A QoS 1 subscriber slower than its publisher slows the publisher down
// (the publisher is not read from while the subscriber's queue is nearly
// full) instead of having its messages refused at the queue's limit: with
// a queue bound of 50, an MQTT 3.1.1 publisher sending 600 messages as
// fast as it can keeps its connection and every message arrives, in order.
func TestSlowSubscriberSlowsPublisher(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = &mqtt.Server{MaxQueueLength: 50, MaxInflight: 5} })
	const n = 600
	got := make(chan paho3.Message, n)
	sub, _ := ts.v3(t, "slow-sub", true, func(o *paho3.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			time.Sleep(time.Millisecond) // a slow consumer
			got <- m
		})
	})
	wait3(t, sub.Subscribe("slow/t", 1, nil))
	pub, _ := ts.v3(t, "fast-pub", true)
	toks := make([]paho3.Token, n)
	for i := range n {
		toks[i] = pub.Publish("slow/t", 1, false, strconv.Itoa(i))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30 * time.Second) {
			t.Fatalf("publish %d not acknowledged", i)
		}
		if err := tok.Error(); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if !pub.IsConnectionOpen() {
		t.Fatal("the publisher's connection was closed")
	}
	for i := range n {
		m := next3(t, got)
		if string(m.Payload()) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %q", i, m.Payload())
		}
	}
}

// A QoS 0 subscriber slower than its publisher loses nothing while it is
// connected: its queue (bound 50, drop-head) holds the publisher back
// before it would drop, as it does for QoS 1. 2,000 messages of 8 KiB
// are more than the subscriber's queue, its delivery buffer and the
// sockets' buffers hold together.
func TestSlowQoS0SubscriberLosesNothing(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = &mqtt.Server{MaxQueueLength: 50} })
	const n = 2000
	got := make(chan paho3.Message, n)
	sub, _ := ts.v3(t, "slow-sub0", true, func(o *paho3.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			time.Sleep(500 * time.Microsecond) // a slow consumer
			got <- m
		})
	})
	wait3(t, sub.Subscribe("slow/q0", 0, nil))
	pub, _ := ts.v3(t, "fast-pub0", true)
	body := make([]byte, 8<<10)
	for i := range n {
		copy(body, strconv.Itoa(i)+" ")
		if tok := pub.Publish("slow/q0", 0, false, body); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	for i := range n {
		m := next3(t, got)
		if want := strconv.Itoa(i) + " "; string(m.Payload()[:len(want)]) != want {
			t.Fatalf("message %d: got %q (messages were dropped)", i, m.Payload()[:8])
		}
	}
}

// A client that reconnects while the server is still closing its previous
// connection gets the message that connection held unacknowledged first,
// then the ones queued after it: the new session waits for the old one to
// put back what it held before its own consumer starts.
func TestReconnectWhileClosingKeepsOrder(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = &mqtt.Server{MaxInflight: 1} })
	noAck := func(o *paho3.ClientOptions) { o.SetAutoAckDisabled(true) }
	sub, got := ts.v3(t, "reorder", false, noAck)
	wait3(t, sub.Subscribe("r/#", 1, nil))
	pub, _ := ts.v3(t, "reorder-pub", true)
	wait3(t, pub.Publish("r/0", 1, false, "m0"))
	if m := next3(t, got); string(m.Payload()) != "m0" {
		t.Fatalf("got %q, want m0", m.Payload())
	}
	// m0 is held by the first connection (not acked; at most 1 in flight).
	closing, release := make(chan struct{}), make(chan struct{})
	mqtt.SetClosingHook(func(id string) {
		if id == "reorder" {
			mqtt.SetClosingHook(nil)
			close(closing)
			<-release
		}
	})
	defer mqtt.SetClosingHook(nil)
	sub.Disconnect(0)
	select {
	case <-closing:
	case <-time.After(waitFor):
		t.Fatal("the first connection's session did not start closing")
	}
	for i := 1; i <= 2; i++ {
		wait3(t, pub.Publish("r/"+strconv.Itoa(i), 1, false, "m"+strconv.Itoa(i)))
	}
	// Reconnect while the first session is still closing.
	got2 := make(chan paho3.Message, 10)
	o := paho3.NewClientOptions().AddBroker("tcp://" + ts.addr).SetClientID("reorder").
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetOrderMatters(true).SetUsername("guest").SetPassword("guest").
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { got2 <- m })
	c2 := paho3.NewClient(o)
	defer c2.Disconnect(100)
	tok := c2.Connect()
	// Without waiting, the new session would be up (and take m1) by now;
	// with it, CONNACK waits for the old session.
	early := tok.WaitTimeout(300 * time.Millisecond)
	close(release)
	wait3(t, tok)
	var order []string
	for range 3 {
		select {
		case m := <-got2:
			order = append(order, string(m.Payload()))
		case <-time.After(waitFor):
			t.Fatalf("got %v, then nothing (connected before the old session closed: %v)", order, early)
		}
	}
	if fmt.Sprint(order) != "[m0 m1 m2]" {
		t.Fatalf("after reconnecting: %v, want [m0 m1 m2] (connected before the old session closed: %v)", order, early)
	}
}

// A connection that never subscribes keeps no core session (no channel in
// the management API, as RabbitMQ's own MQTT connections show none): an
// idle device costs that much less. Its first subscription opens one, and
// deliveries flow through it.
func TestCoreSessionOpensOnFirstSubscribe(t *testing.T) {
	ts := startMQTT(t)
	c, got := ts.v5(t, "lazy")
	var conn *core.Conn
	for _, cc := range ts.broker.Connections() {
		if cc.Info().ClientProperties["client_id"] == "lazy" {
			conn = cc
		}
	}
	if conn == nil {
		t.Fatal("no core connection for client lazy")
	}
	if n := conn.Channels(); n != 0 {
		t.Fatalf("%d channels before subscribing, want 0", n)
	}
	publish5(t, c, &paho.Publish{Topic: "nobody/listens", QoS: 1, Payload: []byte("x")})
	if n := conn.Channels(); n != 0 {
		t.Fatalf("%d channels after publishing, want 0", n)
	}
	subscribe5(t, c, "t/#", 1)
	if n := conn.Channels(); n != 1 {
		t.Fatalf("%d channels after subscribing, want 1", n)
	}
	subscribe5(t, c, "u/#", 0)
	if n := conn.Channels(); n != 1 {
		t.Fatalf("%d channels after a second subscription, want 1", n)
	}
	publish5(t, c, &paho.Publish{Topic: "t/1", QoS: 1, Payload: []byte("y")})
	if m := got.next(t); m.Topic != "t/1" || string(m.Payload) != "y" {
		t.Fatalf("got %q %q", m.Topic, m.Payload)
	}
}
