package mqtt

import (
	"bytes"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FuzzStoredRecords feeds arbitrary bytes to the decoders of what the
// adapter stores (session records, retained messages, delayed wills): they
// return an error or a value that encodes back to the same bytes, and
// never panic.
func FuzzStoredRecords(f *testing.F) {
	f.Add((&sessionRecord{subs: []subOptions{{filter: "a/+", qos: 1, noLocal: true, id: 7}}}).encode())
	rm := &retainedMsg{topic: "t", qos: 1, payload: []byte("p"), created: time.UnixMilli(1000),
		props: packets.Properties{ContentType: "text/plain", User: []packets.UserProperty{{Key: "k", Val: "v"}}}}
	f.Add(rm.encode())
	e := encoder{}
	e.byte(willRecordV1)
	e.varint(5000)
	e.str("status/x")
	e.bool(true)
	e.bytes(rm.encode())
	f.Add(e.b)
	f.Add([]byte{})
	f.Add([]byte{1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeSessionRecord(b); err == nil {
			if again := r.encode(); !bytes.Equal(again, b) {
				if _, err := decodeSessionRecord(again); err != nil {
					t.Fatalf("a decoded session record does not decode again: %v", err)
				}
			}
		}
		if m, err := decodeRetained("t", b); err == nil {
			if _, err := decodeRetained("t", m.encode()); err != nil {
				t.Fatalf("a decoded retained message does not decode again: %v", err)
			}
		}
		d := newDecoder(b)
		if d.byte() == willRecordV1 {
			d.varint()
			topic := d.str()
			d.bool()
			inner := d.bytes()
			if d.done() {
				_, _ = decodeRetained(topic, inner)
			}
		}
	})
}
