package mqtt_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

func TestSmokePubSubV5(t *testing.T) { forEachLogin(t, testSmokePubSubV5) }

func testSmokePubSubV5(t *testing.T, login func(*testServer)) {
	ts := startMQTT(t, login)
	sub, got := ts.v5(t, "sub")
	subscribe5(t, sub, "a/+/c", 1)
	pub, _ := ts.v5(t, "pub")
	publish5(t, pub, &paho.Publish{Topic: "a/b/c", QoS: 1, Payload: []byte("hello")})
	m := got.next(t)
	if string(m.Payload) != "hello" || m.Topic != "a/b/c" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}

// BenchmarkIdleConnections reports what an idle MQTT 3.1.1 connection costs
// the server: goroutine stack and heap per connection, after garbage
// collection. b.N connections are opened (clean session, no
// subscriptions). The target is well under 20 KiB in total; the load tool
// (umsbench mqtt -idle N, scripts/bench-mqtt-idle.sh) measures the process
// RSS.
func BenchmarkIdleConnections(b *testing.B) {
	ts := startMQTT(b)
	settle := func() runtime.MemStats {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC() // stacks shrink at collections
		}
		runtime.ReadMemStats(&ms)
		return ms
	}
	before := settle()
	conns := make([]net.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ack := make([]byte, 4)
	for i := range b.N {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(connectV4(4, fmt.Sprint("idle-", i))); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			b.Fatalf("CONNACK %v %v", ack, err)
		}
	}
	after := settle()
	// The client ends live in this process too; they add a net.Conn each
	// to the heap figure, and no goroutine.
	n := float64(b.N)
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/conn")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/conn")
}
