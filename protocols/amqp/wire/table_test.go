package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// tableCases are field values with their wire encoding (section 4.2.5.5, with
// RabbitMQ's type tags), each as the only entry of a table under key "k".
var tableCases = []struct {
	name  string
	value any
	wire  []byte // type tag and value
}{
	{"t bool", true, []byte{'t', 1}},
	{"b int8", int8(-2), []byte{'b', 0xfe}},
	{"B uint8", uint8(254), []byte{'B', 0xfe}},
	{"s int16", int16(-2), []byte{'s', 0xff, 0xfe}},
	{"u uint16", uint16(65534), []byte{'u', 0xff, 0xfe}},
	{"I int32", int32(-2), []byte{'I', 0xff, 0xff, 0xff, 0xfe}},
	{"i uint32", uint32(4294967294), []byte{'i', 0xff, 0xff, 0xff, 0xfe}},
	{"l int64", int64(-2), cat([]byte{'l'}, u64(math.MaxUint64-1))},
	{"f float32", float32(1.5), cat([]byte{'f'}, u32(math.Float32bits(1.5)))},
	{"d float64", float64(-1.5), cat([]byte{'d'}, u64(math.Float64bits(-1.5)))},
	{"D decimal", Decimal{Scale: 3, Value: -1234}, cat([]byte{'D', 3}, u32(uint32(0xffffffff-1233)))},
	{"S long string", "héllo", cat([]byte{'S'}, lstr("héllo"))},
	{"x byte array", []byte{0, 1, 2}, cat([]byte{'x'}, lstr("\x00\x01\x02"))},
	{"x empty byte array", []byte{}, cat([]byte{'x'}, u32(0))},
	{"T timestamp", time.Unix(1700000000, 0).UTC(), cat([]byte{'T'}, u64(1700000000))},
	{"V void", nil, []byte{'V'}},
	{"A array", []any{int32(1), "a", nil}, cat([]byte{'A'}, u32(12), []byte{'I'}, u32(1), []byte{'S'}, lstr("a"), []byte{'V'})},
	{"A empty array", []any{}, cat([]byte{'A'}, u32(0))},
	{"F nested table", Table{"n": true}, cat([]byte{'F'}, u32(4), sstr("n"), []byte{'t', 1})},
	{"F empty nested table", Table{}, cat([]byte{'F'}, u32(0))},
}

func tableWire(entry []byte) []byte {
	fields := cat(sstr("k"), entry)
	return cat(u32(uint32(len(fields))), fields)
}

func TestTableTypes(t *testing.T) {
	for _, tc := range tableCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := tableWire(tc.wire)
			got, n, err := DecodeTable(append(raw, 0xAA)) // a following byte is not part of it
			if err != nil {
				t.Fatal(err)
			}
			if n != len(raw) {
				t.Errorf("consumed %d bytes, want %d", n, len(raw))
			}
			if want := (Table{"k": tc.value}); !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %#v, want %#v", got, want)
			}
			enc, err := AppendTable(nil, Table{"k": tc.value})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) {
				t.Errorf("encoded %x, want %x", enc, raw)
			}
		})
	}
}

// TestTableExtraGoTypes covers the Go types accepted only for encoding.
func TestTableExtraGoTypes(t *testing.T) {
	in := Table{
		"int":     int(-5),
		"uint":    uint(5),
		"uint64":  uint64(7),
		"map":     map[string]any{"a": int32(1)},
		"strings": []string{"x", "y"},
		"tables":  []Table{{"a": true}},
	}
	enc, err := AppendTable(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := DecodeTable(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := Table{
		"int":     int64(-5),
		"uint":    int64(5),
		"uint64":  int64(7),
		"map":     Table{"a": int32(1)},
		"strings": []any{"x", "y"},
		"tables":  []any{Table{"a": true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestTableEncodeErrors(t *testing.T) {
	deep := Table{}
	for i := 0; i < MaxTableDepth; i++ {
		deep = Table{"n": deep}
	}
	cyclic := Table{}
	cyclic["self"] = cyclic
	for name, tab := range map[string]Table{
		"unsupported type": {"c": complex(1, 2)},
		"struct":           {"s": struct{}{}},
		"huge uint64":      {"u": uint64(math.MaxUint64)},
		"long name":        {strings.Repeat("n", 256): 1},
		"too deep":         deep,
		"cyclic":           cyclic,
		"nested bad":       {"a": []any{Table{"c": make(chan int)}}},
	} {
		prefix := []byte("pre")
		out, err := AppendTable(prefix, tab)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if !bytes.Equal(out, prefix) {
			t.Errorf("%s: buffer changed on error", name)
		}
		if tab.Validate() == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
		// The method and header encoders never fail: they write void.
		m := &QueueDeclare{Queue: "q", Arguments: tab}
		var d MethodDecoder
		if _, err := d.Decode(AppendMethod(nil, m)); err != nil {
			t.Errorf("%s: lossy encoding did not decode: %v", name, err)
		}
	}
	if err := (Table{"ok": int32(1)}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestTableDepthLimit(t *testing.T) {
	if _, _, err := DecodeTable(nestedTable(MaxTableDepth)); err != nil {
		t.Errorf("%d levels: %v", MaxTableDepth, err)
	}
	_, _, err := DecodeTable(nestedTable(MaxTableDepth + 1))
	var e *Error
	if !errors.As(err, &e) || e.Code != SyntaxError {
		t.Errorf("%d levels: %v", MaxTableDepth+1, err)
	}
	// Arrays count as levels too.
	v := []byte{'V'}
	for i := 1; i < MaxTableDepth+1; i++ {
		v = cat([]byte{'A'}, u32(uint32(len(v))), v)
	}
	if _, _, err := DecodeTable(tableWire(v)); !errors.As(err, &e) || e.Code != SyntaxError {
		t.Errorf("deep arrays: %v", err)
	}
	// Encoding accepts exactly what decoding accepts.
	deep := Table{}
	for i := 1; i < MaxTableDepth; i++ {
		deep = Table{"n": deep}
	}
	enc, err := AppendTable(nil, deep)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeTable(enc); err != nil {
		t.Errorf("decode of %d encoded levels: %v", MaxTableDepth, err)
	}
}

func TestTableMalformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"no length":             {0, 0},
		"length past end":       cat(u32(10), sstr("k")),
		"name past end":         tableWire(nil)[:5],
		"missing tag":           cat(u32(2), sstr("k")),
		"unknown tag":           tableWire([]byte{'Z'}),
		"0-9 short string tag":  tableWire([]byte{'U', 0, 1}),
		"truncated int":         tableWire([]byte{'I', 0, 0}),
		"truncated long string": tableWire(cat([]byte{'S'}, u32(5), []byte("ab"))),
		"huge long string":      tableWire(cat([]byte{'S'}, u32(math.MaxUint32))),
		"huge byte array":       tableWire(cat([]byte{'x'}, u32(math.MaxUint32-1))),
		"truncated array":       tableWire(cat([]byte{'A'}, u32(5), []byte{'I', 0})),
		"array element bad":     tableWire(cat([]byte{'A'}, u32(1), []byte{'?'})),
		"nested table bad":      tableWire(cat([]byte{'F'}, u32(3), sstr("k"), []byte{'?'})),
	} {
		_, _, err := DecodeTable(raw)
		var e *Error
		if !errors.As(err, &e) || e.Code != SyntaxError {
			t.Errorf("%s: %v", name, err)
		}
	}
	if tab, n, err := DecodeTable(u32(0)); tab != nil || n != 4 || err != nil {
		t.Errorf("empty table: %v %d %v", tab, n, err)
	}
	// Duplicate names keep the last value.
	fields := cat(sstr("k"), []byte{'t', 0}, sstr("k"), []byte{'t', 1})
	if tab, _, err := DecodeTable(cat(u32(uint32(len(fields))), fields)); err != nil || tab["k"] != true {
		t.Errorf("duplicate names: %v %v", tab, err)
	}
}

// TestTableSortedKeys checks that encoding is deterministic.
func TestTableSortedKeys(t *testing.T) {
	tab := Table{}
	for _, k := range strings.Fields("q w e r t y u i o p a s d f g h j k l z x c v b n m") {
		tab[k] = k
	}
	first, _ := AppendTable(nil, tab)
	for i := 0; i < 20; i++ {
		again, _ := AppendTable(nil, tab)
		if !bytes.Equal(first, again) {
			t.Fatal("encoding is not deterministic")
		}
	}
	if !bytes.HasPrefix(first[4:], cat(sstr("a"), []byte{'S'}, lstr("a"), sstr("b"))) {
		t.Errorf("keys not sorted: %q", first[:24])
	}
}
