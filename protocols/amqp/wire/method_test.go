package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fillMethod sets every field of m to a non-zero value derived from seed and
// the field index. Bits follow pattern, one bit per field, so that each bit
// position is tested set and clear.
func fillMethod(m Method, seed int, pattern uint) {
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		n := seed*31 + i + 1
		switch f.Interface().(type) {
		case uint8:
			f.SetUint(uint64(n%250 + 1))
		case uint16:
			f.SetUint(uint64(0xA000 + n))
		case uint32:
			f.SetUint(uint64(0xA0000000 + n))
		case uint64:
			f.SetUint(uint64(0xA000000000000000) + uint64(n))
		case bool:
			f.SetBool(pattern&(1<<i) != 0)
		case string:
			f.SetString(strings.ToLower(name) + "-" + strings.Repeat("x", n%7))
		case []byte:
			f.SetBytes([]byte{0, byte(n), 0xff, 'b'})
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(int64(1700000000+n), 0).UTC()))
		case Table:
			f.Set(reflect.ValueOf(Table{
				"name": name, "n": int32(n), "nested": Table{"list": []any{int64(n), "s", nil}},
			}))
		default:
			panic("unhandled field type " + f.Type().String())
		}
	}
}

// TestMethodRoundTrip encodes every method of the specification with
// non-zero fields and decodes it back, through a fresh instance and through
// a MethodDecoder.
func TestMethodRoundTrip(t *testing.T) {
	var dec MethodDecoder
	for _, ids := range allMethodIDs {
		for seed, pattern := range []uint{0xff, 0x55, 0xaa, 0} {
			m, ok := NewMethod(ids[0], ids[1])
			if !ok {
				t.Fatalf("NewMethod(%d, %d) failed", ids[0], ids[1])
			}
			fillMethod(m, seed, pattern)
			payload := AppendMethod(nil, m)

			fresh, _ := NewMethod(ids[0], ids[1])
			if err := fresh.Decode(payload[4:]); err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			if !reflect.DeepEqual(fresh, m) {
				t.Fatalf("%s: fresh decode\n got %#v\nwant %#v", m.Name(), fresh, m)
			}
			got, err := dec.Decode(payload)
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("%s: MethodDecoder\n got %#v\nwant %#v", m.Name(), got, m)
			}
			if again := AppendMethod(nil, got); !bytes.Equal(again, payload) {
				t.Fatalf("%s: re-encoding differs", m.Name())
			}

			// Every truncation of the arguments is a syntax error.
			for n := 0; n < len(payload)-4; n++ {
				err := fresh.Decode(payload[4 : 4+n])
				var e *Error
				if !errors.As(err, &e) || e.Code != SyntaxError {
					t.Fatalf("%s truncated to %d bytes: %v", m.Name(), n, err)
				}
			}
		}
	}
}

// TestMethodFrameRoundTrip goes through whole frames on several channels.
func TestMethodFrameRoundTrip(t *testing.T) {
	var raw []byte
	var want []Method
	for i, ids := range allMethodIDs {
		m, _ := NewMethod(ids[0], ids[1])
		fillMethod(m, i, 0x15)
		raw = AppendMethodFrame(raw, uint16(i), m)
		want = append(want, m)
	}
	frames, got, _, err := decodeStream(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if f.Channel != uint16(i) {
			t.Errorf("frame %d on channel %d", i, f.Channel)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("decoded methods differ")
	}
}

func TestMethodMetadata(t *testing.T) {
	content := map[string]bool{"basic.publish": true, "basic.return": true, "basic.deliver": true, "basic.get-ok": true}
	sync := map[string]bool{}
	for _, n := range strings.Fields(`connection.start connection.secure connection.tune connection.open
		connection.close connection.update-secret channel.open channel.flow channel.close
		exchange.declare exchange.delete exchange.bind exchange.unbind queue.declare queue.bind
		queue.purge queue.delete queue.unbind basic.qos basic.consume basic.cancel basic.get
		basic.recover tx.select tx.commit tx.rollback confirm.select`) {
		sync[n] = true
	}
	seen := map[string]bool{}
	for _, ids := range allMethodIDs {
		m, _ := NewMethod(ids[0], ids[1])
		name := m.Name()
		if seen[name] {
			t.Errorf("duplicate %s", name)
		}
		seen[name] = true
		if m.ClassID() != ids[0] || m.MethodID() != ids[1] {
			t.Errorf("%s: ids %d/%d", name, m.ClassID(), m.MethodID())
		}
		if m.HasContent() != content[name] {
			t.Errorf("%s: HasContent() = %v", name, m.HasContent())
		}
		if m.Sync() != sync[name] {
			t.Errorf("%s: Sync() = %v", name, m.Sync())
		}
	}
	if len(seen) != 64 {
		t.Errorf("%d methods, want 64", len(seen))
	}
	for _, name := range []string{"confirm.select", "confirm.select-ok", "basic.nack", "exchange.bind",
		"exchange.unbind-ok", "tx.commit-ok", "connection.blocked", "connection.update-secret-ok"} {
		if !seen[name] {
			t.Errorf("missing %s", name)
		}
	}
	if _, ok := NewMethod(ClassBasic, 99); ok {
		t.Error("NewMethod accepted an unknown id")
	}
	// A few ids against the specification.
	if ClassBasic != 60 || MethodBasicPublish != 40 || MethodBasicNack != 120 || ClassConfirm != 85 ||
		MethodExchangeUnbindOk != 51 || FrameMinSize != 4096 || FrameEnd != 0xCE || NoConsumers != 313 {
		t.Error("constants differ from the specification")
	}
}

// TestDecodeKeepsStrings checks the allocation-saving rule: a string field
// whose bytes did not change keeps its old value.
func TestDecodeKeepsStrings(t *testing.T) {
	var dec MethodDecoder
	payload := AppendMethod(nil, &BasicPublish{Exchange: "ex", RoutingKey: "rk"})
	m1, _ := dec.Decode(payload)
	ex := m1.(*BasicPublish).Exchange
	m2, _ := dec.Decode(payload)
	if m1 != m2 {
		t.Fatal("MethodDecoder returned a new instance")
	}
	if got := m2.(*BasicPublish).Exchange; got != ex || strings.Clone(got) != "ex" {
		t.Fatal("exchange changed")
	}
	m3, _ := dec.Decode(AppendMethod(nil, &BasicPublish{Exchange: "other", RoutingKey: "rk"}))
	if p := m3.(*BasicPublish); p.Exchange != "other" || p.RoutingKey != "rk" {
		t.Fatalf("after change: %+v", p)
	}
}
