package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
)

// The fuzz targets are seeded with the wire-case table and with the bytes
// the amqp091-go client sent in capture_test.go.

// halvesReader returns its two parts in separate reads.
type halvesReader struct{ parts [][]byte }

func (r *halvesReader) Read(p []byte) (int, error) {
	for len(r.parts) > 0 && len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	return n, nil
}

// fuzzFrameMax is the frame-max the frame fuzzer runs with, small enough to
// be reached by generated inputs.
const fuzzFrameMax = FrameMinSize

type readResult struct {
	frames [][]byte // type, channel and payload of each frame
	err    error
}

// readAll reads frames until an error, checking the invariants of each.
func readAll(t *testing.T, rd io.Reader) readResult {
	r := NewReader(rd)
	r.SetFrameMax(fuzzFrameMax)
	var res readResult
	var dec MethodDecoder
	var hdr ContentHeader
	for {
		f, err := r.ReadFrame()
		if err != nil {
			res.err = err
			break
		}
		if len(f.Payload)+FrameOverhead > fuzzFrameMax {
			t.Fatalf("frame of %d bytes passed a frame-max of %d", len(f.Payload)+FrameOverhead, fuzzFrameMax)
		}
		res.frames = append(res.frames, cat([]byte{f.Type}, u16(f.Channel), f.Payload))
		switch f.Type {
		case FrameMethod:
			if m, err := dec.Decode(f.Payload); err == nil {
				checkMethodRoundTrip(t, m)
			} else {
				checkCodecError(t, err)
			}
		case FrameHeader:
			if err := hdr.Decode(f.Payload); err == nil {
				checkHeaderRoundTrip(t, &hdr)
			} else {
				checkCodecError(t, err)
			}
		}
	}
	// Memory stays bounded by the frame-max.
	if len(r.buf) > readChunk {
		t.Fatalf("buffer grew to %d bytes", len(r.buf))
	}
	return res
}

func checkCodecError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code < 500 || ReplyCodeName(e.Code) == "" {
		t.Fatalf("decode error %v is not a codec error", err)
	}
}

func FuzzFrame(f *testing.F) {
	for _, tc := range wireCases() {
		f.Add(tc.raw)
	}
	c := captureClient(f)
	f.Add(c.stream[len(ProtocolHeader):])
	for _, fr := range c.frames {
		f.Add(rawFrame(fr.Type, fr.Channel, fr.Payload))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := readAll(t, bytes.NewReader(data))
		half := len(data) / 2
		split := readAll(t, &halvesReader{parts: [][]byte{data[:half:half], data[half:]}})
		if !reflect.DeepEqual(whole.frames, split.frames) {
			t.Fatalf("split read gave %d frames, whole read %d", len(split.frames), len(whole.frames))
		}
		var e1, e2 *Error
		if errors.As(whole.err, &e1) != errors.As(split.err, &e2) || (e1 != nil && *e1 != *e2) {
			t.Fatalf("errors differ: %v / %v", whole.err, split.err)
		}
		if e1 == nil && whole.err != io.EOF && whole.err != io.ErrUnexpectedEOF {
			t.Fatalf("unexpected error %v", whole.err)
		}
	})
}

// checkMethodRoundTrip encodes m, decodes it into a fresh instance and
// requires the same value and the same encoding.
func checkMethodRoundTrip(t *testing.T, m Method) {
	t.Helper()
	enc := AppendMethod(nil, m)
	m2, ok := NewMethod(m.ClassID(), m.MethodID())
	if !ok {
		t.Fatalf("NewMethod(%d, %d) failed for %s", m.ClassID(), m.MethodID(), m.Name())
	}
	if err := m2.Decode(enc[4:]); err != nil {
		t.Fatalf("%s: decode of own encoding: %v", m.Name(), err)
	}
	if !reflect.DeepEqual(m, m2) && !hasNaN(reflect.ValueOf(m)) {
		t.Fatalf("%s: round trip\n got %#v\nwant %#v", m.Name(), m2, m)
	}
	if enc2 := AppendMethod(nil, m2); !bytes.Equal(enc, enc2) {
		t.Fatalf("%s: encoding not stable", m.Name())
	}
}

func checkHeaderRoundTrip(t *testing.T, h *ContentHeader) {
	t.Helper()
	enc := h.Append(nil)
	var h2 ContentHeader
	if err := h2.Decode(enc); err != nil {
		t.Fatalf("decode of own header encoding: %v", err)
	}
	if !reflect.DeepEqual(*h, h2) && !hasNaN(reflect.ValueOf(h)) {
		t.Fatalf("header round trip\n got %#v\nwant %#v", h2, *h)
	}
	if enc2 := h2.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatal("header encoding not stable")
	}
}

// hasNaN reports whether v holds a floating-point NaN, which DeepEqual never
// considers equal to itself.
func hasNaN(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.IsNaN(v.Float())
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && hasNaN(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && hasNaN(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if hasNaN(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if hasNaN(it.Value()) {
				return true
			}
		}
	}
	return false
}

func FuzzMethod(f *testing.F) {
	for _, tc := range wireCases() {
		frames, _, _, _ := decodeStream(tc.raw, tc.frameMax)
		for _, fr := range frames {
			if fr.Type == FrameMethod {
				f.Add(fr.Payload)
			}
		}
	}
	for _, fr := range captureClient(f).frames {
		if fr.Type == FrameMethod {
			f.Add(fr.Payload)
		}
	}
	for _, ids := range allMethodIDs {
		m, _ := NewMethod(ids[0], ids[1])
		fillMethod(m, 1, 0x5)
		f.Add(AppendMethod(nil, m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var dec MethodDecoder
		m, err := dec.Decode(data)
		if err != nil {
			checkCodecError(t, err)
			return
		}
		checkMethodRoundTrip(t, m)
		// Decoding again into the used instance gives the same value.
		m2, err := dec.Decode(data)
		if err != nil || m2 != m {
			t.Fatalf("second decode: %v", err)
		}
	})
}

func FuzzFieldTable(f *testing.F) {
	for _, tc := range tableCases {
		f.Add(tableWire(tc.wire))
	}
	f.Add(nestedTable(MaxTableDepth))
	var dec MethodDecoder
	for _, fr := range captureClient(f).frames {
		switch fr.Type {
		case FrameMethod:
			m, err := dec.Decode(fr.Payload)
			if err != nil {
				continue
			}
			// Seed with the tables the client sent.
			v := reflect.ValueOf(m).Elem()
			for i := 0; i < v.NumField(); i++ {
				if tab, ok := v.Field(i).Interface().(Table); ok && tab != nil {
					enc, err := AppendTable(nil, tab)
					if err == nil {
						f.Add(enc)
					}
				}
			}
		case FrameHeader:
			var h ContentHeader
			if h.Decode(fr.Payload) == nil && h.Properties.Headers != nil {
				enc, _ := AppendTable(nil, h.Properties.Headers)
				f.Add(enc)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, n, err := DecodeTable(data)
		if err != nil {
			checkCodecError(t, err)
			return
		}
		if n < 4 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		enc, err := AppendTable(nil, tab)
		if err != nil {
			t.Fatalf("cannot encode decoded table: %v", err)
		}
		tab2, n2, err := DecodeTable(enc)
		if err != nil || n2 != len(enc) {
			t.Fatalf("decode of own encoding: %v (%d of %d bytes)", err, n2, len(enc))
		}
		if !reflect.DeepEqual(tab, tab2) && !hasNaN(reflect.ValueOf(tab)) {
			t.Fatalf("round trip\n got %#v\nwant %#v", tab2, tab)
		}
		if enc2, _ := AppendTable(nil, tab2); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}
