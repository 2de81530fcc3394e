package test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

// startBrokerWith runs a broker on a temporary directory with AMQP and MQTT
// on loopback ports and the configuration changed by tweak.
func startBrokerWith(t testing.TB, tweak func(*config.Config)) *broker.Broker {
	t.Helper()
	return testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.MQTTWS),
		testutil.WithConfig(tweak)).Broker
}

// The MQTT settings (exchange, session expiry cap, queue bound) reach the
// MQTT adapter.
func TestMQTTSettings(t *testing.T) {
	b := startBrokerWith(t, func(c *config.Config) {
		c.MQTTExchange = "iot"
		c.MQTTMaxSessionExpiry = 7
		c.MQTTMaxQueueLength = 5
	})
	conn, err := amqp.Dial("amqp://guest:guest@" + b.Addr("amqp").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := newChannel(t, conn)
	if err := ch.ExchangeDeclare("iot", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "iot", "sensors.#", nil)
	deliveries := consume(t, ch, q, true)

	// An MQTT 3.1.1 persistent session gets the capped expiry and bound.
	c3, _, _ := mqtt3(t, b, "settings-3", false)
	if tok := c3.Subscribe("cmd/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	v, _ := b.Core.Vhost("/")
	sq, err := v.Queue(nil, "mqtt-subscription-settings-3qos1")
	if err != nil {
		t.Fatal(err)
	}
	if got := sq.Args["x-expires"]; got != int64(7000) {
		t.Errorf("x-expires %v, want 7000 (ms)", got)
	}
	if got := sq.Args["x-max-length"]; got != int64(5) {
		t.Errorf("x-max-length %v, want 5", got)
	}

	// PUBLISH goes to the configured exchange.
	pub, _, _ := mqtt5(t, b, "settings-pub", true, 0)
	mqttPub5(t, pub, &paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("21.5")})
	select {
	case d := <-deliveries:
		if d.RoutingKey != "sensors.t1" || string(d.Body) != "21.5" {
			t.Fatalf("got %q on %q", d.Body, d.RoutingKey)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the MQTT publish did not reach the queue bound to exchange iot")
	}
}

// --mqtt-allow-anonymous (default true) lets MQTT clients without a user
// name in as --mqtt-default-user; false refuses them.
func TestMQTTAnonymousSetting(t *testing.T) {
	connect := func(b *broker.Broker) (*paho.Connack, error) {
		conn, err := net.Dial("tcp", b.Addr("mqtt").String())
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Connect(ctx, &paho.Connect{ClientID: "anon", KeepAlive: 30, CleanStart: true})
	}
	if _, err := connect(startBrokerWith(t, func(*config.Config) {})); err != nil {
		t.Fatalf("anonymous client refused by default: %v", err)
	}
	b := startBrokerWith(t, func(c *config.Config) { c.MQTTAllowAnonymous = false })
	if ca, err := connect(b); err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("with --mqtt-allow-anonymous=false: CONNACK %+v err %v, want 0x87", ca, err)
	}
	b = startBrokerWith(t, func(c *config.Config) { c.MQTTDefaultUser, c.MQTTDefaultPass = "guest", "wrong" })
	if ca, err := connect(b); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("with a wrong --mqtt-default-pass: CONNACK %+v err %v, want 0x86", ca, err)
	}
}
