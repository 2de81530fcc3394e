package test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/internal/testutil"
)

// The cross-protocol matrix for STOMP: STOMP→AMQP, AMQP→STOMP, MQTT→STOMP
// and STOMP→MQTT, properties and headers included.
func TestStompInterop(t *testing.T) {
	b := startStomp(t, testutil.WithProtocols(testutil.MQTT))
	_, ch := newServer(b).channel(t)
	c := stompDial(t, b.STOMPAddr)

	t.Run("STOMP-to-AMQP", func(t *testing.T) {
		q := declareQueue(t, ch, "s2a")
		d := consume(t, ch, q, true)
		stompSend(t, c, "/amq/queue/s2a", "bin\x00ary", stomp.SendOpt.Receipt,
			stomp.SendOpt.Header("persistent", "true"), stomp.SendOpt.Header("priority", "7"),
			stomp.SendOpt.Header("expiration", "60000"), stomp.SendOpt.Header("correlation-id", "corr-1"),
			stomp.SendOpt.Header("reply-to", "/queue/answers"), stomp.SendOpt.Header("amqp-message-id", "mid-1"),
			stomp.SendOpt.Header("type", "order"), stomp.SendOpt.Header("app-id", "shop"),
			stomp.SendOpt.Header("site", "lab"))
		m := recv(t, d)
		if string(m.Body) != "bin\x00ary" || m.ContentType != "text/plain" || m.DeliveryMode != amqp.Persistent ||
			m.Priority != 7 || m.Expiration != "60000" || m.CorrelationId != "corr-1" || m.ReplyTo != "/queue/answers" ||
			m.MessageId != "mid-1" || m.Type != "order" || m.AppId != "shop" || m.Headers["site"] != "lab" {
			t.Fatalf("AMQP delivery %+v", m)
		}
		for _, k := range []string{"destination", "receipt", "content-length", "persistent"} {
			if _, ok := m.Headers[k]; ok {
				t.Fatalf("STOMP header %s copied into AMQP headers %v", k, m.Headers)
			}
		}
	})

	t.Run("AMQP-to-STOMP", func(t *testing.T) {
		s := stompSubscribe(t, c, "/topic/a2s.*", stomp.AckClientIndividual)
		ts := time.Unix(1700000000, 0)
		publishMsg(t, ch, "amq.topic", "a2s.k", false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", ContentEncoding: "gzip",
			CorrelationId: "c2", ReplyTo: "r2", Priority: 3, Expiration: "5000", MessageId: "m2",
			Timestamp: ts, Type: "t2", AppId: "app2",
			Headers: amqp.Table{"h": "v", "n": int32(42), "flag": true}, Body: []byte(`{"x":1}`)})
		m := stompRecv(t, s)
		h := m.Header
		want := map[string]string{"destination": "/topic/a2s.k", "content-type": "application/json",
			"content-encoding": "gzip", "correlation-id": "c2", "reply-to": "r2", "priority": "3", "expiration": "5000",
			"amqp-message-id": "m2", "timestamp": strconv.FormatInt(ts.Unix(), 10), "type": "t2", "app-id": "app2",
			"persistent": "true", "h": "v", "n": "42", "flag": "true", "content-length": "7"}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
		if string(m.Body) != `{"x":1}` {
			t.Fatalf("body %q", m.Body)
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MQTT-to-STOMP", func(t *testing.T) {
		s := stompSubscribe(t, c, "/topic/sensors.*.temp", stomp.AckAuto)
		pub, _, _ := mqtt5(t, b.Broker, "m2s", true, 0)
		mqttPub5(t, pub, &paho.Publish{Topic: "sensors/k1/temp", QoS: 1, Payload: []byte("21.5"),
			Properties: &paho.PublishProperties{ContentType: "text/plain", CorrelationData: []byte("cd"),
				User: paho.UserProperties{{Key: "unit", Value: "C"}}}})
		m := stompRecv(t, s)
		if string(m.Body) != "21.5" || m.Destination != "/topic/sensors.k1.temp" || m.ContentType != "text/plain" ||
			m.Header.Get("correlation-id") != "cd" || m.Header.Get("unit") != "C" || m.Header.Get("persistent") != "true" {
			t.Fatalf("%q %v", m.Body, m.Header)
		}
	})

	t.Run("STOMP-to-MQTT", func(t *testing.T) {
		sub, got, _ := mqtt5(t, b.Broker, "s2m", true, 0)
		mqttSub5(t, sub, "alerts/#", 1)
		stompSend(t, c, "/topic/alerts.fire", "evacuate", stomp.SendOpt.Receipt, stomp.SendOpt.Header("persistent", "true"),
			stomp.SendOpt.Header("zone", "b"))
		p := mqttRecv5(t, got)
		if p.Topic != "alerts/fire" || string(p.Payload) != "evacuate" || p.QoS != 1 ||
			p.Properties.ContentType != "text/plain" || p.Properties.User.Get("zone") != "b" {
			t.Fatalf("MQTT got %q %q qos %d %+v", p.Topic, p.Payload, p.QoS, p.Properties)
		}
	})

	t.Run("STOMP-to-STOMP/exchange", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := ch.ExchangeDeclare("fan", "fanout", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		_ = ctx
		s1 := stompSubscribe(t, c, "/exchange/fan", stomp.AckAuto)
		s2 := stompSubscribe(t, stompDial(t, b.STOMPAddr), "/exchange/fan", stomp.AckAuto)
		stompSend(t, c, "/exchange/fan/any", "all", stomp.SendOpt.Receipt)
		if string(stompRecv(t, s1).Body) != "all" || string(stompRecv(t, s2).Body) != "all" {
			t.Fatal("fanout")
		}
	})
}
