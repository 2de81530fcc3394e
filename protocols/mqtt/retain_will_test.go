package mqtt_test

import (
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func TestRetained(t *testing.T) { forEachLogin(t, testRetained) }

func testRetained(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "ret/a", QoS: 1, Retain: true, Payload: []byte("A"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	publish5(t, pub, &paho.Publish{Topic: "ret/b", QoS: 0, Retain: true, Payload: []byte("B")})
	publish5(t, pub, &paho.Publish{Topic: "ret/b/deep", QoS: 2, Retain: true, Payload: []byte("C")})
	publish5(t, pub, &paho.Publish{Topic: "$ret/x", QoS: 1, Retain: true, Payload: []byte("dollar")})

	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "ret/+", 2)
	var seen []string
	for range 2 {
		m := got.next(t)
		if !m.Retain {
			t.Fatalf("retained message %q without the retain flag", m.Topic)
		}
		seen = append(seen, fmt.Sprintf("%s=%s@%d", m.Topic, m.Payload, m.QoS))
		if m.Topic == "ret/a" && (m.Properties.ContentType != "text/plain" || m.Properties.User.Get("k") != "v") {
			t.Fatalf("retained properties %+v", m.Properties)
		}
	}
	sort.Strings(seen)
	if fmt.Sprint(seen) != "[ret/a=A@1 ret/b=B@0]" {
		t.Fatalf("got %v", seen)
	}
	got.none(t, 100*time.Millisecond)

	// "#" sees everything but the '$' topic.
	all, gotAll := ts.v5(t, "all")
	subscribe5(t, all, "#", 2)
	for range 3 {
		gotAll.next(t)
	}
	gotAll.none(t, 100*time.Millisecond)

	// A live message to a subscriber has no retain flag, unless
	// retain-as-published.
	publish5(t, pub, &paho.Publish{Topic: "ret/a", QoS: 1, Retain: true, Payload: []byte("A2")})
	if m := got.next(t); m.Retain || string(m.Payload) != "A2" {
		t.Fatalf("live message: retain %v payload %q", m.Retain, m.Payload)
	}
	// An empty retained message clears the topic (and is delivered).
	publish5(t, pub, &paho.Publish{Topic: "ret/a", QoS: 1, Retain: true})
	if m := got.next(t); len(m.Payload) != 0 {
		t.Fatalf("got %q", m.Payload)
	}
	late, gotLate := ts.v5(t, "late")
	subscribe5(t, late, "ret/a", 1)
	gotLate.none(t, 100*time.Millisecond)
	if n := ts.RetainedCount(); n != 3 {
		t.Fatalf("%d retained messages, want 3", n)
	}
}

func TestRetainHandlingAndRetainAsPublished(t *testing.T) {
	ts := startMQTT(t)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "rh", QoS: 1, Retain: true, Payload: []byte("R")})
	sub, got := ts.v5(t, "sub")
	ctx, cancel := ctxTimeout()
	defer cancel()
	s := func(rh byte, rap bool) {
		t.Helper()
		if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "rh", QoS: 1, RetainHandling: rh, RetainAsPublished: rap}}}); err != nil {
			t.Fatal(err)
		}
	}
	s(2, false) // never send retained
	got.none(t, 100*time.Millisecond)
	s(1, false) // only for a new subscription: this one exists
	got.none(t, 100*time.Millisecond)
	s(0, true) // always
	if m := got.next(t); !m.Retain {
		t.Fatal("retained message without retain flag")
	}
	publish5(t, pub, &paho.Publish{Topic: "rh", QoS: 1, Retain: true, Payload: []byte("R2")})
	if m := got.next(t); !m.Retain || string(m.Payload) != "R2" {
		t.Fatalf("retain-as-published: retain %v payload %q", m.Retain, m.Payload)
	}
}

func TestRetainedV3(t *testing.T) { forEachLogin(t, testRetainedV3) }

func testRetainedV3(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	pub, _ := ts.v3(t, "p3", true)
	wait3(t, pub.Publish("r3/x", 1, true, "kept"))
	sub, got := ts.v3(t, "s3", true)
	wait3(t, sub.Subscribe("r3/#", 1, nil))
	if m := next3(t, got); string(m.Payload()) != "kept" || !m.Retained() {
		t.Fatalf("got %q retained %v", m.Payload(), m.Retained())
	}
}

// dialWithWill connects a v5 client with a will and returns its raw
// connection, so the test can drop it without DISCONNECT.
func (ts *testServer) dialWithWill(t *testing.T, id string, delay uint32, expiry uint32) (*paho.Client, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true, Username: "guest", UsernameFlag: !ts.anon,
		Password: []byte("guest"), PasswordFlag: !ts.anon,
		WillMessage:    &paho.WillMessage{Topic: "will/" + id, QoS: 1, Payload: []byte("gone: " + id)},
		WillProperties: &paho.WillProperties{WillDelayInterval: ptr(delay), ContentType: "text/plain"},
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: ptr(expiry)}}
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatal(err)
	}
	return c, conn
}

func TestWillOnAbnormalDisconnect(t *testing.T) { forEachLogin(t, testWillOnAbnormalDisconnect) }

func testWillOnAbnormalDisconnect(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	watcher, got := ts.v5(t, "watcher")
	subscribe5(t, watcher, "will/#", 1)
	_, conn := ts.dialWithWill(t, "w1", 0, 0)
	conn.Close()
	m := got.next(t)
	if m.Topic != "will/w1" || string(m.Payload) != "gone: w1" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}

func TestNoWillOnDisconnect(t *testing.T) {
	ts := startMQTT(t)
	watcher, got := ts.v5(t, "watcher")
	subscribe5(t, watcher, "will/#", 1)
	c, _ := ts.dialWithWill(t, "w2", 0, 0)
	_ = c.Disconnect(&paho.Disconnect{})
	got.none(t, 200*time.Millisecond)
	// DISCONNECT with reason 0x04 asks for the will.
	c, _ = ts.dialWithWill(t, "w3", 0, 0)
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0x04})
	if m := got.next(t); m.Topic != "will/w3" {
		t.Fatalf("got %q", m.Topic)
	}
}

func TestWillDelay(t *testing.T) {
	ts := startMQTT(t)
	watcher, got := ts.v5(t, "watcher")
	subscribe5(t, watcher, "will/#", 1)
	// Reconnecting within the delay cancels the will.
	_, conn := ts.dialWithWill(t, "wd", 1, 60)
	conn.Close()
	time.Sleep(100 * time.Millisecond)
	if _, _, _, err := ts.dialV5(t, "wd", v5opts{expiry: 60}); err != nil {
		t.Fatal(err)
	}
	got.none(t, 1500*time.Millisecond)
	// Otherwise it comes after the delay.
	_, conn = ts.dialWithWill(t, "wd2", 1, 60)
	start := time.Now()
	conn.Close()
	m := got.next(t)
	if m.Topic != "will/wd2" || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("got %q after %v", m.Topic, time.Since(start))
	}
}

func TestWillV3(t *testing.T) { forEachLogin(t, testWillV3) }

func testWillV3(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	watcher, got := ts.v5(t, "watcher")
	subscribe5(t, watcher, "lwt/#", 0)
	c, _ := ts.v3(t, "v3will", true, func(o *paho3.ClientOptions) {
		o.SetWill("lwt/v3", "bye", 0, false)
	})
	// Closing the socket without DISCONNECT: paho has no API for that, so
	// kill the session from the server.
	_ = c
	for _, cc := range ts.broker.Connections() {
		if cc.Info().ClientProperties["client_id"] == "v3will" {
			cc.Kill("test")
		}
	}
	if m := got.next(t); m.Topic != "lwt/v3" || string(m.Payload) != "bye" {
		t.Fatalf("got %+v", m)
	}
}

func TestSharedSubscription(t *testing.T) {
	ts := startMQTT(t)
	a, gotA := ts.v5(t, "a")
	b, gotB := ts.v5(t, "b")
	subscribe5(t, a, "$share/g/jobs/#", 1)
	subscribe5(t, b, "$share/g/jobs/#", 1)
	plain, gotPlain := ts.v5(t, "plain")
	subscribe5(t, plain, "jobs/#", 0)
	pub, _ := ts.v5(t, "pub")
	const n = 20
	for i := range n {
		publish5(t, pub, &paho.Publish{Topic: "jobs/x", QoS: 1, Payload: []byte{byte(i)}})
	}
	seen := map[byte]int{}
	na, nb := 0, 0
	for na+nb < n {
		select {
		case m := <-gotA:
			seen[m.Payload[0]]++
			na++
		case m := <-gotB:
			seen[m.Payload[0]]++
			nb++
		case <-time.After(waitFor):
			t.Fatalf("got %d+%d of %d", na, nb, n)
		}
	}
	if len(seen) != n || na == 0 || nb == 0 {
		t.Fatalf("distribution a=%d b=%d distinct=%d", na, nb, len(seen))
	}
	gotA.none(t, 50*time.Millisecond)
	gotB.none(t, 50*time.Millisecond)
	// Non-shared subscribers get every message.
	for range n {
		gotPlain.next(t)
	}
	// When the last member leaves, the group's queue goes.
	ctx, cancel := ctxTimeout()
	defer cancel()
	for _, c := range []*paho.Client{a, b} {
		if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"$share/g/jobs/#"}}); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := ts.broker.Vhost("/")
	eventually(t, "the shared queue to go", func() bool {
		_, err := v.Queue(nil, "mqtt-shared-g/jobs/#")
		return err != nil
	})
}
