package mqtt_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	packets3 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/mqtt"
)

func TestConnectBadPasswordV5(t *testing.T) {
	ts := startMQTT(t)
	_, _, ca, err := ts.dialV5(t, "c1", v5opts{user: "guest", pass: "wrong", clean: true})
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("CONNACK %+v, want reason 0x86 (bad user name or password)", ca)
	}
}

func TestConnectBadPasswordV3(t *testing.T) {
	ts := startMQTT(t)
	o := paho3.NewClientOptions().AddBroker("tcp://" + ts.addr).SetClientID("c1").
		SetUsername("guest").SetPassword("wrong").SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho3.NewClient(o)
	tok := c.Connect()
	tok.WaitTimeout(waitFor)
	if !errors.Is(tok.Error(), packetsErr(4)) {
		t.Fatalf("err %v, want return code 4 (bad user name or password)", tok.Error())
	}
}

// packetsErr returns paho.mqtt.golang's error for a CONNACK return code.
func packetsErr(code byte) error { return packets3.ConnErrors[code] }

func TestConnectUnknownUser(t *testing.T) {
	ts := startMQTT(t)
	_, _, ca, err := ts.dialV5(t, "c1", v5opts{user: "nobody", pass: "x", clean: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("CONNACK %+v err %v, want 0x86", ca, err)
	}
}

func TestConnectVhostSelection(t *testing.T) {
	ts := startMQTT(t)
	ts.broker.AddVhost("tenant")
	if err := ts.users.PutUser("alice", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.SetPermission("alice", "tenant", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	// alice may not use "/" ...
	_, _, ca, err := ts.dialV5(t, "a0", v5opts{user: "alice", pass: "pw", clean: true})
	if err == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("connect to / without permission: CONNACK %+v err %v, want 0x87", ca, err)
	}
	// ... nor an unknown vhost ...
	_, _, ca, err = ts.dialV5(t, "a0", v5opts{user: "nowhere:alice", pass: "pw", clean: true})
	if err == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("connect to an unknown vhost: CONNACK %+v err %v, want 0x87", ca, err)
	}
	// ... but "tenant:alice" works, and tenants do not see each other.
	sub, got, _, err := ts.dialV5(t, "same-id", v5opts{user: "tenant:alice", pass: "pw", clean: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe5(t, sub, "t/#", 0)
	other, otherGot := ts.v5(t, "same-id") // same client id in "/": no takeover
	subscribe5(t, other, "t/#", 0)
	pub, _, _, err := ts.dialV5(t, "p", v5opts{user: "tenant:alice", pass: "pw", clean: true})
	if err != nil {
		t.Fatal(err)
	}
	publish5(t, pub, &paho.Publish{Topic: "t/1", Payload: []byte("x")})
	if m := got.next(t); m.Topic != "t/1" {
		t.Fatalf("got %q", m.Topic)
	}
	otherGot.none(t, 100*time.Millisecond)
	if conns := ts.broker.Connections(); len(conns) != 3 {
		t.Fatalf("%d core connections, want 3", len(conns))
	}
}

func TestConnectV3ReturnCodeNotAuthorized(t *testing.T) {
	ts := startMQTT(t)
	o := paho3.NewClientOptions().AddBroker("tcp://" + ts.addr).SetClientID("c1").
		SetUsername("nowhere:guest").SetPassword("guest").SetProtocolVersion(4).SetAutoReconnect(false)
	tok := paho3.NewClient(o).Connect()
	tok.WaitTimeout(waitFor)
	if !errors.Is(tok.Error(), packetsErr(5)) {
		t.Fatalf("err %v, want return code 5 (not authorized)", tok.Error())
	}
}

func TestConnackAdvertisesLimits(t *testing.T) {
	ts := startMQTT(t)
	c, _ := ts.v5(t, "c1")
	_ = c
	_, _, ca, err := ts.dialV5(t, "c2", v5opts{clean: true})
	if err != nil {
		t.Fatal(err)
	}
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 16<<20 {
		t.Fatalf("CONNACK properties %+v, want maximum packet size 16 MiB", ca.Properties)
	}
	if ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum == 0 {
		t.Fatalf("CONNACK without topic alias maximum")
	}
	if ca.SessionPresent {
		t.Fatal("session present on a clean start")
	}
}

// rawConn speaks MQTT bytes directly, for malformed input.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func (ts *testServer) raw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, b ...byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// packet reads one packet: its first byte and body.
func (c *rawConn) packet() (byte, []byte, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&127) * mul
		if b&128 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return h, body, err
}

// closed asserts the server closes the connection (after any packets).
func (c *rawConn) closed(t *testing.T) {
	t.Helper()
	for {
		if _, _, err := c.packet(); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("connection still open")
			}
			return
		}
	}
}

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// connectV4 is a CONNECT for MQTT 3.1.1 with user guest.
func connectV4(level byte, id string) []byte {
	vh := append(str("MQTT"), level, 0xC2, 0, 30) // user, password, clean
	body := append(vh, str(id)...)
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestBadProtocolLevel(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectV4(9, "x")...)
	h, body, err := c.packet()
	if err != nil {
		t.Fatal(err)
	}
	if h != 0x20 || len(body) < 2 || body[1] != 0x01 {
		t.Fatalf("got %#x %v, want CONNACK with return code 1 (unacceptable protocol version)", h, body)
	}
	c.closed(t)
}

func TestFirstPacketMustBeConnect(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, 0xC0, 0) // PINGREQ
	c.closed(t)
}

func TestSecondConnect(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectV4(4, "x")...)
	if h, body, err := c.packet(); err != nil || h != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %v %v", h, body, err)
	}
	c.send(t, connectV4(4, "x")...)
	c.closed(t)
	// The server is fine for others.
	ts.v5(t, "after")
}

func TestMalformedPacket(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectV4(4, "x")...)
	if _, _, err := c.packet(); err != nil {
		t.Fatal(err)
	}
	// SUBSCRIBE with flags 0 (must be 2) and a truncated body.
	c.send(t, 0x80, 3, 0, 1, 0)
	c.closed(t)
	ts.v5(t, "after")
}

func TestInvalidUTF8Topic(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectV4(4, "x")...)
	if _, _, err := c.packet(); err != nil {
		t.Fatal(err)
	}
	c.send(t, 0x30, 5, 0, 2, 0xC3, 0x28, 'p') // topic bytes C3 28: invalid UTF-8
	c.closed(t)
	ts.v5(t, "after")
}

func TestOversizePacket(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = &mqtt.Server{MaxPacketSize: 1024} })
	c := ts.raw(t)
	c.send(t, connectV4(4, "x")...)
	if _, _, err := c.packet(); err != nil {
		t.Fatal(err)
	}
	// PUBLISH announcing 2048 bytes: refused before the body is read.
	c.send(t, 0x30, 0x80, 0x10, 0, 1, 'a')
	c.closed(t)
}

func TestSessionTakeover(t *testing.T) {
	ts := startMQTT(t)
	gone := make(chan *paho.Disconnect, 1)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	first := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	ctx, cancel := ctxTimeout()
	defer cancel()
	if _, err := first.Connect(ctx, &paho.Connect{ClientID: "dup", CleanStart: true, KeepAlive: 30,
		Username: "guest", UsernameFlag: true, Password: []byte("guest"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	second, got := ts.v5(t, "dup")
	select {
	case d := <-gone:
		if d.ReasonCode != 0x8E {
			t.Fatalf("DISCONNECT reason %#x, want 0x8E (session taken over)", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("first connection not disconnected")
	}
	subscribe5(t, second, "x", 1)
	publish5(t, second, &paho.Publish{Topic: "x", QoS: 1, Payload: []byte("still works")})
	got.next(t)
}

// Connections that come and go (with or without DISCONNECT, with
// subscriptions) leave no goroutine, session or core connection behind.
func TestNoLeakAfterDisconnects(t *testing.T) {
	ts := startMQTT(t)
	first := ts.raw(t) // the server starts its own goroutines on first use
	first.send(t, connectV4(4, "first")...)
	if _, _, err := first.packet(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	eventually(t, "the first session to close", func() bool { return ts.Sessions() == 0 })
	base := runtime.NumGoroutine()
	for round := range 2 {
		var conns []*rawConn
		for i := range 100 {
			c := ts.raw(t)
			c.send(t, connectV4(4, fmt.Sprint("leak-", round, "-", i))...)
			if _, _, err := c.packet(); err != nil {
				t.Fatal(err)
			}
			// SUBSCRIBE a/# at QoS 1, packet id 1.
			c.send(t, 0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1)
			if h, _, err := c.packet(); err != nil || h != 0x90 {
				t.Fatalf("SUBACK %#x %v", h, err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			if i%2 == 0 {
				c.send(t, 0xE0, 0)
			}
			c.Close()
		}
		eventually(t, "sessions to close", func() bool {
			return ts.Sessions() == 0 && ts.MochiClients() == 0 && len(ts.broker.Connections()) == 0
		})
	}
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	v, _ := ts.broker.Vhost("/")
	if qs := v.Queues(); len(qs) != 0 {
		t.Fatalf("%d queues left, first %s", len(qs), qs[0].Name)
	}
}

// connectV5 is an MQTT 5 CONNECT with clean start, user and password
// guest and no properties.
func connectV5(id string) []byte {
	vh := append(str("MQTT"), 5, 0xC2, 0, 30, 0)
	body := append(vh, str(id)...)
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// An MQTT 5 client is told why it is disconnected: DISCONNECT 0x95 for a
// packet over the maximum size, 0x81 for a malformed one [MQTT-4.13.1-1].
func TestV5DisconnectReasons(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.Server = &mqtt.Server{MaxPacketSize: 1024} })
	for _, tc := range []struct {
		name   string
		packet []byte
		reason byte
	}{
		// PUBLISH announcing 2048 bytes.
		{"oversize", []byte{0x30, 0x80, 0x10, 0, 1, 'a'}, 0x95},
		// PUBLISH whose topic length runs past the packet.
		{"malformed", []byte{0x30, 3, 0, 9, 'a'}, 0x81},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.raw(t)
			c.send(t, connectV5("v5-"+tc.name)...)
			if h, body, err := c.packet(); err != nil || h != 0x20 || len(body) < 2 || body[1] != 0 {
				t.Fatalf("CONNACK %#x %v %v", h, body, err)
			}
			c.send(t, tc.packet...)
			h, body, err := c.packet()
			if err != nil {
				t.Fatal(err)
			}
			if h != 0xE0 || len(body) < 1 || body[0] != tc.reason {
				t.Fatalf("got %#x %v, want DISCONNECT with reason %#x", h, body, tc.reason)
			}
			c.closed(t)
		})
	}
	ts.v5(t, "after") // the server still serves
}

// A QoS 2 PUBLISH sent again before PUBREL (a client retransmitting with
// DUP) is acknowledged again with success and not delivered twice
// [MQTT-4.3.3-10].
func TestQoS2RetransmissionDeliveredOnce(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "q2-sub")
	subscribe5(t, sub, "q2/x", 2)

	c := ts.raw(t)
	c.send(t, connectV5("q2-pub")...)
	if h, _, err := c.packet(); err != nil || h != 0x20 {
		t.Fatalf("CONNACK %#x %v", h, err)
	}
	body := append(str("q2/x"), 0, 7, 0) // packet id 7, no properties
	body = append(body, "once"...)
	for i, first := range []byte{0x34, 0x3C} { // QoS 2, then QoS 2 with DUP
		c.send(t, append([]byte{first, byte(len(body))}, body...)...)
		h, ack, err := c.packet()
		if err != nil {
			t.Fatal(err)
		}
		if h != 0x50 || len(ack) < 2 || ack[1] != 7 || (len(ack) > 2 && ack[2] != 0) {
			t.Fatalf("PUBLISH %d: got %#x %v, want PUBREC for id 7 with success", i, h, ack)
		}
	}
	c.send(t, 0x62, 2, 0, 7) // PUBREL
	if h, ack, err := c.packet(); err != nil || h != 0x70 || (len(ack) > 2 && ack[2] != 0) {
		t.Fatalf("got %#x %v %v, want PUBCOMP with success", h, ack, err)
	}
	if m := got.next(t); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	got.none(t, 200*time.Millisecond)
}

// Packet ids are per direction: a client's QoS 2 PUBLISH may use the id of
// a delivery the server has in flight to it. Both exchanges complete, and
// the client's message is delivered once, however the packets interleave.
func TestPacketIDsPerDirection(t *testing.T) {
	ts := startMQTT(t)
	watch, got := ts.v5(t, "watch")
	subscribe5(t, watch, "out/y", 2)

	c := ts.raw(t)
	c.send(t, connectV5("both-ways")...)
	if h, _, err := c.packet(); err != nil || h != 0x20 {
		t.Fatalf("CONNACK %#x %v", h, err)
	}
	sub := append([]byte{0, 1, 0}, str("in/x")...) // packet id 1, no properties
	sub = append(sub, 1)                           // QoS 1
	c.send(t, append([]byte{0x82, byte(len(sub))}, sub...)...)
	if h, _, err := c.packet(); err != nil || h != 0x90 {
		t.Fatalf("SUBACK %#x %v", h, err)
	}
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "in/x", QoS: 1, Payload: []byte("to the client")})
	h, body, err := c.packet()
	if err != nil || h&0xF0 != 0x30 {
		t.Fatalf("delivery %#x %v", h, err)
	}
	tl := int(body[0])<<8 | int(body[1])
	id := []byte{body[2+tl], body[3+tl]} // the server's packet id, in flight

	q2 := append(str("out/y"), id[0], id[1], 0)
	q2 = append(q2, "from the client"...)
	expect := func(want byte, what string) {
		t.Helper()
		h, b, err := c.packet()
		if err != nil || h != want || len(b) < 2 || b[0] != id[0] || b[1] != id[1] || (len(b) > 2 && b[2] != 0) {
			t.Fatalf("%s: got %#x %v %v", what, h, b, err)
		}
	}
	c.send(t, append([]byte{0x34, byte(len(q2))}, q2...)...) // QoS 2, same id
	expect(0x50, "PUBREC")
	c.send(t, 0x40, 2, id[0], id[1])                         // PUBACK of the delivery
	c.send(t, append([]byte{0x3C, byte(len(q2))}, q2...)...) // QoS 2 again, DUP
	expect(0x50, "PUBREC of the retransmission")
	c.send(t, 0x62, 2, id[0], id[1]) // PUBREL
	expect(0x70, "PUBCOMP")

	if m := got.next(t); string(m.Payload) != "from the client" {
		t.Fatalf("got %q", m.Payload)
	}
	got.none(t, 200*time.Millisecond)
	v, _ := ts.broker.Vhost("/")
	eventually(t, "the delivery to be settled", func() bool {
		for _, q := range v.Queues() {
			if q.Name == "mqtt-subscription-both-waysqos1" {
				n, _ := q.Counts()
				return n == 0 && q.Unacked() == 0
			}
		}
		return false
	})
}

// Keep-alive [MQTT-3.1.2-22]: a client that sends PINGREQs in time stays
// connected; one that falls silent for one and a half keep-alive intervals
// is disconnected, and its will is published.
func TestKeepAlive(t *testing.T) {
	ts := startMQTT(t)
	watch, got := ts.v5(t, "watch")
	subscribe5(t, watch, "gone/+", 1)

	// CONNECT, MQTT 3.1.1, keep-alive 1 s, with a will on gone/ka.
	vh := append(str("MQTT"), 4, 0xC6, 0, 1) // user, password, will QoS 0, clean
	body := append(vh, str("ka")...)
	body = append(body, str("gone/ka")...)
	body = append(body, str("timeout")...)
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	c := ts.raw(t)
	c.send(t, append([]byte{0x10, byte(len(body))}, body...)...)
	if h, _, err := c.packet(); err != nil || h != 0x20 {
		t.Fatalf("CONNACK %#x %v", h, err)
	}
	// 2 s of PINGREQ every 0.5 s; start is when the last one was sent,
	// the silence is measured from then.
	var start time.Time
	for range 4 {
		time.Sleep(500 * time.Millisecond)
		start = time.Now()
		c.send(t, 0xC0, 0)
		if h, _, err := c.packet(); err != nil || h != 0xD0 {
			t.Fatalf("PINGRESP %#x %v", h, err)
		}
	}
	got.none(t, 0)
	c.closed(t)
	if el := time.Since(start); el < time.Second {
		t.Fatalf("closed after %v of silence, before one and a half keep-alive intervals", el)
	}
	if m := got.next(t); string(m.Payload) != "timeout" {
		t.Fatalf("will %q", m.Payload)
	}
}

// MQTT 5 enhanced authentication is not supported: a CONNECT naming an
// authentication method gets CONNACK 0x8C, an AUTH packet DISCONNECT 0x82.
func TestEnhancedAuthRefused(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	vh := append(str("MQTT"), 5, 0xC2, 0, 30)
	props := append([]byte{0x15}, str("SCRAM-SHA-1")...) // authentication method
	vh = append(vh, byte(len(props)))
	vh = append(vh, props...)
	body := append(vh, str("scram")...)
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	c.send(t, append([]byte{0x10, byte(len(body))}, body...)...)
	if h, b, err := c.packet(); err != nil || h != 0x20 || len(b) < 2 || b[1] != 0x8C {
		t.Fatalf("got %#x %v %v, want CONNACK 0x8C", h, b, err)
	}
	c.closed(t)

	c = ts.raw(t)
	c.send(t, connectV5("auth-later")...)
	if h, _, err := c.packet(); err != nil || h != 0x20 {
		t.Fatalf("CONNACK %#x %v", h, err)
	}
	c.send(t, 0xF0, 2, 0x18, 0) // AUTH, reason continue authentication
	if h, b, err := c.packet(); err != nil || h != 0xE0 || len(b) < 1 || b[0] != 0x82 {
		t.Fatalf("got %#x %v %v, want DISCONNECT 0x82", h, b, err)
	}
	c.closed(t)
}
