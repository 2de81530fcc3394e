package test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/internal/broker"
)

// mqtt5Will connects an MQTT 5 client with a QoS 1 will on topic (payload
// "offline") sent delay seconds after the connection is lost.
func mqtt5Will(t testing.TB, b *broker.Broker, clientID string, expiry uint32, topic string, delay uint32) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr("mqtt").String())
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: expiry == 0, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true, Properties: &paho.ConnectProperties{},
		WillMessage:    &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("offline")},
		WillProperties: &paho.WillProperties{WillDelayInterval: &delay, User: paho.UserProperties{{Key: "reason", Value: "lost"}}},
	}
	if expiry > 0 {
		cp.Properties.SessionExpiryInterval = &expiry
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatalf("MQTT connect %s: %v", clientID, err)
	}
	return c
}

// The server closing connections at shutdown triggers wills [MQTT-3.1.2-8]:
// a will without delay is published at shutdown; a delayed will of a
// persistent session is kept and published when its delay ends after the
// restart, unless the client reconnects first.
func TestMQTTWillsAcrossShutdown(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)
	conn, err := amqp.Dial("amqp://guest:guest@" + b.Addr("amqp").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare("wills", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bindQueue(t, ch, "wills", "amq.topic", "status.#", nil)
	conn.Close()

	mqtt5Will(t, b, "dev-now", 0, "status/dev-now", 0)
	mqtt5Will(t, b, "dev-later", 3600, "status/dev-later", 2)
	mqtt5Will(t, b, "dev-back", 3600, "status/dev-back", 3)
	stop()

	b2, _ := startBrokerAt(t, dir)
	restarted := time.Now()
	// dev-back reconnects within its will delay: its will is cancelled.
	mqtt5(t, b2, "dev-back", false, 3600)

	conn2, err := amqp.Dial("amqp://guest:guest@" + b2.Addr("amqp").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	ds := consume(t, newChannel(t, conn2), "wills", true)
	next := func(within time.Duration) (amqp.Delivery, bool) {
		select {
		case d := <-ds:
			return d, true
		case <-time.After(within):
			return amqp.Delivery{}, false
		}
	}
	d, ok := next(5 * time.Second)
	if !ok || d.RoutingKey != "status.dev-now" || string(d.Body) != "offline" || d.Headers["reason"] != "lost" {
		t.Fatalf("first will: %v %q %q %v, want dev-now's, published at shutdown", ok, d.RoutingKey, d.Body, d.Headers)
	}
	d, ok = next(5 * time.Second)
	if !ok || d.RoutingKey != "status.dev-later" || d.Headers["reason"] != "lost" {
		t.Fatalf("second will: %v %q %v, want dev-later's after its delay", ok, d.RoutingKey, d.Headers)
	}
	if el := time.Since(restarted); el < time.Second {
		t.Fatalf("dev-later's will came %v after the restart; its 2 s delay began at shutdown", el)
	}
	// Past dev-back's delay: nothing more.
	if d, ok := next(time.Until(restarted.Add(4 * time.Second))); ok {
		t.Fatalf("unexpected will %q: dev-back reconnected in time", d.RoutingKey)
	}
}
