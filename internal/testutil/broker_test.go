package testutil_test

import (
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/testutil"
)

// The listeners asked for listen on loopback, the others are off, and the
// broker takes its files and its time from what the test gave it.
func TestStartBroker(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fsys := store.NewMemFS()
	edited := false
	b := testutil.StartBroker(t,
		testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.HTTP),
		testutil.WithFS(fsys), testutil.WithClock(fake),
		testutil.WithConfig(func(c *config.Config) { edited = c.MQTTListen == "127.0.0.1:0" }))
	if !edited {
		t.Error("the config edit did not run after the listeners were set")
	}
	if b.AMQPURL == "" || b.MQTTAddr == "" || b.HTTPURL == "" || b.MQTTWSAddr != "" {
		t.Fatalf("addresses: amqp %q mqtt %q mqtt-ws %q http %q", b.AMQPURL, b.MQTTAddr, b.MQTTWSAddr, b.HTTPURL)
	}
	if b.Config.STOMPListen != config.Off || b.Addr(testutil.MQTTWS) != nil {
		t.Fatal("a listener that was not asked for is on")
	}
	c, err := net.Dial("tcp", b.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	conn, err := amqp.Dial(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("ttl", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "ttl", false, false, amqp.Publishing{Expiration: "60000", DeliveryMode: amqp.Persistent, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		q, err := ch.QueueDeclarePassive("ttl", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the message did not arrive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A minute on the system clock has not passed; on the broker's it has.
	fake.Advance(2 * time.Minute)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message did not expire on the injected clock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if names, err := fsys.ReadDir(b.DataDir); err != nil || len(names) == 0 {
		t.Fatalf("nothing written to the injected file system under %s: %v %v", b.DataDir, names, err)
	}
	b.Stop()
	b.Stop() // at most once
}
