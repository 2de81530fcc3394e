package mqtt_test

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/core/auth"
)

// startTopicPerms runs a server with user "dev" (password "pw"), full
// vhost permissions and RabbitMQ topic permissions on amq.topic: it may
// publish under sensors/<client id>/ and read cmd/<client id>/.
func startTopicPerms(t *testing.T) *testServer {
	ts := startMQTT(t)
	if err := ts.users.PutUser("dev", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.SetPermission("dev", "/", corePerm(".*", ".*", ".*")); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.SetTopicPermission("dev", "/", auth.TopicPermission{Exchange: "amq.topic",
		Write: `^sensors\.{client_id}\.`, Read: `^cmd\.{client_id}\.`}); err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTopicPermissionsV5(t *testing.T) {
	ts := startTopicPerms(t)
	c, got, _, err := ts.dialV5(t, "d1", v5opts{user: "dev", pass: "pw", clean: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxTimeout()
	defer cancel()

	// Subscriptions: the filter's binding key must match Read.
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "cmd/d1/#", QoS: 1}, {Topic: "cmd/d2/#", QoS: 1}, {Topic: "$share/g/cmd/other/+", QoS: 1}}})
	if err != nil && sa == nil {
		t.Fatal(err)
	}
	if len(sa.Reasons) != 3 || sa.Reasons[0] != 1 || sa.Reasons[1] != 0x87 || sa.Reasons[2] != 0x87 {
		t.Fatalf("SUBACK reasons %v, want [1 0x87 0x87]", sa.Reasons)
	}

	// Publishing: the topic's routing key must match Write.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/d1/temp", QoS: 1, Payload: []byte("21")}); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	r, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/d2/temp", QoS: 1, Payload: []byte("spoof")})
	if err == nil || r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("publish to another device's topic: %+v %v, want PUBACK 0x87", r, err)
	}

	// A command for d1 from a privileged publisher arrives.
	admin, _ := ts.v5(t, "admin")
	publish5(t, admin, &paho.Publish{Topic: "cmd/d1/reboot", QoS: 1, Payload: []byte("now")})
	if m := got.next(t); m.Topic != "cmd/d1/reboot" {
		t.Fatalf("got %q", m.Topic)
	}

	// QoS 0 has no acknowledgement to refuse with: DISCONNECT 0x87.
	gone := make(chan *paho.Disconnect, 1)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	q0 := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	if _, err := q0.Connect(ctx, &paho.Connect{ClientID: "d3", CleanStart: true, KeepAlive: 30,
		Username: "dev", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := q0.Publish(ctx, &paho.Publish{Topic: "sensors/d1/temp", QoS: 0, Payload: []byte("spoof")}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-gone:
		if d.ReasonCode != 0x87 {
			t.Fatalf("DISCONNECT %#x, want 0x87", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("QoS 0 publish without topic permission: not disconnected")
	}
}

func TestTopicPermissionsV3(t *testing.T) {
	ts := startTopicPerms(t)
	dev := func(o *paho3.ClientOptions) { o.SetUsername("dev").SetPassword("pw") }
	c, _, _ := ts.v3p(t, "d1", true, dev)
	tok := c.Subscribe("cmd/d2/#", 1, nil)
	wait3(t, tok)
	if codes := tok.(*paho3.SubscribeToken).Result(); codes["cmd/d2/#"] != 0x80 {
		t.Fatalf("SUBACK %v, want 0x80 (failure)", codes)
	}
	wait3(t, c.Publish("sensors/d1/temp", 1, false, "21"))
	// MQTT 3 has no negative PUBACK: the connection is closed.
	c.Publish("sensors/d2/temp", 1, false, "spoof")
	eventually(t, "the connection to close", func() bool { return !c.IsConnectionOpen() })
}

// A will the user could not publish is refused at CONNECT.
func TestTopicPermissionsWill(t *testing.T) {
	ts := startTopicPerms(t)
	_, _, ca, err := ts.dialV5(t, "d1", v5opts{user: "dev", pass: "pw", clean: true,
		will: &paho.WillMessage{Topic: "status/d1", QoS: 1, Payload: []byte("offline")}})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("CONNECT with a will on a forbidden topic: %+v %v, want CONNACK 0x87", ca, err)
	}
	if _, _, _, err := ts.dialV5(t, "d1", v5opts{user: "dev", pass: "pw", clean: true,
		will: &paho.WillMessage{Topic: "sensors/d1/status", QoS: 1, Payload: []byte("offline")}}); err != nil {
		t.Fatalf("CONNECT with a permitted will: %v", err)
	}
}
