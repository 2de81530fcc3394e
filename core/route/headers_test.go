package route

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// decimal stands in for a protocol's AMQP decimal type.
type decimal struct {
	Scale uint8
	Value int32
}

// table stands in for a codec's named field-table type.
type table map[string]any

func TestHeadersMatch(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	cases := []struct {
		name string
		args map[string]any
		hdrs map[string]any
		want bool
	}{
		// Modes.
		{"all default", map[string]any{"a": "1", "b": "2"}, map[string]any{"a": "1", "b": "2", "c": "3"}, true},
		{"all one missing", map[string]any{"a": "1", "b": "2"}, map[string]any{"a": "1"}, false},
		{"all one differs", map[string]any{"x-match": "all", "a": "1", "b": "2"}, map[string]any{"a": "1", "b": "3"}, false},
		{"any one matches", map[string]any{"x-match": "any", "a": "1", "b": "2"}, map[string]any{"b": "2"}, true},
		{"any none", map[string]any{"x-match": "any", "a": "1", "b": "2"}, map[string]any{"a": "2", "c": "1"}, false},
		{"invalid x-match acts as all", map[string]any{"x-match": "some", "a": "1", "b": "2"}, map[string]any{"a": "1"}, false},
		{"non-string x-match acts as all", map[string]any{"x-match": []byte("any"), "a": "1", "b": "2"}, map[string]any{"a": "1"}, false},
		// Empty argument lists.
		{"all no args", nil, map[string]any{"a": "1"}, true},
		{"all no args no headers", map[string]any{"x-match": "all"}, nil, true},
		{"any no args", map[string]any{"x-match": "any"}, map[string]any{"a": "1"}, false},
		{"all only x args", map[string]any{"x-match": "all", "x-a": "1"}, nil, true},
		{"any only x args", map[string]any{"x-match": "any", "x-a": "1"}, map[string]any{"x-a": "1"}, false},
		{"no headers", map[string]any{"a": "1"}, nil, false},
		// x- keys.
		{"all ignores x- args", map[string]any{"x-a": "1", "b": "2"}, map[string]any{"b": "2"}, true},
		{"all ignores x- headers", map[string]any{"b": "2"}, map[string]any{"x-b": "9", "b": "2"}, true},
		{"any ignores x- args", map[string]any{"x-match": "any", "x-a": "1"}, map[string]any{"x-a": "1"}, false},
		{"all-with-x compares x-", map[string]any{"x-match": "all-with-x", "x-a": "1", "b": "2"}, map[string]any{"x-a": "1", "b": "2"}, true},
		{"all-with-x x- differs", map[string]any{"x-match": "all-with-x", "x-a": "1", "b": "2"}, map[string]any{"x-a": "2", "b": "2"}, false},
		{"all-with-x x- missing", map[string]any{"x-match": "all-with-x", "x-a": "1"}, map[string]any{}, false},
		{"any-with-x x- matches", map[string]any{"x-match": "any-with-x", "x-a": "1", "b": "2"}, map[string]any{"x-a": "1"}, true},
		{"any-with-x x-match header ignored", map[string]any{"x-match": "any-with-x"}, map[string]any{"x-match": "any-with-x"}, false},
		// Void (nil) arguments test presence.
		{"void present", map[string]any{"a": nil}, map[string]any{"a": "anything"}, true},
		{"void present nil", map[string]any{"a": nil}, map[string]any{"a": nil}, true},
		{"void absent", map[string]any{"a": nil}, map[string]any{"b": "1"}, false},
		{"void any", map[string]any{"x-match": "any", "a": nil, "b": "2"}, map[string]any{"a": int8(0)}, true},
		{"nil header vs value", map[string]any{"a": "1"}, map[string]any{"a": nil}, false},
		// Integers compare by value across widths and signedness.
		{"int64 vs int32", map[string]any{"n": int64(1)}, map[string]any{"n": int32(1)}, true},
		{"uint8 vs int16", map[string]any{"n": uint8(200)}, map[string]any{"n": int16(200)}, true},
		{"int8 -1 vs uint8 255", map[string]any{"n": int8(-1)}, map[string]any{"n": uint8(255)}, false},
		{"uint32 vs int64", map[string]any{"n": uint32(math.MaxUint32)}, map[string]any{"n": int64(math.MaxUint32)}, true},
		{"uint64 big vs int64", map[string]any{"n": uint64(math.MaxUint64)}, map[string]any{"n": int64(-1)}, false},
		{"uint64 big vs uint64", map[string]any{"n": uint64(math.MaxUint64)}, map[string]any{"n": uint64(math.MaxUint64)}, true},
		{"int differs", map[string]any{"n": int64(1)}, map[string]any{"n": int64(2)}, false},
		// Floats: by value, never equal to integers.
		{"float64 vs float32 exact", map[string]any{"f": 1.5}, map[string]any{"f": float32(1.5)}, true},
		{"float64 vs float32 inexact", map[string]any{"f": 0.1}, map[string]any{"f": float32(0.1)}, false},
		{"float vs int", map[string]any{"f": 1.0}, map[string]any{"f": int64(1)}, false},
		{"int vs float", map[string]any{"f": int32(1)}, map[string]any{"f": 1.0}, false},
		{"NaN", map[string]any{"f": math.NaN()}, map[string]any{"f": math.NaN()}, false},
		// Strings and byte arrays are both binaries.
		{"string vs bytes", map[string]any{"s": "pdf"}, map[string]any{"s": []byte("pdf")}, true},
		{"bytes vs string", map[string]any{"s": []byte("pdf")}, map[string]any{"s": "pdf"}, true},
		{"bytes vs bytes", map[string]any{"s": []byte{0, 1}}, map[string]any{"s": []byte{0, 1}}, true},
		{"string case", map[string]any{"s": "PDF"}, map[string]any{"s": "pdf"}, false},
		{"string vs int", map[string]any{"s": "1"}, map[string]any{"s": int64(1)}, false},
		{"empty string", map[string]any{"s": ""}, map[string]any{"s": ""}, true},
		// Booleans.
		{"bool", map[string]any{"b": true}, map[string]any{"b": true}, true},
		{"bool differs", map[string]any{"b": true}, map[string]any{"b": false}, false},
		{"bool vs int", map[string]any{"b": true}, map[string]any{"b": int64(1)}, false},
		// Timestamps at whole seconds.
		{"time", map[string]any{"t": ts}, map[string]any{"t": ts.Add(300 * time.Millisecond)}, true},
		{"time differs", map[string]any{"t": ts}, map[string]any{"t": ts.Add(time.Second)}, false},
		{"time vs int", map[string]any{"t": ts}, map[string]any{"t": ts.Unix()}, false},
		// Decimals and other types: reflect.DeepEqual.
		{"decimal", map[string]any{"d": decimal{2, 150}}, map[string]any{"d": decimal{2, 150}}, true},
		{"decimal scale", map[string]any{"d": decimal{1, 15}}, map[string]any{"d": decimal{2, 150}}, false},
		{"decimal vs int", map[string]any{"d": decimal{0, 1}}, map[string]any{"d": int64(1)}, false},
		// Arrays and tables: element types must match.
		{"array", map[string]any{"a": []any{int64(1), "x"}}, map[string]any{"a": []any{int64(1), "x"}}, true},
		{"array int types", map[string]any{"a": []any{int64(1)}}, map[string]any{"a": []any{int32(1)}}, false},
		{"array string vs bytes", map[string]any{"a": []any{"x"}}, map[string]any{"a": []any{[]byte("x")}}, false},
		{"array length", map[string]any{"a": []any{int64(1)}}, map[string]any{"a": []any{int64(1), int64(1)}}, false},
		{"array order", map[string]any{"a": []any{"x", "y"}}, map[string]any{"a": []any{"y", "x"}}, false},
		{"array nil", map[string]any{"a": []any{nil}}, map[string]any{"a": []any{nil}}, true},
		{"array time", map[string]any{"a": []any{ts}}, map[string]any{"a": []any{ts.Add(time.Millisecond)}}, true},
		{"table", map[string]any{"t": map[string]any{"k": int16(1), "l": []any{"v"}}}, map[string]any{"t": map[string]any{"k": int16(1), "l": []any{"v"}}}, true},
		{"table named type", map[string]any{"t": table{"k": "v"}}, map[string]any{"t": map[string]any{"k": "v"}}, true},
		{"table int types", map[string]any{"t": map[string]any{"k": int16(1)}}, map[string]any{"t": map[string]any{"k": int32(1)}}, false},
		{"table extra key", map[string]any{"t": map[string]any{"k": "v"}}, map[string]any{"t": map[string]any{"k": "v", "l": "w"}}, false},
		{"table vs array", map[string]any{"t": map[string]any{}}, map[string]any{"t": []any{}}, false},
		{"empty table", map[string]any{"t": map[string]any{}}, map[string]any{"t": table{}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := HeadersMatch(c.args, c.hdrs); got != c.want {
				t.Fatalf("HeadersMatch(%v, %v) = %v, want %v", c.args, c.hdrs, got, c.want)
			}
			h := NewHeaders[int]()
			h.Add(c.args, 1)
			got := h.Match(c.hdrs, nil)
			if (len(got) == 1) != c.want || len(got) > 1 {
				t.Fatalf("Headers.Match = %v, want match %v", got, c.want)
			}
		})
	}
}

func TestValidateHeadersArgs(t *testing.T) {
	for _, ok := range []map[string]any{
		nil,
		{"a": "1"},
		{"x-match": "all"},
		{"x-match": "any"},
		{"x-match": "all-with-x"},
		{"x-match": "any-with-x"},
	} {
		if err := ValidateHeadersArgs(ok); err != nil {
			t.Errorf("ValidateHeadersArgs(%v) = %v", ok, err)
		}
	}
	for _, c := range []struct {
		args map[string]any
		text string
	}{
		{map[string]any{"x-match": "ALL"}, `Invalid x-match field value "ALL"; expected all, any, all-with-x, or any-with-x`},
		{map[string]any{"x-match": ""}, `Invalid x-match field value ""`},
		{map[string]any{"x-match": int32(1)}, `Invalid x-match field type int32 (value 1); expected longstr`},
		{map[string]any{"x-match": []byte("all")}, `Invalid x-match field type []uint8`},
		{map[string]any{"x-match": nil}, `Invalid x-match field type <nil>`},
	} {
		err := ValidateHeadersArgs(c.args)
		if !errors.Is(err, ErrInvalidXMatch) {
			t.Errorf("ValidateHeadersArgs(%v) = %v, want ErrInvalidXMatch", c.args, err)
			continue
		}
		var xe *XMatchError
		if !errors.As(err, &xe) || !strings.HasPrefix(err.Error(), c.text) {
			t.Errorf("ValidateHeadersArgs(%v) = %q, want prefix %q", c.args, err, c.text)
		}
	}
}

func TestHeadersTable(t *testing.T) {
	h := NewHeaders[string]()
	pdf := map[string]any{"format": "pdf"}
	anyA4 := map[string]any{"x-match": "any", "format": "pdf", "size": "a4"}
	if !h.Add(pdf, "q1") || !h.Add(anyA4, "q1") || !h.Add(pdf, "q2") {
		t.Fatal("Add of new bindings returned false")
	}
	if h.Add(map[string]any{"format": "pdf"}, "q1") {
		t.Fatal("Add of equal args returned true")
	}
	if !h.Add(map[string]any{"format": []byte("pdf")}, "q1") {
		t.Fatal("args with a different value type are a different binding")
	}
	if !h.Add(nil, "q3") || h.Add(map[string]any{}, "q3") {
		t.Fatal("nil and empty args must be the same binding")
	}
	if n := h.Len(); n != 5 {
		t.Fatalf("Len = %d, want 5", n)
	}
	check := func(hdrs map[string]any, want ...string) {
		t.Helper()
		got := h.Match(hdrs, nil)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%v) = %q, want %q", hdrs, got, want)
		}
	}
	check(map[string]any{"format": "pdf", "size": "a4"}, "q1", "q2", "q3") // q1 once
	check(map[string]any{"size": "a4"}, "q1", "q3")
	check(nil, "q3")

	if h.Remove(map[string]any{"format": "doc"}, "q1") || h.Remove(pdf, "q9") {
		t.Fatal("Remove of an unbound pair returned true")
	}
	if !h.Remove(map[string]any{"x-match": "any", "format": "pdf", "size": "a4"}, "q1") {
		t.Fatal("Remove with equal args returned false")
	}
	check(map[string]any{"size": "a4"}, "q3")
	check(map[string]any{"format": "pdf"}, "q1", "q2", "q3")
	if !h.Remove(pdf, "q1") || !h.Remove(map[string]any{"format": []byte("pdf")}, "q1") {
		t.Fatal("Remove returned false")
	}
	check(map[string]any{"format": "pdf"}, "q2", "q3")
	if !h.Remove(map[string]any{}, "q3") || !h.Remove(pdf, "q2") {
		t.Fatal("Remove returned false")
	}
	check(map[string]any{"format": "pdf"})
	if h.Len() != 0 || len(h.dests) != 0 || len(h.pos) != 0 {
		t.Fatalf("not empty: %d bindings, %d dests", h.Len(), len(h.dests))
	}
}

func TestHeadersConcurrent(t *testing.T) {
	h := NewHeaders[int]()
	h.Add(map[string]any{"k": "v"}, 0)
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				args := map[string]any{"k": "v", "i": int64(i % 10)}
				h.Add(args, 1+w)
				h.Remove(args, 1+w)
			}
		})
	}
	errs := make(chan string, 8)
	hdrs := map[string]any{"k": "v", "i": int64(3)}
	for range 8 {
		readers.Go(func() {
			out := make([]int, 0, 16)
			for range 20000 {
				out = h.Match(hdrs, out[:0])
				if !slices.Contains(out, 0) {
					errs <- "stable binding missing"
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
