package mqtt_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/internal/clock"
)

// A client may change its session expiry in DISCONNECT [MQTT-3.14.2-2]:
// raised from 1 to 5 s, the session is still there 3 s later and gone
// after 5 s; set to 0, the session ends at once. The adapter takes its time
// from the core's clock, a fake one here, so both sides of the new
// interval are checked without waiting for it.
func TestSessionExpiryChangedOnDisconnect(t *testing.T) {
	fake := clock.NewFake(time.Now())
	ts := startMQTT(t, func(ts *testServer) { ts.broker = core.NewBrokerWith(core.Options{Clock: fake}) })
	pub, _ := ts.v5(t, "expiry-pub")

	// Two sessions get the same change: "raise" is resumed within the new
	// interval, "lapse" is left to run out.
	for _, id := range []string{"raise", "lapse"} {
		c, _, _, err := ts.dialV5(t, id, v5opts{expiry: 1, noCleanup: true})
		if err != nil {
			t.Fatal(err)
		}
		subscribe5(t, c, id+"/#", 1)
		_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: ptr(uint32(5))}})
	}
	// A session leaves the live ones and starts its expiry in one step.
	eventually(t, "both sessions to close", func() bool { return ts.Sessions() == 1 })
	publish5(t, pub, &paho.Publish{Topic: "raise/1", QoS: 1, Payload: []byte("kept")})

	fake.Advance(3 * time.Second) // past the first interval, within the new one
	_, got, ca, err := ts.dialV5(t, "raise", v5opts{expiry: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Fatal("session gone 3 s after a DISCONNECT that set its expiry to 5 s")
	}
	if m := got.next(t); string(m.Payload) != "kept" {
		t.Fatalf("got %q", m.Payload)
	}

	fake.Advance(2 * time.Second) // the new interval has passed
	_, _, ca, err = ts.dialV5(t, "lapse", v5opts{expiry: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("session present 5 s after a DISCONNECT that set its expiry to 5 s")
	}

	c, _, _, err := ts.dialV5(t, "drop", v5opts{expiry: 600, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "drop/#", 1)
	_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: ptr(uint32(0))}})
	v, _ := ts.broker.Vhost("/")
	eventually(t, "the session queue to go", func() bool {
		_, err := v.Queue(nil, "mqtt-subscription-dropqos1")
		return err != nil
	})
	_, _, ca, err = ts.dialV5(t, "drop", v5opts{expiry: 600})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("session present after a DISCONNECT that set its expiry to 0")
	}
}

// A client that connected with session expiry 0 may not set one in
// DISCONNECT: protocol error 0x82 [MQTT-3.14.2-2].
func TestSessionExpiryRaisedFromZero(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectNamed("MQTT", 5, "zero")...)
	if h, body, err := c.packet(); err != nil || h != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %v %v", h, body, err)
	}
	c.send(t, 0xE0, 7, 0, 5, 0x11, 0, 0, 0, 5) // DISCONNECT 0, expiry 5 s
	h, body, err := c.packet()
	if err != nil || h != 0xE0 || len(body) < 1 || body[0] != 0x82 {
		t.Fatalf("got %#x %v %v, want DISCONNECT 0x82 (protocol error)", h, body, err)
	}
	c.closed(t)
}

// The interval a client set in DISCONNECT is stored with the session: after
// an adapter restart the session still expires by it.
func TestSessionExpiryAcrossRestart(t *testing.T) {
	ts := startMQTT(t)
	c, _, _, err := ts.dialV5(t, "short-lived", v5opts{expiry: 600, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "sl/#", 1)
	_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: ptr(uint32(1))}})
	ts.waitIdle(t, "mqtt-subscription-short-livedqos1")
	ts.stop(t)

	ts2 := (&testServer{broker: ts.broker, users: ts.users, store: ts.store}).serve(t)
	v, _ := ts.broker.Vhost("/")
	eventually(t, "the session to expire after 1 s", func() bool {
		_, err := v.Queue(nil, "mqtt-subscription-short-livedqos1")
		return err != nil
	})
	_, _, ca, err := ts2.dialV5(t, "short-lived", v5opts{expiry: 600})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Fatal("session present after its stored expiry interval")
	}
}

// The adapter keeps the mochi client of a disconnected persistent session
// (its in-flight state goes to the next connection) until the session
// expires, and no longer: nothing else drops it.
func TestSessionExpiryForgetsClient(t *testing.T) {
	fake := clock.NewFake(time.Now())
	ts := startMQTT(t, func(ts *testServer) { ts.broker = core.NewBrokerWith(core.Options{Clock: fake}) })
	c, _, _, err := ts.dialV5(t, "kept-client", v5opts{expiry: 5, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	eventually(t, "the session to close", func() bool { return ts.Sessions() == 0 })
	if n := ts.MochiClients(); n != 1 {
		t.Fatalf("%d clients kept for a disconnected persistent session, want 1", n)
	}
	fake.Advance(6 * time.Second)
	eventually(t, "the expired session's client to go", func() bool { return ts.MochiClients() == 0 })
}
