package mqtt_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/core"
)

// The delivered QoS is the lower of the published and the granted QoS.
func TestQoSMatrixV5(t *testing.T) { forEachLogin(t, testQoSMatrixV5) }

func testQoSMatrixV5(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
		for subQoS := byte(0); subQoS <= 2; subQoS++ {
			t.Run(fmt.Sprintf("pub%d-sub%d", pubQoS, subQoS), func(t *testing.T) {
				topic := fmt.Sprintf("qos/%d/%d", pubQoS, subQoS)
				sub, got := ts.v5(t, "sub-"+topic)
				subscribe5(t, sub, topic, subQoS)
				pub, _ := ts.v5(t, "pub-"+topic)
				for i := range 5 {
					publish5(t, pub, &paho.Publish{Topic: topic, QoS: pubQoS, Payload: []byte{byte(i)}})
				}
				for i := range 5 {
					m := got.next(t)
					if m.Payload[0] != byte(i) {
						t.Fatalf("message %d: payload %v (out of order)", i, m.Payload)
					}
					if want := min(pubQoS, subQoS); m.QoS != want {
						t.Fatalf("delivered at QoS %d, want %d", m.QoS, want)
					}
				}
				got.none(t, 50*time.Millisecond)
			})
		}
	}
}

func TestQoSLevelsV3(t *testing.T) { forEachLogin(t, testQoSLevelsV3) }

func testQoSLevelsV3(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	for qos := byte(0); qos <= 2; qos++ {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			topic := fmt.Sprintf("v3/%d", qos)
			sub, got := ts.v3(t, "sub3-"+topic, true)
			wait3(t, sub.Subscribe(topic, qos, nil))
			pub, _ := ts.v3(t, "pub3-"+topic, true)
			for i := range 10 {
				wait3(t, pub.Publish(topic, qos, false, []byte{byte(i)}))
			}
			for i := range 10 {
				m := next3(t, got)
				if m.Payload()[0] != byte(i) || m.Qos() != qos || m.Topic() != topic {
					t.Fatalf("message %d: qos %d topic %s payload %v", i, m.Qos(), m.Topic(), m.Payload())
				}
			}
		})
	}
}

// v3 and v5 clients talk to each other.
func TestMixedVersions(t *testing.T) {
	ts := startMQTT(t)
	sub3, got3 := ts.v3(t, "s3", true)
	wait3(t, sub3.Subscribe("mix/#", 2, nil))
	sub5, got5 := ts.v5(t, "s5")
	subscribe5(t, sub5, "mix/#", 2)
	pub5, _ := ts.v5(t, "p5")
	publish5(t, pub5, &paho.Publish{Topic: "mix/a", QoS: 2, Payload: []byte("from5"),
		Properties: &paho.PublishProperties{ContentType: "text/plain"}})
	if m := next3(t, got3); string(m.Payload()) != "from5" || m.Qos() != 2 {
		t.Fatalf("v3 got %q at %d", m.Payload(), m.Qos())
	}
	if m := got5.next(t); string(m.Payload) != "from5" || m.Properties.ContentType != "text/plain" {
		t.Fatalf("v5 got %+v", m)
	}
	pub3, _ := ts.v3(t, "p3", true)
	wait3(t, pub3.Publish("mix/b", 1, false, "from3"))
	next3(t, got3)
	if m := got5.next(t); string(m.Payload) != "from3" || m.QoS != 1 {
		t.Fatalf("v5 got %+v", m)
	}
}

func TestWildcardsAndDots(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "a/+", 0)
	subscribe5(t, sub, "b/#", 0)
	pub, _ := ts.v5(t, "pub")
	for _, topic := range []string{"a/b.c", "a/x/y", "b", "b/1/2/3", "c/b", "a/*"} {
		publish5(t, pub, &paho.Publish{Topic: topic, Payload: []byte(topic)})
	}
	var topics []string
	for range 4 {
		topics = append(topics, got.next(t).Topic)
	}
	got.none(t, 100*time.Millisecond)
	sort.Strings(topics)
	if fmt.Sprint(topics) != "[a/* a/b.c b b/1/2/3]" {
		t.Fatalf("got %v", topics)
	}
}

// A filter with a literal '*' binds like the AMQP wildcard, but only what
// MQTT matches is delivered.
func TestLiteralStarFilter(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "s/*", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "s/x", QoS: 1, Payload: []byte("no")})
	publish5(t, pub, &paho.Publish{Topic: "s/*", QoS: 1, Payload: []byte("yes")})
	if m := got.next(t); string(m.Payload) != "yes" {
		t.Fatalf("got %q", m.Payload)
	}
	got.none(t, 100*time.Millisecond)
}

// [MQTT-4.7.2-1] Wildcards at the first level do not match '$' topics.
func TestDollarTopicsNotMatchedByWildcards(t *testing.T) {
	ts := startMQTT(t)
	all, gotAll := ts.v5(t, "all")
	subscribe5(t, all, "#", 1)
	subscribe5(t, all, "+/x", 1)
	dollar, gotDollar := ts.v5(t, "dollar")
	subscribe5(t, dollar, "$app/#", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "$app/x", QoS: 1, Payload: []byte("d")})
	publish5(t, pub, &paho.Publish{Topic: "plain/x", QoS: 1, Payload: []byte("p")})
	if m := gotDollar.next(t); m.Topic != "$app/x" {
		t.Fatalf("got %q", m.Topic)
	}
	// One copy for "#" and "+/x" together.
	if m := gotAll.next(t); m.Topic != "plain/x" {
		t.Fatalf("got %q", m.Topic)
	}
	gotAll.none(t, 100*time.Millisecond)
}

func TestUnsubscribe(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "u/1", 1)
	subscribe5(t, sub, "u/2", 0)
	ctx, cancel := ctxTimeout()
	defer cancel()
	ua, err := sub.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"u/1", "u/2", "never"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ua.Reasons) != "[0 0 17]" {
		t.Fatalf("UNSUBACK reasons %v, want [0 0 17]", ua.Reasons)
	}
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "u/1", QoS: 1, Payload: []byte("x")})
	publish5(t, pub, &paho.Publish{Topic: "u/2", QoS: 0, Payload: []byte("x")})
	got.none(t, 100*time.Millisecond)
}

// Re-subscribing with another QoS moves the subscription between queues.
func TestResubscribeChangesQoS(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "r/q", 0)
	subscribe5(t, sub, "r/q", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "r/q", QoS: 1, Payload: []byte("x")})
	if m := got.next(t); m.QoS != 1 {
		t.Fatalf("QoS %d, want 1", m.QoS)
	}
	got.none(t, 100*time.Millisecond)
}

func TestNoLocal(t *testing.T) {
	ts := startMQTT(t)
	c, got := ts.v5(t, "self")
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "nl/#", QoS: 1, NoLocal: true}}}); err != nil {
		t.Fatal(err)
	}
	other, _ := ts.v5(t, "other")
	publish5(t, c, &paho.Publish{Topic: "nl/mine", QoS: 1, Payload: []byte("mine")})
	publish5(t, other, &paho.Publish{Topic: "nl/theirs", QoS: 1, Payload: []byte("theirs")})
	if m := got.next(t); string(m.Payload) != "theirs" {
		t.Fatalf("got %q", m.Payload)
	}
	got.none(t, 100*time.Millisecond)
}

func TestSubscriptionIdentifiers(t *testing.T) {
	ts := startMQTT(t)
	c, got := ts.v5(t, "ids")
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: ptr(42)},
		Subscriptions: []paho.SubscribeOptions{{Topic: "id/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	publish5(t, c, &paho.Publish{Topic: "id/x", QoS: 1, Payload: []byte("x")})
	m := got.next(t)
	if m.Properties.SubscriptionIdentifier == nil || *m.Properties.SubscriptionIdentifier != 42 {
		t.Fatalf("subscription identifier %v, want 42", m.Properties.SubscriptionIdentifier)
	}
}

// MQTT 5 properties survive the trip through the core.
func TestPropertiesRoundTrip(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "props", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "props", QoS: 1, Payload: []byte("{}"), Properties: &paho.PublishProperties{
		ContentType: "application/json", ResponseTopic: "reply/to/me", CorrelationData: []byte("corr-1"),
		MessageExpiry: ptr(uint32(60)),
		User:          paho.UserProperties{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "a"}, {Key: "k2", Value: "b"}},
	}})
	m := got.next(t)
	p := m.Properties
	if p.ContentType != "application/json" || p.ResponseTopic != "reply/to/me" || string(p.CorrelationData) != "corr-1" {
		t.Fatalf("properties %+v", p)
	}
	if p.MessageExpiry == nil || *p.MessageExpiry < 58 || *p.MessageExpiry > 60 {
		t.Fatalf("message expiry %v, want about 60", p.MessageExpiry)
	}
	if p.User.Get("k1") != "v1" || fmt.Sprint(p.User.GetAll("k2")) != "[a b]" {
		t.Fatalf("user properties %v", p.User)
	}
}

// Correlation data that is not a short UTF-8 string travels in a header.
func TestBinaryCorrelationData(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "bin", 0)
	pub, _ := ts.v5(t, "pub")
	cd := []byte{0xff, 0x00, 0xfe}
	publish5(t, pub, &paho.Publish{Topic: "bin", Payload: []byte("x"), Properties: &paho.PublishProperties{CorrelationData: cd}})
	if m := got.next(t); string(m.Properties.CorrelationData) != string(cd) {
		t.Fatalf("correlation data %v", m.Properties.CorrelationData)
	}
}

func TestMessageExpiry(t *testing.T) {
	ts := startMQTT(t)
	_, _, _, err := ts.dialV5(t, "late", v5opts{expiry: 60})
	if err != nil {
		t.Fatal(err)
	}
	// Subscribe from a persistent session, go away, let the message expire.
	c, _, _, err := ts.dialV5(t, "late", v5opts{expiry: 60, noCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, c, "exp", 1)
	_ = c.Disconnect(&paho.Disconnect{})
	ts.waitIdle(t, "mqtt-subscription-lateqos1")
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "exp", QoS: 1, Payload: []byte("short"), Properties: &paho.PublishProperties{MessageExpiry: ptr(uint32(1))}})
	publish5(t, pub, &paho.Publish{Topic: "exp", QoS: 1, Payload: []byte("long"), Properties: &paho.PublishProperties{MessageExpiry: ptr(uint32(100))}})
	time.Sleep(1200 * time.Millisecond)
	_, got, _, err := ts.dialV5(t, "late", v5opts{expiry: 60})
	if err != nil {
		t.Fatal(err)
	}
	m := got.next(t)
	if string(m.Payload) != "long" || m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry > 99 {
		t.Fatalf("got %q expiry %v", m.Payload, m.Properties.MessageExpiry)
	}
	got.none(t, 100*time.Millisecond)
}

// An unroutable QoS 1 message is acknowledged (there is nobody to fail).
func TestUnroutableQoS1(t *testing.T) {
	ts := startMQTT(t)
	pub, _ := ts.v5(t, "pub")
	if r := publish5(t, pub, &paho.Publish{Topic: "nobody/listens", QoS: 1, Payload: []byte("x")}); r.ReasonCode != 0 {
		t.Fatalf("PUBACK reason %#x, want 0", r.ReasonCode)
	}
}

func TestWebSocket(t *testing.T) {
	ts := startMQTT(t)
	sub, got, _, err := ts.dialV5(t, "ws-sub", v5opts{clean: true, ws: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, sub, "ws/#", 1)
	pub, _ := ts.v5(t, "tcp-pub")
	publish5(t, pub, &paho.Publish{Topic: "ws/x", QoS: 1, Payload: []byte("over websocket")})
	if m := got.next(t); string(m.Payload) != "over websocket" {
		t.Fatalf("got %q", m.Payload)
	}
	// paho.mqtt.golang speaks ws:// itself.
	o := paho3.NewClientOptions().AddBroker("ws://" + ts.wsAddr + "/ws").SetClientID("ws3").
		SetUsername("guest").SetPassword("guest").SetProtocolVersion(4).SetAutoReconnect(false)
	c3 := paho3.NewClient(o)
	wait3(t, c3.Connect())
	defer c3.Disconnect(100)
	wait3(t, c3.Publish("ws/y", 1, false, "from v3 over websocket"))
	if m := got.next(t); string(m.Payload) != "from v3 over websocket" {
		t.Fatalf("got %q", m.Payload)
	}
}

// Messages from the core (any protocol) reach MQTT subscribers, and MQTT
// publishes reach core queues bound to amq.topic.
func TestCoreInterop(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "sensors/+/temp", 1)
	v, _ := ts.broker.Vhost("/")
	var r core.Router
	msg := &core.Message{Exchange: "amq.topic", RoutingKey: "sensors.k1.temp", Body: []byte("21.5"),
		Props: core.Properties{DeliveryMode: core.Persistent, ContentType: "text/plain", CorrelationID: "c-9",
			ReplyTo: "replies.k1", Expiration: "60000", Headers: core.Table{"unit": "C", "n": int32(3)}}}
	if _, err := v.Publish(&r, "amq.topic", msg, nil); err != nil {
		t.Fatal(err)
	}
	m := got.next(t)
	if m.Topic != "sensors/k1/temp" || m.QoS != 1 || m.Properties.ContentType != "text/plain" ||
		string(m.Properties.CorrelationData) != "c-9" || m.Properties.ResponseTopic != "replies/k1" ||
		m.Properties.User.Get("unit") != "C" || m.Properties.User.Get("n") != "3" ||
		m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry != 60 {
		t.Fatalf("got %+v %+v", m, m.Properties)
	}

	// MQTT → a core queue.
	q, err := v.DeclareQueue(nil, "amqp-side", core.QueueOptions{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(nil, "amqp-side", "amq.topic", "sensors.#", nil); err != nil {
		t.Fatal(err)
	}
	publish5(t, sub, &paho.Publish{Topic: "sensors/k2/hum", QoS: 1, Payload: []byte("40"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "site", Value: "lab"}}}})
	conn := v.Open("guest", core.ConnInfo{})
	defer conn.Close()
	d, _, ok, err := conn.NewSession().Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if d.Msg.RoutingKey != "sensors.k2.hum" || string(d.Msg.Body) != "40" || d.Msg.Props.DeliveryMode != core.Persistent ||
		d.Msg.Props.Headers["site"] != "lab" {
		t.Fatalf("got %+v", d.Msg)
	}
}

func TestPublishPermission(t *testing.T) {
	ts := startMQTT(t)
	if err := ts.users.PutUser("reader", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.SetPermission("reader", "/", corePerm(".*", "^mqtt-subscription-.*", ".*")); err != nil {
		t.Fatal(err)
	}
	c, _, _, err := ts.dialV5(t, "r1", v5opts{user: "reader", pass: "pw", clean: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: "x", QoS: 1, Payload: []byte("x")})
	if err == nil || r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("publish without write permission: %+v %v, want 0x87", r, err)
	}
	// Reading is allowed.
	subscribe5(t, c, "x", 1)

	if err := ts.users.PutUser("writer", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.SetPermission("writer", "/", corePerm(".*", ".*", "^$")); err != nil {
		t.Fatal(err)
	}
	w, _, _, err := ts.dialV5(t, "w1", v5opts{user: "writer", pass: "pw", clean: true})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := w.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "x", QoS: 1}}})
	if err == nil || sa == nil || sa.Reasons[0] != 0x87 {
		t.Fatalf("subscribe without read permission: %+v %v, want 0x87", sa, err)
	}
}

// A delivery larger than the client's maximum packet size is dropped
// [MQTT-3.1.2-25]; the ones after it still arrive.
func TestClientMaximumPacketSize(t *testing.T) {
	ts := startMQTT(t)
	sub, got, _, err := ts.dialV5(t, "small", v5opts{clean: true, maxPacket: 200})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, sub, "size/#", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "size/big", QoS: 1, Payload: make([]byte, 1000)})
	publish5(t, pub, &paho.Publish{Topic: "size/small", QoS: 1, Payload: []byte("fits")})
	if m := got.next(t); m.Topic != "size/small" {
		t.Fatalf("got %q (%d bytes)", m.Topic, len(m.Payload))
	}
	v, _ := ts.broker.Vhost("/")
	eventually(t, "both deliveries settled", func() bool {
		for _, q := range v.Queues() {
			if n, _ := q.Counts(); n != 0 || q.Unacked() != 0 {
				return false
			}
		}
		return true
	})
}

// No Local keeps a message only from its own publisher: another client
// with the same no-local subscription gets it [MQTT-3.8.3-3].
func TestNoLocalTwoClients(t *testing.T) {
	ts := startMQTT(t)
	ctx, cancel := ctxTimeout()
	defer cancel()
	for _, qos := range []byte{0, 1} {
		topic := fmt.Sprintf("nl2/%d", qos)
		a, gotA := ts.v5(t, fmt.Sprintf("nl-a%d", qos))
		b, gotB := ts.v5(t, fmt.Sprintf("nl-b%d", qos))
		for _, c := range []*paho.Client{a, b} {
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos, NoLocal: true}}}); err != nil {
				t.Fatal(err)
			}
		}
		publish5(t, a, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte("from a")})
		if m := gotB.next(t); string(m.Payload) != "from a" {
			t.Fatalf("QoS %d: b got %q", qos, m.Payload)
		}
		publish5(t, b, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte("from b")})
		if m := gotA.next(t); string(m.Payload) != "from b" {
			t.Fatalf("QoS %d: a got %q, want its own message left out", qos, m.Payload)
		}
		gotA.none(t, 50*time.Millisecond)
		gotB.none(t, 50*time.Millisecond)
	}
}
