package mqtt_test

import (
	"strings"
	"testing"
)

// connectNamed is a CONNECT with the given protocol name and level, user
// guest; MQTT 5 gets an empty property list.
func connectNamed(name string, level byte, id string) []byte {
	vh := append(str(name), level, 0xC2, 0, 30) // user, password, clean
	if level == 5 {
		vh = append(vh, 0) // no properties
	}
	body := append(vh, str(id)...)
	body = append(body, str("guest")...)
	body = append(body, str("guest")...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// A CONNECT whose protocol name is not "MQTT" (or "MQIsdp" for MQTT 3.1)
// gets no CONNACK: the server closes the connection [MQTT-3.1.2-1].
func TestWrongProtocolNameClosesWithoutConnack(t *testing.T) {
	ts := startMQTT(t)
	for _, tc := range []struct {
		name  string
		level byte
	}{{"MQTX", 4}, {"mqtt", 4}, {"HTTP", 5}, {"MQIsdp", 4}, {"MQIsdp", 5}, {"", 4}} {
		c := ts.raw(t)
		c.send(t, connectNamed(tc.name, tc.level, "pn")...)
		h, body, err := c.packet()
		if err == nil {
			t.Fatalf("protocol name %q level %d: got packet %#x %v, want the connection closed", tc.name, tc.level, h, body)
		}
		if strings.Contains(err.Error(), "timeout") {
			t.Fatalf("protocol name %q level %d: connection still open", tc.name, tc.level)
		}
	}
	// The right names are still answered.
	for _, tc := range []struct {
		name  string
		level byte
	}{{"MQTT", 4}, {"MQTT", 5}, {"MQIsdp", 3}} {
		c := ts.raw(t)
		c.send(t, connectNamed(tc.name, tc.level, "ok")...)
		if h, body, err := c.packet(); err != nil || h != 0x20 || body[1] != 0 {
			t.Fatalf("protocol name %q level %d: CONNACK %#x %v %v", tc.name, tc.level, h, body, err)
		}
	}
}
