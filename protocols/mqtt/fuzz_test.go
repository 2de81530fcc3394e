package mqtt_test

import (
	"io"
	"net"
	"testing"
	"time"
)

// FuzzPacketsAfterConnect sends arbitrary bytes after a valid CONNECT (MQTT
// 3.1.1 or 5, chosen by the first byte) to a running server. Whatever
// arrives, the server answers or closes the connection, never panics, and
// keeps serving other clients.
func FuzzPacketsAfterConnect(f *testing.F) {
	ts := startMQTT(f)
	seeds := [][]byte{
		{0x30, 5, 0, 1, 'a', 'h', 'i'},                         // QoS 0 PUBLISH
		{0x32, 7, 0, 1, 'a', 0, 1, 'h', 'i'},                   // QoS 1 PUBLISH
		{0x34, 8, 0, 1, 'a', 0, 2, 0, 'h', 'i'},                // QoS 2 PUBLISH (v5 properties)
		{0x62, 2, 0, 2},                                        // PUBREL
		{0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1},                // SUBSCRIBE
		{0xA2, 5, 0, 2, 0, 1, 'a'},                             // UNSUBSCRIBE
		{0xC0, 0},                                              // PINGREQ
		{0xE0, 0},                                              // DISCONNECT
		{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},                   // bad remaining length
		{0x35, 3, 0, 0, 0},                                     // QoS 3
		{0x10, 4, 0, 4, 'M', 'Q'},                              // second CONNECT
		{0x30, 9, 0, 3, 'a', '/', '+', 0, 0, 'x', 'y'},         // wildcard in a topic name
		{0x30, 8, 0, 0, 2, 0x23, 0, 1, 'x', 'y'},               // topic alias
		{0xF0, 2, 0x18, 0},                                     // AUTH
		{0x32, 6, 0, 1, 'a', 0, 0, 'x'},                        // packet id 0
		{0x82, 6, 0, 3, 0, 1, 'a', 3},                          // bad subscription options
		{0x40, 2, 0x80, 0x00, 0x50, 2, 0x80, 0, 0x70, 2, 0, 9}, // stray acks
	}
	for _, s := range seeds {
		f.Add(byte(4), s)
		f.Add(byte(5), s)
	}
	f.Fuzz(func(t *testing.T, version byte, in []byte) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hello := connectV4(4, "fuzz")
		if version%2 == 1 {
			hello = connectV5("fuzz")
		}
		if _, err := c.Write(append(hello, in...)); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = io.Copy(io.Discard, c) // until the server closes or goes quiet
	})
	// Still serving.
	ts.v5(f, "after-fuzz")
}
