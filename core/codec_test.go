package core

import (
	"reflect"
	"testing"
	"time"
)

func sampleMessage() *Message {
	return &Message{Exchange: "x", RoutingKey: "a.b", Body: []byte("hello"), Props: Properties{
		ContentType: "text/plain", DeliveryMode: Persistent, Priority: 0, Present: 1 << 11,
		CorrelationID: "c", ReplyTo: "r", Expiration: "60000", MessageID: "m",
		Timestamp: time.Unix(1700000000, 0).UTC(), Type: "t", UserID: "u", AppID: "a",
		Headers: Table{"s": "v", "n": int64(-3), "i": int32(7), "f": 1.5, "b": true, "x": []byte{1, 2},
			"arr": []any{"a", int64(1)}, "t": Table{"k": "v"}, "nil": nil, "ts": time.Unix(5, 0).UTC()},
	}}
}

// The stored form of a message decodes to the same message.
func TestRecordRoundTrip(t *testing.T) {
	m := sampleMessage()
	data := encodeRecord("/", m, []string{"q1", "q2"})
	vhost, got, queues, err := decodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	if vhost != "/" || !reflect.DeepEqual(queues, []string{"q1", "q2"}) || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %q %v %#v\nwant %#v", vhost, queues, got, m)
	}
	for cut := 0; cut < len(data); cut++ {
		if _, _, _, err := decodeRecord(data[:cut]); err == nil {
			t.Fatalf("a record cut at %d of %d bytes decoded", cut, len(data))
		}
	}
}

// Encoding a record allocates its buffer once: recordCap covers every
// field of a message with the usual properties and a few headers, however
// long its strings.
func TestRecordEncodedInOneAllocation(t *testing.T) {
	long := string(make([]byte, 300))
	for _, m := range []*Message{
		{RoutingKey: "q", Body: []byte("x")},
		{RoutingKey: "ums.notify.webhook", Body: make([]byte, 700), Props: Properties{
			ContentType: "application/vnd.ums.notification-job+json", DeliveryMode: Persistent, Priority: 9,
			MessageID: "0123456789abcdefghjkmnpqrs", Timestamp: time.Unix(1700000000, 0)}},
		{Exchange: long, RoutingKey: long, Body: make([]byte, 1<<16), Props: Properties{ContentType: long,
			CorrelationID: long, ReplyTo: long, MessageID: long, Type: long, UserID: long, AppID: long,
			Headers: Table{"a": "b", "n": int64(1), "t": time.Unix(5, 0)}}},
	} {
		queues := []string{"ums.notify.webhook", long}
		want := 1.0
		if len(m.Props.Headers) > 0 {
			want = 2 // and the headers' keys, sorted
		}
		if n := testing.AllocsPerRun(20, func() { encodeRecord("/", m, queues) }); n != want {
			t.Fatalf("%v allocations encoding a record of %d bytes, want %v", n, len(encodeRecord("/", m, queues)), want)
		}
		if got, cap := len(encodeRecord("/", m, queues)), 1+recordCap("/", m, queues); got > cap {
			t.Fatalf("record of %d bytes, estimated %d", got, cap)
		}
	}
}

// FuzzDecodeRecord: no input panics or allocates without bound, and what
// decodes re-encodes to something that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord("/", sampleMessage(), []string{"q"}))
	f.Add(encodeRecord("v", &Message{Body: []byte{}}, nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		vhost, m, queues, err := decodeRecord(data)
		if err != nil {
			return
		}
		again := encodeRecord(vhost, m, queues)
		v2, m2, q2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if v2 != vhost || !reflect.DeepEqual(q2, queues) || !reflect.DeepEqual(m2, m) {
			t.Fatalf("re-encoded record differs")
		}
	})
}

// A scheduled message's record (version 2) keeps its due time and exchange;
// records of version 1 decode as before, with no due time.
func TestDelayedRecordRoundTrip(t *testing.T) {
	m := sampleMessage()
	data := encodeDelayedRecord("/", "delayed", 1767225600123456789, m)
	r, err := decodeStored(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.vhost != "/" || r.target != "delayed" || r.due != 1767225600123456789 || len(r.queues) != 0 || !reflect.DeepEqual(r.msg, m) {
		t.Fatalf("round trip: %+v", r)
	}
	for cut := 0; cut < len(data); cut++ {
		if _, err := decodeStored(data[:cut]); err == nil {
			t.Fatalf("a record cut at %d of %d bytes decoded", cut, len(data))
		}
	}
	old, err := decodeStored(encodeRecord("/", m, []string{"q"}))
	if err != nil || old.due != 0 || old.target != "" || !reflect.DeepEqual(old.queues, []string{"q"}) {
		t.Fatalf("version 1 record: %+v %v", old, err)
	}
}
