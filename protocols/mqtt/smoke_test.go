package mqtt_test

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

func TestSmokePubSubV5(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "a/+/c", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "a/b/c", QoS: 1, Payload: []byte("hello")})
	m := got.next(t)
	if string(m.Payload) != "hello" || m.Topic != "a/b/c" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}
