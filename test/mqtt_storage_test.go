package test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

// startBrokerOnMemFS runs a broker with MQTT on loopback ports over an
// in-memory file system whose writes the test can make fail.
func startBrokerOnMemFS(t testing.TB) (*broker.Broker, *store.MemFS) {
	t.Helper()
	fsys := store.NewMemFS()
	b := testutil.StartBroker(t, testutil.WithDataDir("/data"), testutil.WithFS(fsys),
		testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.MQTTWS), testutil.IgnoreShutdownError())
	t.Cleanup(func() { fsys.FailWrite(nil) }) // runs before the broker's shutdown: cleanups run last-in first-out
	return b.Broker, fsys
}

var errInjected = errors.New("injected write failure")

// A SUBSCRIBE whose session record cannot be stored is refused (SUBACK
// 0x80) and the session keeps the subscription it had.
func TestMQTTSubackReportsFailedSessionSave(t *testing.T) {
	t.Run("v5", func(t *testing.T) {
		b, fsys := startBrokerOnMemFS(t)
		sub, got, _ := mqtt5(t, b, "save-fail-5", false, 600)
		mqttSub5(t, sub, "s/a", 1)
		// Same queue and binding: only the session record is written.
		fsys.FailWrite(errInjected)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sa, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "s/a", QoS: 2}}})
		if err == nil || sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x80 {
			t.Fatalf("SUBACK after a failed save: %+v, err %v; want reason 0x80", sa, err)
		}
		// The subscription is still the stored one: QoS 1.
		pub, _, _ := mqtt5(t, b, "save-fail-5-pub", true, 0)
		mqttPub5(t, pub, &paho.Publish{Topic: "s/a", QoS: 2, Payload: []byte("x")})
		if m := mqttRecv5(t, got); m.QoS != 1 {
			t.Fatalf("delivered with QoS %d after the refused upgrade; want 1", m.QoS)
		}
	})
	t.Run("v3", func(t *testing.T) {
		b, fsys := startBrokerOnMemFS(t)
		c, _, _ := mqtt3(t, b, "save-fail-3", false)
		mqttWait3(t, c.Subscribe("s/b", 1, nil))
		fsys.FailWrite(errInjected)
		tok := c.Subscribe("s/b", 2, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatal("no SUBACK")
		}
		if code := tok.(interface{ Result() map[string]byte }).Result()["s/b"]; code != 0x80 {
			t.Fatalf("SUBACK code %#x after a failed save; want 0x80", code)
		}
	})
}

// Deleting a retained message (an empty retained PUBLISH) whose stored copy
// cannot be removed fails the publish (MQTT 5 PUBACK 0x80; MQTT 3 closes
// the connection), and the retained message stays, in memory as on disk.
func TestMQTTRetainedDeleteFailure(t *testing.T) {
	check := func(t *testing.T, b *broker.Broker) {
		t.Helper()
		c, got, _ := mqtt5(t, b, "retain-fail-check", true, 0)
		mqttSub5(t, c, "r/t", 1)
		if m := mqttRecv5(t, got); string(m.Payload) != "kept" || !m.Retain {
			t.Fatalf("retained message after the failed delete: %q retain=%v", m.Payload, m.Retain)
		}
	}
	t.Run("v5", func(t *testing.T) {
		b, fsys := startBrokerOnMemFS(t)
		pub, _, _ := mqtt5(t, b, "retain-fail-5", true, 0)
		mqttPub5(t, pub, &paho.Publish{Topic: "r/t", QoS: 1, Retain: true, Payload: []byte("kept")})
		fsys.FailWrite(errInjected)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pr, err := pub.Publish(ctx, &paho.Publish{Topic: "r/t", QoS: 1, Retain: true})
		if err == nil || pr == nil || pr.ReasonCode != 0x80 {
			t.Fatalf("PUBACK of a failed retained delete: %+v, err %v; want 0x80", pr, err)
		}
		check(t, b)
	})
	t.Run("v3", func(t *testing.T) {
		b, fsys := startBrokerOnMemFS(t)
		c, _, _ := mqtt3(t, b, "retain-fail-3", true)
		mqttWait3(t, c.Publish("r/t", 1, true, "kept"))
		fsys.FailWrite(errInjected)
		tok := c.Publish("r/t", 1, true, []byte{})
		deadline := time.Now().Add(5 * time.Second)
		for c.IsConnectionOpen() {
			if time.Now().After(deadline) {
				t.Fatal("connection not closed after a failed retained delete")
			}
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case <-tok.Done():
			if tok.Error() == nil {
				t.Fatal("a failed retained delete was acknowledged")
			}
		default: // never acknowledged
		}
		check(t, b)
	})
}

// An UNSUBSCRIBE whose session record cannot be stored is refused (MQTT 5
// UNSUBACK 0x80) and the subscription stays.
func TestMQTTUnsubackReportsFailedSessionSave(t *testing.T) {
	b, fsys := startBrokerOnMemFS(t)
	sub, got, _ := mqtt5(t, b, "unsub-fail", false, 600)
	mqttSub5(t, sub, "u/a", 1)
	fsys.FailWrite(errInjected)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ua, err := sub.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"u/a"}})
	if err == nil || ua == nil || len(ua.Reasons) != 1 || ua.Reasons[0] != 0x80 {
		t.Fatalf("UNSUBACK after a failed save: %+v, err %v; want reason 0x80", ua, err)
	}
	pub, _, _ := mqtt5(t, b, "unsub-fail-pub", true, 0)
	mqttPub5(t, pub, &paho.Publish{Topic: "u/a", QoS: 0, Payload: []byte("still subscribed")})
	if m := mqttRecv5(t, got); string(m.Payload) != "still subscribed" {
		t.Fatalf("got %q", m.Payload)
	}
}
