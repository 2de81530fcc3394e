package wire

import (
	"testing"
	"time"
)

// loopReader serves the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// publishStream returns one message as a publisher sends it: basic.publish,
// a content header without header table, and a 16-byte body.
func publishStream() []byte {
	b := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders.created"})
	b = AppendHeaderFrame(b, 1, ClassBasic, 16, &Properties{
		ContentType: "application/json", DeliveryMode: 2, MessageID: "msg-0001",
		Timestamp: time.Unix(1700000000, 0),
	})
	return AppendBodyFrames(b, 1, []byte(seedSmallBody), DefaultFrameMax)
}

// decodeMessage reads and decodes the three frames of one published message.
func decodeMessage(r *Reader, dec *MethodDecoder, hdr *ContentHeader) (int, error) {
	f, err := r.ReadFrame()
	if err != nil {
		return 0, err
	}
	if _, err := dec.Decode(f.Payload); err != nil {
		return 0, err
	}
	if f, err = r.ReadFrame(); err != nil {
		return 0, err
	}
	if err := hdr.Decode(f.Payload); err != nil {
		return 0, err
	}
	if f, err = r.ReadFrame(); err != nil {
		return 0, err
	}
	return len(f.Payload), nil
}

// TestDecodePublishZeroAllocs is the allocation budget of the publish path:
// reading and decoding a repeated basic.publish, its content header (without
// header table) and body allocates nothing.
func TestDecodePublishZeroAllocs(t *testing.T) {
	r := NewReader(&loopReader{data: publishStream()})
	var dec MethodDecoder
	var hdr ContentHeader
	if _, err := decodeMessage(r, &dec, &hdr); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if n, err := decodeMessage(r, &dec, &hdr); err != nil || n != 16 {
			t.Fatalf("decode: %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}

	// The same through MethodDecoder.Decode and ContentHeader.Decode alone.
	payload := AppendMethod(nil, &BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true})
	hp := (&ContentHeader{ClassID: ClassBasic, BodySize: 3, Properties: Properties{
		ContentType: "text/plain", CorrelationID: "c-1", Timestamp: time.Unix(1, 0),
	}}).Append(nil)
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := dec.Decode(payload); err != nil {
			t.Fatal(err)
		}
		if err := hdr.Decode(hp); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per decode, want 0", allocs)
	}
}

// TestEncodeDeliverZeroAllocs checks that encoding a delivery into a reused
// buffer allocates nothing, headers included.
func TestEncodeDeliverZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	props := &Properties{ContentType: "text/plain", Headers: Table{"a": int32(1), "b": "x"}}
	deliver := &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1, Exchange: "ex", RoutingKey: "rk"}
	body := []byte(seedSmallBody)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendMethodFrame(buf[:0], 1, deliver)
		buf = AppendHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), props)
		buf = AppendBodyFrames(buf, 1, body, DefaultFrameMax)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per delivery, want 0", allocs)
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	stream := publishStream()
	r := NewReader(&loopReader{data: stream})
	var dec MethodDecoder
	var hdr ContentHeader
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMessage(r, &dec, &hdr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDeliver(b *testing.B) {
	deliver := &BasicDeliver{ConsumerTag: "amq.ctag-0123456789", DeliveryTag: 1,
		Exchange: "amq.direct", RoutingKey: "orders.created"}
	props := &Properties{ContentType: "application/json", DeliveryMode: 2, MessageID: "msg-0001",
		Timestamp: time.Unix(1700000000, 0)}
	body := []byte(seedSmallBody)
	buf := make([]byte, 0, 4096)
	buf = AppendMethodFrame(buf, 1, deliver)
	buf = AppendHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), props)
	buf = AppendBodyFrames(buf, 1, body, DefaultFrameMax)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		deliver.DeliveryTag++
		buf = AppendMethodFrame(buf[:0], 1, deliver)
		buf = AppendHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), props)
		buf = AppendBodyFrames(buf, 1, body, DefaultFrameMax)
	}
}

func BenchmarkTableDecode(b *testing.B) {
	// A typical header table: tracing, retry and dead-letter information.
	raw, err := AppendTable(nil, Table{
		"traceparent":   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"x-retry-count": int32(3),
		"x-first-seen":  time.Unix(1700000000, 0),
		"x-priority":    uint8(5),
		"x-tenant":      "acme",
		"x-death": []any{Table{
			"count": int64(1), "reason": "rejected", "queue": "orders", "exchange": "",
			"routing-keys": []any{"orders.created"},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeTable(raw); err != nil {
			b.Fatal(err)
		}
	}
}
