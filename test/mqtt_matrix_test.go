package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The cross-protocol matrix: MQTT→AMQP, AMQP→MQTT and MQTT→MQTT at each QoS,
// through the one routing core.
func TestMQTTMatrix(t *testing.T) {
	s := startServer(t, mqttOn)
	b := s.Broker
	_, ch := s.channel(t)

	for qos := byte(0); qos <= 2; qos++ {
		t.Run(fmt.Sprintf("MQTT-to-AMQP/qos%d", qos), func(t *testing.T) {
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("m2a.%d.#", qos)
			if err := ch.QueueBind(q.Name, key, "amq.topic", false, nil); err != nil {
				t.Fatal(err)
			}
			d, err := ch.Consume(q.Name, "", false, true, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			pub, _, _ := mqtt5(t, b, fmt.Sprintf("m2a-%d", qos), true, 0)
			topic := fmt.Sprintf("m2a/%d/sensor.1/temp", qos)
			mqttPub5(t, pub, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte("21.5"), Properties: &paho.PublishProperties{
				ContentType: "text/plain", CorrelationData: []byte("corr"), ResponseTopic: "replies/x",
				MessageExpiry: ptr32(60), User: paho.UserProperties{{Key: "site", Value: "lab"}}}})
			m := recv(t, d)
			if m.RoutingKey != fmt.Sprintf("m2a.%d.sensor/1.temp", qos) || string(m.Body) != "21.5" {
				t.Fatalf("key %q body %q", m.RoutingKey, m.Body)
			}
			wantMode := uint8(amqp.Transient)
			if qos > 0 {
				wantMode = amqp.Persistent
			}
			if m.DeliveryMode != wantMode || m.ContentType != "text/plain" || m.CorrelationId != "corr" ||
				m.ReplyTo != "replies.x" || m.Expiration != "60000" || m.Headers["site"] != "lab" {
				t.Fatalf("properties: mode %d %q %q %q %q %v", m.DeliveryMode, m.ContentType, m.CorrelationId, m.ReplyTo, m.Expiration, m.Headers)
			}
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		})

		t.Run(fmt.Sprintf("AMQP-to-MQTT/qos%d", qos), func(t *testing.T) {
			sub, got, _ := mqtt5(t, b, fmt.Sprintf("a2m-%d", qos), true, 0)
			mqttSub5(t, sub, fmt.Sprintf("a2m/%d/+", qos), qos)
			for _, mode := range []uint8{amqp.Transient, amqp.Persistent} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := ch.PublishWithContext(ctx, "amq.topic", fmt.Sprintf("a2m.%d.k", qos), false, false, amqp.Publishing{
					DeliveryMode: mode, Body: []byte("hello mqtt"), ContentType: "text/plain",
					CorrelationId: "c1", ReplyTo: "reply.key", Headers: amqp.Table{"h": "v", "n": int32(7)}})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				m := mqttRecv5(t, got)
				// A persistent AMQP message is QoS 1 at most; transient QoS 0.
				want := min(qos, 1)
				if mode == amqp.Transient {
					want = 0
				}
				if m.Topic != fmt.Sprintf("a2m/%d/k", qos) || m.QoS != want || string(m.Payload) != "hello mqtt" {
					t.Fatalf("topic %q qos %d (want %d) payload %q", m.Topic, m.QoS, want, m.Payload)
				}
				p := m.Properties
				if p.ContentType != "text/plain" || string(p.CorrelationData) != "c1" || p.ResponseTopic != "reply/key" ||
					p.User.Get("h") != "v" || p.User.Get("n") != "7" {
					t.Fatalf("properties %+v", p)
				}
			}
		})

		t.Run(fmt.Sprintf("MQTT-to-MQTT/qos%d", qos), func(t *testing.T) {
			sub5, got5, _ := mqtt5(t, b, fmt.Sprintf("m2m5-%d", qos), true, 0)
			mqttSub5(t, sub5, fmt.Sprintf("m2m/%d/#", qos), qos)
			sub3, got3, _ := mqtt3(t, b, fmt.Sprintf("m2m3-%d", qos), true)
			mqttWait3(t, sub3.Subscribe(fmt.Sprintf("m2m/%d/#", qos), qos, nil))
			pub, _, _ := mqtt5(t, b, fmt.Sprintf("m2m-pub-%d", qos), true, 0)
			const n = 20
			for i := range n {
				mqttPub5(t, pub, &paho.Publish{Topic: fmt.Sprintf("m2m/%d/x", qos), QoS: qos, Payload: []byte{byte(i)}})
			}
			for i := range n {
				m := mqttRecv5(t, got5)
				if m.Payload[0] != byte(i) || m.QoS != qos {
					t.Fatalf("v5 message %d: %v at QoS %d", i, m.Payload, m.QoS)
				}
				m3 := mqttRecv3(t, got3)
				if m3.Payload()[0] != byte(i) || m3.Qos() != qos {
					t.Fatalf("v3 message %d: %v at QoS %d", i, m3.Payload(), m3.Qos())
				}
			}
			mqttNone5(t, got5)
		})
	}
}

// An AMQP queue bound with sensors.# gets every MQTT publish under sensors/,
// while an MQTT subscriber gets what AMQP publishes to amq.topic.
func TestMQTTAMQPRequestReply(t *testing.T) {
	s := startServer(t, mqttOn)
	_, ch := s.channel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "rpc.requests", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, got, _ := mqtt5(t, s.Broker, "rpc-client", true, 0)
	mqttSub5(t, client, "rpc/replies/client-1", 1)
	mqttPub5(t, client, &paho.Publish{Topic: "rpc/requests", QoS: 1, Payload: []byte("2+2"),
		Properties: &paho.PublishProperties{ResponseTopic: "rpc/replies/client-1", CorrelationData: []byte("req-1")}})
	req := recv(t, d)
	// The AMQP server answers on amq.topic with the reply-to as routing key.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "amq.topic", req.ReplyTo, false, false, amqp.Publishing{
		CorrelationId: req.CorrelationId, Body: []byte("4"), DeliveryMode: amqp.Persistent}); err != nil {
		t.Fatal(err)
	}
	m := mqttRecv5(t, got)
	if string(m.Payload) != "4" || string(m.Properties.CorrelationData) != "req-1" {
		t.Fatalf("reply %q correlation %q", m.Payload, m.Properties.CorrelationData)
	}
}

func ptr32(v uint32) *uint32 { return &v }
