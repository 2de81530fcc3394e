package test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The MQTT 5 payload format indicator reaches MQTT subscribers, directly
// and through an AMQP client that consumes the message and publishes it
// on with its headers (as header x-mqtt-payload-format-indicator).
func TestMQTTPayloadFormatIndicator(t *testing.T) {
	s := startServer(t, mqttOn)
	_, ch := s.channel(t)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "pfi.in", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, got, _ := mqtt5(t, s.Broker, "pfi-sub", true, 0)
	mqttSub5(t, sub, "pfi/#", 1)
	pub, _, _ := mqtt5(t, s.Broker, "pfi-pub", true, 0)
	one := byte(1)
	mqttPub5(t, pub, &paho.Publish{Topic: "pfi/in", QoS: 1, Payload: []byte("text"),
		Properties: &paho.PublishProperties{PayloadFormat: &one}})
	mqttPub5(t, pub, &paho.Publish{Topic: "pfi/in", QoS: 1, Payload: []byte{0xff}})

	// MQTT → MQTT.
	if m := mqttRecv5(t, got); m.Properties == nil || m.Properties.PayloadFormat == nil || *m.Properties.PayloadFormat != 1 {
		t.Fatalf("MQTT subscriber: payload format indicator lost: %+v", m.Properties)
	}
	if m := mqttRecv5(t, got); m.Properties != nil && m.Properties.PayloadFormat != nil {
		t.Fatalf("MQTT subscriber: payload format indicator %d on a message sent without one", *m.Properties.PayloadFormat)
	}

	// MQTT → AMQP → MQTT.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, want := range []bool{true, false} {
		in := recv(t, d)
		if _, has := in.Headers["x-mqtt-payload-format-indicator"]; has != want {
			t.Fatalf("AMQP message %d headers %v: payload format header present %v, want %v", i, in.Headers, has, want)
		}
		if err := ch.PublishWithContext(ctx, "amq.topic", "pfi.out", false, false, amqp.Publishing{
			Headers: in.Headers, Body: in.Body, DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
		m := mqttRecv5(t, got)
		has := m.Properties != nil && m.Properties.PayloadFormat != nil && *m.Properties.PayloadFormat == 1
		if m.Topic != "pfi/out" || has != want {
			t.Fatalf("through AMQP, message %d on %s: payload format indicator %v, want %v", i, m.Topic, has, want)
		}
		for _, u := range userProps(m) {
			if u.Key == "x-mqtt-payload-format-indicator" {
				t.Fatalf("payload format header leaked as a user property: %+v", m.Properties.User)
			}
		}
	}
}

func userProps(m *paho.Publish) paho.UserProperties {
	if m.Properties == nil {
		return nil
	}
	return m.Properties.User
}
