package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Persistent sessions (their subscriptions and queued QoS 1/2 messages) and
// retained messages survive a broker restart on the same data directory.
func TestMQTTPersistentSessionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)

	// MQTT 5 with a session expiry, and MQTT 3.1.1 with clean session 0.
	c5, _, _ := mqtt5(t, b, "dev5", false, 3600)
	mqttSub5(t, c5, "fleet/+/cmd", 1)
	mqttSub5(t, c5, "fleet/all", 2)
	_ = c5.Disconnect(&paho.Disconnect{})
	c3, _, _ := mqtt3(t, b, "dev3", false)
	mqttWait3(t, c3.Subscribe("fleet/#", 1, nil))
	c3.Disconnect(100)
	waitQueueIdle(t, b, "mqtt-subscription-dev5qos1")
	waitQueueIdle(t, b, "mqtt-subscription-dev3qos1")

	pub, _, _ := mqtt5(t, b, "ctl", true, 0)
	for i := range 3 {
		mqttPub5(t, pub, &paho.Publish{Topic: "fleet/dev5/cmd", QoS: 1, Payload: []byte(fmt.Sprint("cmd", i))})
	}
	mqttPub5(t, pub, &paho.Publish{Topic: "fleet/all", QoS: 2, Payload: []byte("everyone")})
	mqttPub5(t, pub, &paho.Publish{Topic: "config/dev5", QoS: 1, Retain: true, Payload: []byte("cfg-v7")})
	_ = pub.Disconnect(&paho.Disconnect{})
	stop()

	b2, _ := startBrokerAt(t, dir)
	d5, got5, ca := mqtt5(t, b2, "dev5", false, 3600)
	if !ca.SessionPresent {
		t.Fatal("MQTT 5 session not present after restart")
	}
	for i := range 3 {
		m := mqttRecv5(t, got5)
		if string(m.Payload) != fmt.Sprint("cmd", i) || m.QoS != 1 {
			t.Fatalf("message %d: %q at QoS %d", i, m.Payload, m.QoS)
		}
	}
	if m := mqttRecv5(t, got5); string(m.Payload) != "everyone" || m.QoS != 2 {
		t.Fatalf("got %q at QoS %d", m.Payload, m.QoS)
	}
	mqttNone5(t, got5)
	// The subscriptions came back too.
	pub2, _, _ := mqtt5(t, b2, "ctl2", true, 0)
	mqttPub5(t, pub2, &paho.Publish{Topic: "fleet/dev5/cmd", QoS: 1, Payload: []byte("after restart")})
	if m := mqttRecv5(t, got5); string(m.Payload) != "after restart" {
		t.Fatalf("got %q", m.Payload)
	}
	// Retained messages too.
	mqttSub5(t, d5, "config/+", 1)
	if m := mqttRecv5(t, got5); string(m.Payload) != "cfg-v7" || !m.Retain {
		t.Fatalf("retained: %q retain %v", m.Payload, m.Retain)
	}

	_, got3, present := mqtt3(t, b2, "dev3", false)
	if !present {
		t.Fatal("MQTT 3.1.1 session not present after restart")
	}
	seen := map[string]bool{}
	for range 5 {
		seen[string(mqttRecv3(t, got3).Payload())] = true
	}
	for _, want := range []string{"cmd0", "cmd1", "cmd2", "everyone", "after restart"} {
		if !seen[want] {
			t.Fatalf("MQTT 3.1.1 session missed %q (got %v)", want, seen)
		}
	}
}

// A clean session leaves nothing behind for the next start.
func TestMQTTCleanSessionNotKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)
	c, _, _ := mqtt5(t, b, "eph", true, 0)
	mqttSub5(t, c, "e/#", 1)
	stop()
	b2, _ := startBrokerAt(t, dir)
	_, got, ca := mqtt5(t, b2, "eph", false, 60)
	if ca.SessionPresent {
		t.Fatal("clean session present after restart")
	}
	pub, _, _ := mqtt5(t, b2, "p", true, 0)
	mqttPub5(t, pub, &paho.Publish{Topic: "e/1", QoS: 1, Payload: []byte("x")})
	mqttNone5(t, got)
}

// A shared subscription lasts as long as a session is subscribed to it: QoS
// 1 messages for a group whose persistent member is away wait for it,
// across a restart. A group of clean sessions goes with its last member.
func TestMQTTSharedSubscriptionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)
	w, _, _ := mqtt5(t, b, "worker-1", false, 3600)
	mqttSub5(t, w, "$share/g/jobs/#", 1)
	_ = w.Disconnect(&paho.Disconnect{})
	tmp, _, _ := mqtt5(t, b, "tmp-1", true, 0)
	mqttSub5(t, tmp, "$share/tmp/jobs/#", 1)
	_ = tmp.Disconnect(&paho.Disconnect{})

	v, _ := b.Core.Vhost("/")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := v.Queue(nil, "mqtt-shared-tmp/jobs/#"); err != nil {
			break // gone with its only member
		}
		if time.Now().After(deadline) {
			t.Fatal("the clean group's queue outlived its last member")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitQueueIdle(t, b, "mqtt-shared-g/jobs/#")

	pub, _, _ := mqtt5(t, b, "dispatcher", true, 0)
	for i := range 3 {
		mqttPub5(t, pub, &paho.Publish{Topic: fmt.Sprint("jobs/", i), QoS: 1, Payload: []byte(fmt.Sprint("job", i))})
	}
	_ = pub.Disconnect(&paho.Disconnect{})
	stop()

	b2, _ := startBrokerAt(t, dir)
	_, got, ca := mqtt5(t, b2, "worker-1", false, 3600)
	if !ca.SessionPresent {
		t.Fatal("session not present after restart")
	}
	for i := range 3 {
		if m := mqttRecv5(t, got); string(m.Payload) != fmt.Sprint("job", i) || m.Topic != fmt.Sprint("jobs/", i) {
			t.Fatalf("message %d: %q on %s", i, m.Payload, m.Topic)
		}
	}
	mqttNone5(t, got)
}
