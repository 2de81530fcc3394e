package test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
)

// The QoS 2 markers of a persistent MQTT session live in an internal
// queue: an AMQP user with every permission can neither find, consume,
// get, purge, bind, delete nor publish into it, the management API does
// not list it, and exactly-once survives their attempts.
func TestMQTTQoS2MarkersOutOfReach(t *testing.T) {
	cfgHTTP := func(c *config.Config) { mqttOn(c); c.HTTPListen = "127.0.0.1:0" }
	s := startServer(t, cfgHTTP)
	addr := s.Addr("mqtt").String()
	const marker = "mqtt-qos2-q2-internal"

	sink, got, _ := mqtt5(t, s.Broker, "q2-internal-sink", true, 0)
	mqttSub5(t, sink, "q2i/#", 2)

	c, r, _ := rawConnectV5(t, addr, "q2-internal")
	publish := func(first, id byte, payload string) {
		t.Helper()
		body := append(rawStr("q2i/t"), 0, id, 0) // packet id, no properties
		body = append(body, payload...)
		if _, err := c.Write(append(appendRemaining([]byte{first}, len(body)), body...)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want, id byte, what string) {
		t.Helper()
		typ, _, body, err := r.Next()
		if err != nil || typ != want || len(body) < 2 || body[1] != id || (len(body) > 2 && body[2] != 0) {
			t.Fatalf("%s: got type %d %v %v", what, typ, body, err)
		}
	}
	publish(0x34, 9, "once") // QoS 2, waits for PUBREL
	expect(5, 9, "PUBREC")
	if m := mqttRecv5(t, got); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}

	// Every AMQP operation on the marker queue by name fails with 404.
	conn := s.dial(t)
	try := func(what string, op func(ch *amqp.Channel) error) {
		t.Helper()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		err = op(ch)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Fatalf("%s on the marker queue: %v, want 404 not found", what, err)
		}
	}
	try("passive declare", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(marker, true, false, false, false, nil)
		return err
	})
	try("consume", func(ch *amqp.Channel) error {
		_, err := ch.Consume(marker, "", false, false, false, false, nil)
		if err == nil {
			_, err = ch.QueueDeclarePassive(marker, true, false, false, false, nil)
		}
		return err
	})
	try("get", func(ch *amqp.Channel) error {
		_, _, err := ch.Get(marker, false)
		return err
	})
	try("purge", func(ch *amqp.Channel) error {
		_, err := ch.QueuePurge(marker, false)
		return err
	})
	try("bind", func(ch *amqp.Channel) error {
		return ch.QueueBind(marker, "k", "amq.direct", false, nil)
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Deleting a queue that is not there succeeds, as in RabbitMQ, and
	// deletes nothing.
	if n, err := ch.QueueDelete(marker, false, false, false); err != nil || n != 0 {
		t.Fatalf("delete: %d %v", n, err)
	}
	// A marker for packet id 7 published by name is routed nowhere.
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", marker, true, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte{0, 7}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	select {
	case <-returns:
	case <-ctx.Done():
		t.Fatal("a publish to the marker queue's name was not returned as unroutable")
	}

	// The management API neither lists nor finds it.
	base := "http://" + s.Addr("http").String()
	resp := httpDo(t, "GET", base+"/api/queues", "guest", "guest")
	var qs []struct{ Name string }
	if err := json.NewDecoder(resp.Body).Decode(&qs); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if strings.HasPrefix(q.Name, "mqtt-qos2-") {
			t.Fatalf("management API lists %s", q.Name)
		}
	}
	if resp := httpDo(t, "GET", base+"/api/queues/%2F/"+marker, "guest", "guest"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET the marker queue: status %d, want 404", resp.StatusCode)
	}
	if resp := httpDo(t, "DELETE", base+"/api/queues/%2F/"+marker, "guest", "guest"); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE the marker queue: status %d", resp.StatusCode)
	}

	// Exactly-once holds: on a new connection the retransmission of 9 is
	// acknowledged, not delivered again, and 7 (no marker of the
	// client's) is a new message.
	c.Close()
	var present bool
	c, r, present = rawConnectV5(t, addr, "q2-internal")
	if !present {
		t.Fatal("session not present")
	}
	publish(0x3C, 9, "once") // QoS 2, DUP
	expect(5, 9, "PUBREC for the retransmission")
	publish(0x3C, 7, "seven")
	expect(5, 7, "PUBREC of 7")
	if m := mqttRecv5(t, got); string(m.Payload) != "seven" {
		t.Fatalf("got %q, want only the new message 7", m.Payload)
	}
	for _, id := range []byte{9, 7} {
		if _, err := c.Write([]byte{0x62, 2, 0, id}); err != nil { // PUBREL
			t.Fatal(err)
		}
		expect(7, id, "PUBCOMP")
	}
	mqttNone5(t, got)
}

// The marker queue is still internal after a restart, and still holds the
// marker.
func TestMQTTQoS2MarkersStayInternalAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)
	c, r, _ := rawConnectV5(t, b.Addr("mqtt").String(), "q2-restart")
	body := append(rawStr("q2r/t"), 0, 5, 0) // packet id 5, no properties
	body = append(body, "x"...)
	if _, err := c.Write(append(appendRemaining([]byte{0x34}, len(body)), body...)); err != nil {
		t.Fatal(err)
	}
	if typ, _, ack, err := r.Next(); err != nil || typ != 5 {
		t.Fatalf("PUBREC: %d %v %v", typ, ack, err)
	}
	c.Close()
	stop()

	b, _ = startBrokerAt(t, dir)
	s := &server{Broker: b, URL: "amqp://guest:guest@" + b.Addr("amqp").String() + "/"}
	_, ch := s.channel(t)
	_, err := ch.QueueDeclarePassive("mqtt-qos2-q2-restart", true, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("passive declare of the marker queue after a restart: %v, want 404", err)
	}
	v, _ := b.Core.Vhost("/")
	q, err := v.InternalQueue("mqtt-qos2-q2-restart")
	if err != nil {
		t.Fatalf("marker queue after a restart: %v", err)
	}
	if ready, _ := q.Counts(); ready != 1 {
		t.Fatalf("%d markers after a restart, want 1", ready)
	}
}
