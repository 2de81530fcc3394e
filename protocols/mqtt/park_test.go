package mqtt_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// Idle connections park (the test server's sweeper runs every 20 ms); these
// tests check that a parked connection behaves as one with a reader.

// connectKA is an MQTT 3.1.1 CONNECT as guest with keep-alive ka seconds
// and, when willTopic is set, a will.
func connectKA(id string, ka uint16, willTopic, will string) []byte {
	flags := byte(0xC2) // user, password, clean session
	if willTopic != "" {
		flags |= 0x04
	}
	body := append(str("MQTT"), 4, flags, byte(ka>>8), byte(ka))
	body = append(body, str(id)...)
	if willTopic != "" {
		body = append(body, str(willTopic)...)
		body = append(body, str(will)...)
	}
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// publishV4 is an MQTT 3.1.1 QoS 0 PUBLISH.
func publishV4(topic, payload string) []byte {
	body := append(str(topic), payload...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

// connectRaw sends CONNECT on a raw connection and checks the CONNACK.
func connectRaw(t *testing.T, c *rawConn, connect []byte) {
	t.Helper()
	c.send(t, connect...)
	h, body, err := c.packet()
	if err != nil || h != 0x20 || len(body) != 2 || body[1] != 0 {
		t.Fatalf("CONNACK: %#x %v %v", h, body, err)
	}
}

// A parked subscriber gets deliveries (writing needs no reader), and a
// parked publisher's next PUBLISH wakes it; both park again after.
func TestParkIdleAndBack(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v3(t, "park-sub", true)
	wait3(t, sub.Subscribe("park/t", 1, nil))
	pub, _ := ts.v3(t, "park-pub", true)
	eventually(t, "both connections parked", func() bool { return ts.Parked() == 2 })
	for i := range 3 {
		wait3(t, pub.Publish("park/t", 1, false, fmt.Sprint(i)))
		if m := next3(t, got); string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.Payload())
		}
		eventually(t, "both parked again", func() bool { return ts.Parked() == 2 })
	}
}

// A new connection whose client sends nothing after CONNECT parks with its
// CONNACK, before the sweeper's first pass (an hour here); one whose client
// sent its next packet with CONNECT is read at once, and parks later.
func TestParkAfterConnect(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.parkAfter = time.Hour })
	c := ts.raw(t)
	connectRaw(t, c, connectKA("quiet", 30, "", ""))
	eventually(t, "the new connection parked", func() bool { return ts.Parked() == 1 })
	c.send(t, 0xC0, 0) // PINGREQ wakes it
	if h, _, err := c.packet(); err != nil || h != 0xD0 {
		t.Fatalf("PINGRESP: %#x %v", h, err)
	}
	if n := ts.Parked(); n != 0 {
		t.Fatalf("%d parked after a PINGREQ, want 0 (the sweeper parks it later)", n)
	}

	b := ts.raw(t)
	b.send(t, append(connectKA("busy", 30, "", ""), 0xC0, 0)...) // CONNECT and PINGREQ at once
	for _, want := range []byte{0x20, 0xD0} {
		if h, _, err := b.packet(); err != nil || h != want {
			t.Fatalf("got %#x %v, want %#x", h, err, want)
		}
	}
}

// A packet that arrives a byte at a time, with pauses longer than the
// sweeper's period, is read whole: a connection parks only between
// packets.
func TestParkSplitPacket(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v3(t, "split-sub", true)
	wait3(t, sub.Subscribe("split/t", 0, nil))
	c := ts.raw(t)
	connectRaw(t, c, connectKA("split-pub", 30, "", ""))
	eventually(t, "the publisher parked", func() bool { return ts.Parked() == 2 })
	for _, b := range publishV4("split/t", "hello") {
		c.send(t, b)
		time.Sleep(50 * time.Millisecond)
	}
	if m := next3(t, got); string(m.Payload()) != "hello" {
		t.Fatalf("got %q", m.Payload())
	}
	c.send(t, 0xC0, 0) // PINGREQ: the connection still works
	if h, _, err := c.packet(); err != nil || h != 0xD0 {
		t.Fatalf("PINGRESP: %#x %v", h, err)
	}
}

// A parked client that sends nothing within one and a half keep-alive
// intervals is disconnected, and its will goes out [MQTT-3.1.2-24].
func TestParkKeepAliveTimeout(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v3(t, "ka-sub", true)
	wait3(t, sub.Subscribe("ka/will", 0, nil))
	c := ts.raw(t)
	start := time.Now()
	connectRaw(t, c, connectKA("ka-silent", 1, "ka/will", "gone"))
	eventually(t, "the silent client parked", func() bool { return ts.Parked() == 2 })
	c.closed(t)
	d := time.Since(start)
	t.Logf("disconnected after %v", d)
	if d < 1400*time.Millisecond || d > 4*time.Second {
		t.Fatalf("disconnected after %v, want about 1.5 s", d)
	}
	if m := next3(t, got); string(m.Payload()) != "gone" {
		t.Fatalf("will: got %q", m.Payload())
	}
}

// A client that pings within its keep-alive stays connected, parking
// between pings.
func TestParkKeepAlivePings(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	connectRaw(t, c, connectKA("ka-pinger", 1, "", ""))
	parked := 0
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		parked += ts.Parked()
		c.send(t, 0xC0, 0)
		if h, _, err := c.packet(); err != nil || h != 0xD0 {
			t.Fatalf("PINGRESP: %#x %v", h, err)
		}
	}
	if parked == 0 {
		t.Fatal("the connection never parked between pings")
	}
}

// A parked connection taken over by a new one with the same client id is
// closed by the server [MQTT-3.1.4-3], and the new one works.
func TestParkTakeover(t *testing.T) {
	ts := startMQTT(t)
	old := ts.raw(t)
	connectRaw(t, old, connectKA("dup", 30, "", ""))
	eventually(t, "the first connection parked", func() bool { return ts.Parked() == 1 })
	c := ts.raw(t)
	connectRaw(t, c, connectKA("dup", 30, "", ""))
	old.closed(t)
	c.send(t, 0xC0, 0)
	if h, _, err := c.packet(); err != nil || h != 0xD0 {
		t.Fatalf("PINGRESP on the new connection: %#x %v", h, err)
	}
	eventually(t, "one session", func() bool { return ts.Sessions() == 1 })
}

// Shutdown closes parked connections and returns promptly.
func TestParkShutdown(t *testing.T) {
	ts := startMQTT(t)
	const n = 300
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = ts.raw(t)
		connectRaw(t, conns[i], connectKA(fmt.Sprintf("sd-%d", i), 30, "", ""))
	}
	eventually(t, "every connection parked", func() bool { return ts.Parked() == n })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with %d parked connections: %v", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for _, c := range conns {
		c.closed(t)
	}
}

// Clients that go quiet and busy at random, parking and waking all the
// time, each get every message meant for them exactly once.
func TestParkChurn(t *testing.T) {
	ts := startMQTT(t)
	const clients, msgs = 40, 25
	type peer struct {
		c   paho3.Client
		got chan paho3.Message
	}
	peers := make([]peer, clients)
	for i := range peers {
		c, got := ts.v3(t, fmt.Sprintf("churn-%d", i), true)
		wait3(t, c.Subscribe(fmt.Sprintf("churn/%d", i), 1, nil))
		peers[i] = peer{c, got}
	}
	var wg sync.WaitGroup
	for i := range peers {
		wg.Go(func() {
			to := fmt.Sprintf("churn/%d", (i+1)%clients)
			for j := range msgs {
				time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
				tok := peers[i].c.Publish(to, 1, false, fmt.Sprint(j))
				if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
					t.Errorf("client %d publish %d: %v", i, j, tok.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	for i, p := range peers {
		for j := range msgs {
			if m := next3(t, p.got); string(m.Payload()) != fmt.Sprint(j) {
				t.Fatalf("client %d message %d: got %q", i, j, m.Payload())
			}
		}
		select {
		case m := <-p.got:
			t.Fatalf("client %d: extra message %q", i, m.Payload())
		default:
		}
	}
}
