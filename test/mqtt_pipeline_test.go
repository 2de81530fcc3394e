package test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// A persistent-session QoS 1 publisher keeps many messages unacknowledged:
// the PUBACKs come back in publish order (a QoS 2 PUBREC after them), and
// every acknowledged message is still there after a broker restart.
func TestMQTTPipelinedPubacksSurviveRestart(t *testing.T) {
	const n = 500
	dir := t.TempDir()
	b, stop := startBrokerAt(t, dir)

	sub, _, _ := mqtt3(t, b, "pipe-sink", false)
	mqttWait3(t, sub.Subscribe("pipe/#", 1, nil))
	sub.Disconnect(100)
	waitQueueIdle(t, b, "mqtt-subscription-pipe-sinkqos1")

	// Clean session 0, user name and password.
	c, err := rawConnect(b.Addr("mqtt").String(), "pipe-pub", "guest", "guest", 0xC0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publish := func(buf []byte, qos byte, id uint16, payload string) []byte {
		body := append(rawStr("pipe/t"), byte(id>>8), byte(id))
		body = append(body, payload...)
		buf = append(buf, 0x30|qos<<1)
		buf = appendRemaining(buf, len(body))
		return append(buf, body...)
	}
	var out []byte
	for i := 1; i <= n; i++ {
		out = publish(out, 1, uint16(i), fmt.Sprint("m", i))
	}
	out = publish(out, 2, n+1, fmt.Sprint("m", n+1))
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	r := newRawReader(c)
	for i := 1; i <= n+1; i++ {
		typ, _, body, err := r.Next()
		if err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
		want := byte(4) // PUBACK
		if i == n+1 {
			want = 5 // PUBREC
		}
		if typ != want || len(body) < 2 || binary.BigEndian.Uint16(body) != uint16(i) {
			t.Fatalf("ack %d: type %d body %v, want type %d for packet id %d", i, typ, body, want, i)
		}
	}
	last := uint16(n + 1)
	if _, err := c.Write([]byte{0x62, 2, byte(last >> 8), byte(last)}); err != nil { // PUBREL
		t.Fatal(err)
	}
	if typ, _, body, err := r.Next(); err != nil || typ != 7 || binary.BigEndian.Uint16(body) != last {
		t.Fatalf("PUBCOMP: type %d body %v err %v", typ, body, err)
	}
	stop()

	b2, _ := startBrokerAt(t, dir)
	_, got, present := mqtt3(t, b2, "pipe-sink", false)
	if !present {
		t.Fatal("session not present after restart")
	}
	for i := 1; i <= n+1; i++ {
		if m := mqttRecv3(t, got); string(m.Payload()) != fmt.Sprint("m", i) {
			t.Fatalf("message %d after restart: %q", i, m.Payload())
		}
	}
}
