package mqtt_test

import (
	"testing"
	"time"
)

// rawPublish is a PUBLISH with no properties (MQTT 5) on topic t.
func rawPublish(qos byte, id uint16, t string, payload string) []byte {
	body := str(t)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	body = append(body, 0) // no properties
	body = append(body, payload...)
	return append([]byte{0x30 | qos<<1, byte(len(body))}, body...)
}

// connackProps parses the properties of an MQTT 5 CONNACK body into
// id → value (integers only; other kinds are skipped).
func connackProps(t *testing.T, body []byte) map[byte]uint32 {
	t.Helper()
	if len(body) < 3 {
		t.Fatalf("short CONNACK %v", body)
	}
	n, i := 0, 2
	for shift := 0; ; shift += 7 {
		b := body[i]
		i++
		n |= int(b&127) << shift
		if b&128 == 0 {
			break
		}
	}
	p, end := body[i:i+n], 0
	out := map[byte]uint32{}
	for end < len(p) {
		id := p[end]
		end++
		switch id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
			out[id] = uint32(p[end])
			end++
		case 0x13, 0x21, 0x22, 0x23:
			out[id] = uint32(p[end])<<8 | uint32(p[end+1])
			end += 2
		case 0x02, 0x11, 0x18, 0x27:
			out[id] = uint32(p[end])<<24 | uint32(p[end+1])<<16 | uint32(p[end+2])<<8 | uint32(p[end+3])
			end += 4
		case 0x26:
			for range 2 {
				end += 2 + (int(p[end])<<8 | int(p[end+1]))
			}
		default: // strings and binary data
			end += 2 + (int(p[end])<<8 | int(p[end+1]))
		}
	}
	return out
}

// A client with more unacknowledged QoS 1/2 PUBLISHes than the receive
// maximum the server announced in CONNACK is disconnected with 0x93
// [MQTT-3.3.4-7]; completing a QoS 2 flow frees its slot.
func TestReceiveMaximumExceeded(t *testing.T) {
	ts := startMQTT(t)
	c := ts.raw(t)
	c.send(t, connectNamed("MQTT", 5, "rm")...)
	h, body, err := c.packet()
	if err != nil || h != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %v %v", h, body, err)
	}
	max, ok := connackProps(t, body)[0x21]
	if !ok || max == 0 {
		t.Fatalf("CONNACK announces no receive maximum: %v", body)
	}
	// max QoS 2 PUBLISHes without PUBREL: each is unacknowledged until
	// its PUBCOMP.
	for id := 1; id <= int(max); id++ {
		c.send(t, rawPublish(2, uint16(id), "rm/t", "x")...)
	}
	for id := 1; id <= int(max); id++ {
		h, body, err := c.packet()
		if err != nil || h != 0x50 || int(body[0])<<8|int(body[1]) != id {
			t.Fatalf("PUBREC %d: %#x %v %v", id, h, body, err)
		}
	}
	// Completing one flow makes room for one more.
	c.send(t, 0x62, 2, 0, 1) // PUBREL 1
	if h, body, err := c.packet(); err != nil || h != 0x70 || body[1] != 1 {
		t.Fatalf("PUBCOMP: %#x %v %v", h, body, err)
	}
	c.send(t, rawPublish(2, 60000, "rm/t", "x")...)
	if h, body, err := c.packet(); err != nil || h != 0x50 || body[0] != 60000>>8 {
		t.Fatalf("PUBREC after a completed flow: %#x %v %v", h, body, err)
	}
	// One more, QoS 1 or 2, is over the limit.
	c.send(t, rawPublish(1, 60001, "rm/t", "x")...)
	h, body, err = c.packet()
	if err != nil || h != 0xE0 || len(body) < 1 || body[0] != 0x93 {
		t.Fatalf("got %#x %v %v, want DISCONNECT 0x93 (receive maximum exceeded)", h, body, err)
	}
	c.closed(t)
}

// rawPublishAlias is a QoS 0 PUBLISH with a topic alias.
func rawPublishAlias(t string, alias uint16, payload string) []byte {
	body := str(t)
	body = append(body, 3, 0x23, byte(alias>>8), byte(alias))
	body = append(body, payload...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

// Topic aliases from the client name the topic for the rest of the
// connection and no longer: after a reconnect an alias the connection did
// not set is a protocol error (DISCONNECT 0x82).
func TestInboundTopicAliasEndsWithConnection(t *testing.T) {
	ts := startMQTT(t)
	sub, got := ts.v5(t, "alias-sub")
	subscribe5(t, sub, "t", 0)
	for round := range 2 {
		c := ts.raw(t)
		c.send(t, connectNamed("MQTT", 5, "alias-pub")...)
		if h, body, err := c.packet(); err != nil || h != 0x20 || body[1] != 0 {
			t.Fatalf("CONNACK %#x %v %v", h, body, err)
		}
		if round == 1 {
			c.send(t, rawPublishAlias("", 1, "stale")...)
			h, body, err := c.packet()
			if err != nil || h != 0xE0 || len(body) < 1 || body[0] != 0x82 {
				t.Fatalf("alias from the previous connection: got %#x %v %v, want DISCONNECT 0x82", h, body, err)
			}
			c.closed(t)
			got.none(t, 50*time.Millisecond)
			return
		}
		c.send(t, rawPublishAlias("t", 1, "1")...)
		c.send(t, rawPublishAlias("", 1, "2")...)
		for _, want := range []string{"1", "2"} {
			if m := got.next(t); m.Topic != "t" || string(m.Payload) != want {
				t.Fatalf("got %q on %q, want %q on t", m.Payload, m.Topic, want)
			}
		}
		c.send(t, 0xE0, 0) // DISCONNECT
		c.closed(t)
	}
}
