package test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

// mqttOn enables the MQTT listeners on loopback ports.
func mqttOn(c *config.Config) {
	c.MQTTListen = "127.0.0.1:0"
	c.MQTTWSListen = "127.0.0.1:0"
}

// startBrokerAt runs a broker on dataDir (which outlives it, unlike
// startServer's), with AMQP and MQTT on loopback ports. stop shuts it down
// cleanly; the test's cleanup does too if the test did not.
func startBrokerAt(t testing.TB, dataDir string) (b *broker.Broker, stop func()) {
	t.Helper()
	tb := testutil.StartBroker(t, testutil.WithDataDir(dataDir),
		testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.MQTTWS))
	return tb.Broker, tb.Stop
}

// mqtt5 connects an MQTT 5 client to the broker's MQTT listener; messages
// arrive on the returned channel. It disconnects with the test.
func mqtt5(t testing.TB, b *broker.Broker, clientID string, clean bool, expiry uint32) (*paho.Client, chan *paho.Publish, *paho.Connack) {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr("mqtt").String())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *paho.Publish, 1000)
	c := paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}}})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: clean, Username: "guest", UsernameFlag: true,
		Password: []byte("guest"), PasswordFlag: true, Properties: &paho.ConnectProperties{}}
	if expiry > 0 {
		cp.Properties.SessionExpiryInterval = &expiry
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("MQTT connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, got, ca
}

func mqttSub5(t testing.TB, c *paho.Client, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

func mqttPub5(t testing.TB, c *paho.Client, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, p); err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
}

func mqttRecv5(t testing.TB, got chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for an MQTT message")
		return nil
	}
}

func mqttNone5(t testing.TB, got chan *paho.Publish) {
	t.Helper()
	select {
	case m := <-got:
		t.Fatalf("unexpected MQTT message %q on %s", m.Payload, m.Topic)
	case <-time.After(200 * time.Millisecond):
	}
}

// mqtt3 connects an MQTT 3.1.1 client.
func mqtt3(t testing.TB, b *broker.Broker, clientID string, clean bool) (paho3.Client, chan paho3.Message, bool) {
	t.Helper()
	got := make(chan paho3.Message, 1000)
	o := paho3.NewClientOptions().AddBroker("tcp://" + b.Addr("mqtt").String()).SetClientID(clientID).
		SetUsername("guest").SetPassword("guest").SetCleanSession(clean).SetProtocolVersion(4).
		SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { got <- m })
	c := paho3.NewClient(o)
	tok := c.Connect()
	mqttWait3(t, tok)
	t.Cleanup(func() { c.Disconnect(100) })
	return c, got, tok.(*paho3.ConnectToken).SessionPresent()
}

func mqttWait3(t testing.TB, tok paho3.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("MQTT 3 operation timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

func mqttRecv3(t testing.TB, got chan paho3.Message) paho3.Message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for an MQTT 3 message")
		return nil
	}
}

// waitQueueIdle waits until a queue exists without consumers.
func waitQueueIdle(t testing.TB, b *broker.Broker, queue string) {
	t.Helper()
	v, _ := b.Core.Vhost("/")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if q, err := v.Queue(nil, queue); err == nil {
			if _, n := q.Counts(); n == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still consumed", queue)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
