package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Helpers that spell out wire bytes.

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func u64(v uint64) []byte { return append(u32(uint32(v>>32)), u32(uint32(v))...) }
func sstr(s string) []byte {
	return append([]byte{byte(len(s))}, s...)
}
func lstr(s string) []byte { return append(u32(uint32(len(s))), s...) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// rawFrame spells out a frame with the given payload and frame-end octet.
func rawFrame(typ uint8, channel uint16, payload []byte) []byte {
	return cat([]byte{typ}, u16(channel), u32(uint32(len(payload))), payload, []byte{FrameEnd})
}

// methodPayload spells out a method frame payload.
func methodPayload(class, method uint16, args ...[]byte) []byte {
	return cat(u16(class), u16(method), cat(args...))
}

// wireCase is one entry of the wire-case table: raw bytes and what they
// decode to, or the reply code of the error they must produce.
type wireCase struct {
	spec     string // AMQP 0-9-1 section and subject
	raw      []byte // frames on the wire
	frameMax uint32 // 0: the Reader's default

	// For valid input: the frames, and for method and header frames the
	// decoded values, in order.
	frames  []Frame
	methods []Method
	headers []ContentHeader

	code uint16 // expected *Error code, 0 for valid input
}

var publishArgs = cat(u16(0), sstr("amq.topic"), sstr("a.b"), []byte{0x01})

var publishHeaderPayload = cat(u16(ClassBasic), u16(0), u64(16),
	u16(flagContentType|flagDeliveryMode|flagTimestamp),
	sstr("text/plain"), []byte{2}, u64(1700000000))

func wireCases() []wireCase {
	publish := rawFrame(FrameMethod, 1, methodPayload(ClassBasic, MethodBasicPublish, publishArgs))
	header := rawFrame(FrameHeader, 1, publishHeaderPayload)
	body := rawFrame(FrameBody, 1, []byte(seedSmallBody))
	declareFields := cat(sstr("k"), []byte{'t', 1}, sstr("x-max-length"), []byte{'I'}, u32(1000))
	declareArgs := cat(u32(uint32(len(declareFields))), declareFields)
	return []wireCase{
		{
			spec: "4.2.3 general frame format: method frame on channel 0 (connection.tune-ok)",
			raw: []byte{1, 0, 0, 0, 0, 0, 12,
				0, 10, 0, 31, 0x07, 0xff, 0, 2, 0, 0, 0, 60, FrameEnd},
			methods: []Method{&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60}},
		},
		{
			spec:    "4.2.4 method payloads: basic.publish, two bits in one octet",
			raw:     publish,
			methods: []Method{&BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b", Mandatory: true}},
		},
		{
			spec: "4.2.5.2 bits: queue.declare packs five bits into one octet",
			raw: rawFrame(FrameMethod, 3, methodPayload(ClassQueue, MethodQueueDeclare,
				u16(0), sstr("q"), []byte{0x1e}, u32(0))),
			methods: []Method{&QueueDeclare{Queue: "q", Durable: true, Exclusive: true, AutoDelete: true, NoWait: true}},
		},
		{
			spec: "4.2.5.3 strings: short and long strings (connection.start)",
			raw: rawFrame(FrameMethod, 0, methodPayload(ClassConnection, MethodConnectionStart,
				[]byte{0, 9}, u32(0), lstr("PLAIN AMQPLAIN"), lstr("en_US"))),
			methods: []Method{&ConnectionStart{VersionMinor: 9, Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"}},
		},
		{
			spec: "4.2.5.3 strings: binary long string (connection.start-ok response)",
			raw: rawFrame(FrameMethod, 0, methodPayload(ClassConnection, MethodConnectionStartOk,
				u32(0), sstr("PLAIN"), lstr("\x00u\x00p"), sstr("en_US"))),
			methods: []Method{&ConnectionStartOk{Mechanism: "PLAIN", Response: []byte("\x00u\x00p"), Locale: "en_US"}},
		},
		{
			spec: "4.2.5.5 field tables: queue.declare arguments",
			raw: rawFrame(FrameMethod, 1, methodPayload(ClassQueue, MethodQueueDeclare,
				u16(0), sstr("q"), []byte{0x02}, declareArgs)),
			methods: []Method{&QueueDeclare{Queue: "q", Durable: true,
				Arguments: Table{"x-max-length": int32(1000), "k": true}}},
		},
		{
			spec: "4.2.6.1 content header: basic properties",
			raw:  header,
			headers: []ContentHeader{{ClassID: ClassBasic, BodySize: 16, Properties: Properties{
				ContentType: "text/plain", DeliveryMode: 2, Timestamp: time.Unix(1700000000, 0).UTC()}}},
		},
		{
			spec:   "4.2.6.2 content body",
			raw:    body,
			frames: []Frame{{Type: FrameBody, Channel: 1, Payload: []byte(seedSmallBody)}},
		},
		{
			spec:   "4.2.7 heartbeat frame",
			raw:    []byte{8, 0, 0, 0, 0, 0, 0, FrameEnd},
			frames: []Frame{{Type: FrameHeartbeat, Payload: []byte{}}},
		},
		{
			spec: "4.2.6 content framing: basic.publish, content header, content body",
			raw:  cat(publish, header, body),
			frames: []Frame{
				{Type: FrameMethod, Channel: 1, Payload: methodPayload(ClassBasic, MethodBasicPublish, publishArgs)},
				{Type: FrameHeader, Channel: 1, Payload: publishHeaderPayload},
				{Type: FrameBody, Channel: 1, Payload: []byte(seedSmallBody)},
			},
			methods: []Method{&BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b", Mandatory: true}},
			headers: []ContentHeader{{ClassID: ClassBasic, BodySize: 16, Properties: Properties{
				ContentType: "text/plain", DeliveryMode: 2, Timestamp: time.Unix(1700000000, 0).UTC()}}},
		},

		// Malformed input.
		{
			spec: "4.2.3 general frame format: bad frame-end octet",
			raw:  []byte{8, 0, 0, 0, 0, 0, 0, 0xCD},
			code: FrameError,
		},
		{
			spec:     "4.2.3 general frame format: frame larger than the negotiated frame-max",
			raw:      rawFrame(FrameBody, 1, make([]byte, FrameMinSize)),
			frameMax: FrameMinSize,
			code:     FrameError,
		},
		{
			spec: "4.2.3 general frame format: unknown frame type",
			raw:  rawFrame(4, 1, []byte{1}),
			code: FrameError,
		},
		{
			spec: "4.2.7 heartbeat frames: payload not empty",
			raw:  rawFrame(FrameHeartbeat, 0, []byte{0}),
			code: FrameError,
		},
		{
			spec: "4.2.7 heartbeat frames: channel not 0",
			raw:  rawFrame(FrameHeartbeat, 1, nil),
			code: FrameError,
		},
		{
			spec: "4.2.4 method payloads: too short for class and method ids",
			raw:  rawFrame(FrameMethod, 1, []byte{0, 60, 0}),
			code: FrameError,
		},
		{
			spec: "4.2.4 method payloads: truncated arguments",
			raw:  rawFrame(FrameMethod, 1, methodPayload(ClassBasic, MethodBasicPublish, u16(0), sstr("amq.topic"))),
			code: SyntaxError,
		},
		{
			spec: "4.2.4 method payloads: trailing bytes after the arguments",
			raw:  rawFrame(FrameMethod, 1, methodPayload(ClassBasic, MethodBasicPublish, publishArgs, []byte{0})),
			code: SyntaxError,
		},
		{
			spec: "4.2.5.3 strings: short string longer than the payload",
			raw:  rawFrame(FrameMethod, 1, methodPayload(ClassBasic, MethodBasicPublish, u16(0), []byte{200, 'x'})),
			code: SyntaxError,
		},
		{
			spec: "4.2.4 method payloads: unknown method id",
			raw:  rawFrame(FrameMethod, 1, methodPayload(ClassBasic, 99)),
			code: CommandInvalid,
		},
		{
			spec: "4.2.4 method payloads: unknown class id",
			raw:  rawFrame(FrameMethod, 1, methodPayload(70, 10)),
			code: CommandInvalid,
		},
		{
			spec: "4.2.5.5 field tables: unknown field type tag",
			raw: rawFrame(FrameMethod, 1, methodPayload(ClassQueue, MethodQueueDeclare,
				u16(0), sstr("q"), []byte{0}, u32(3), sstr("k"), []byte{'Z'})),
			code: SyntaxError,
		},
		{
			spec: "4.2.5.5 field tables: table length past the payload",
			raw: rawFrame(FrameMethod, 1, methodPayload(ClassQueue, MethodQueueDeclare,
				u16(0), sstr("q"), []byte{0}, u32(1000), sstr("k"))),
			code: SyntaxError,
		},
		{
			spec: "4.2.5.5 field tables: nested deeper than MaxTableDepth",
			raw: rawFrame(FrameMethod, 1, methodPayload(ClassQueue, MethodQueueDeclare,
				u16(0), sstr("q"), []byte{0}, nestedTable(MaxTableDepth+1))),
			code: SyntaxError,
		},
		{
			spec: "4.2.6.1 content header: continuation flag set",
			raw:  rawFrame(FrameHeader, 1, cat(u16(ClassBasic), u16(0), u64(0), u16(1), u16(0))),
			code: SyntaxError,
		},
		{
			spec: "4.2.6.1 content header: truncated property list",
			raw:  rawFrame(FrameHeader, 1, cat(u16(ClassBasic), u16(0), u64(0), u16(flagContentType))),
			code: SyntaxError,
		},
		{
			spec: "4.2.6.1 content header: class without content",
			raw:  rawFrame(FrameHeader, 1, cat(u16(ClassQueue), u16(0), u64(0), u16(0))),
			code: UnexpectedFrame,
		},
		{
			spec: "4.2.6.1 content header: shorter than its fixed fields",
			raw:  rawFrame(FrameHeader, 1, cat(u16(ClassBasic), u16(0), u64(0))),
			code: FrameError,
		},
	}
}

// nestedTable returns a table nested depth levels deep, counting itself.
func nestedTable(depth int) []byte {
	t := u32(0)
	for i := 1; i < depth; i++ {
		inner := cat(sstr("n"), []byte{'F'}, t)
		t = cat(u32(uint32(len(inner))), inner)
	}
	return t
}

// decodeStream reads every frame of raw and decodes method and header
// frames. It stops at the first error.
func decodeStream(raw []byte, frameMax uint32) (frames []Frame, methods []Method, headers []ContentHeader, err error) {
	r := NewReader(bytes.NewReader(raw))
	if frameMax != 0 {
		r.SetFrameMax(frameMax)
	}
	var dec MethodDecoder
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			return frames, methods, headers, nil
		}
		if err != nil {
			return frames, methods, headers, err
		}
		f.Payload = append([]byte{}, f.Payload...)
		frames = append(frames, f)
		switch f.Type {
		case FrameMethod:
			m, err := dec.Decode(f.Payload)
			if err != nil {
				return frames, methods, headers, err
			}
			fresh, _ := NewMethod(m.ClassID(), m.MethodID())
			if err := fresh.Decode(f.Payload[4:]); err != nil {
				return frames, methods, headers, err
			}
			methods = append(methods, fresh)
		case FrameHeader:
			var h ContentHeader
			if err := h.Decode(f.Payload); err != nil {
				return frames, methods, headers, err
			}
			headers = append(headers, h)
		}
	}
}

// encodeStream encodes frames back, from the decoded methods and headers.
func encodeStream(frames []Frame, methods []Method, headers []ContentHeader) []byte {
	var b []byte
	for _, f := range frames {
		switch f.Type {
		case FrameMethod:
			b = AppendMethodFrame(b, f.Channel, methods[0])
			methods = methods[1:]
		case FrameHeader:
			h := headers[0]
			headers = headers[1:]
			b = AppendHeaderFrame(b, f.Channel, h.ClassID, h.BodySize, &h.Properties)
		case FrameBody:
			b = AppendBodyFrames(b, f.Channel, f.Payload, 0)
		case FrameHeartbeat:
			b = AppendHeartbeat(b)
		}
	}
	return b
}

func TestWireCases(t *testing.T) {
	for _, tc := range wireCases() {
		t.Run(tc.spec, func(t *testing.T) {
			frames, methods, headers, err := decodeStream(tc.raw, tc.frameMax)
			if tc.code != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Code != tc.code {
					t.Fatalf("error %v, want code %d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.frames != nil && !reflect.DeepEqual(frames, tc.frames) {
				t.Errorf("frames\n got %+v\nwant %+v", frames, tc.frames)
			}
			if !reflect.DeepEqual(methods, tc.methods) {
				t.Errorf("methods\n got %#v\nwant %#v", methods, tc.methods)
			}
			for i := range headers {
				headers[i].Properties.Present = 0 // checked by TestPresentZeroValues
			}
			if !reflect.DeepEqual(headers, tc.headers) {
				t.Errorf("headers\n got %#v\nwant %#v", headers, tc.headers)
			}
			// The cases are in canonical form, so encoding gives them back.
			if enc := encodeStream(frames, methods, headers); !bytes.Equal(enc, tc.raw) {
				t.Errorf("re-encoded\n got %x\nwant %x", enc, tc.raw)
			}
		})
	}
}

// TestWireCasesSplitReads feeds every case one byte per read.
func TestWireCasesSplitReads(t *testing.T) {
	for _, tc := range wireCases() {
		r := NewReader(iotest.OneByteReader(bytes.NewReader(tc.raw)))
		if tc.frameMax != 0 {
			r.SetFrameMax(tc.frameMax)
		}
		var payloads [][]byte
		for {
			f, err := r.ReadFrame()
			if err != nil {
				break
			}
			payloads = append(payloads, append([]byte{}, f.Payload...))
		}
		frames, _, _, _ := decodeStream(tc.raw, tc.frameMax)
		if len(frames) != len(payloads) {
			t.Errorf("%s: %d frames one byte at a time, %d at once", tc.spec, len(payloads), len(frames))
			continue
		}
		for i := range frames {
			if !bytes.Equal(frames[i].Payload, payloads[i]) {
				t.Errorf("%s: frame %d differs", tc.spec, i)
			}
		}
	}
}

func TestProtocolHeader(t *testing.T) {
	// 4.2.2 protocol header.
	r := NewReader(bytes.NewReader([]byte("AMQP\x00\x00\x09\x01\x08\x00\x00\x00\x00\x00\x00\xce")))
	h, err := r.ReadProtocolHeader()
	if err != nil || h != ProtocolHeader {
		t.Fatalf("header %q, %v", h, err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatalf("frame after header: %+v, %v", f, err)
	}

	// Another protocol's header is returned as is, for the server to answer.
	r = NewReader(strings.NewReader("AMQP\x01\x01\x00\x09"))
	if h, err := r.ReadProtocolHeader(); err != nil || string(h[:]) != "AMQP\x01\x01\x00\x09" {
		t.Fatalf("0-9 header %q, %v", h, err)
	}

	r = NewReader(strings.NewReader("AMQP"))
	if _, err := r.ReadProtocolHeader(); err != io.ErrUnexpectedEOF {
		t.Fatalf("short header: %v", err)
	}
	r = NewReader(strings.NewReader(""))
	if _, err := r.ReadProtocolHeader(); err != io.EOF {
		t.Fatalf("no header: %v", err)
	}
}

func TestReaderEOF(t *testing.T) {
	hb := AppendHeartbeat(nil)
	r := NewReader(bytes.NewReader(append(hb, hb[:3]...)))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("partial frame: %v", err)
	}
	r = NewReader(bytes.NewReader(hb))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v", err)
	}
}

// errAfterReader returns data, then err on every later read.
type errAfterReader struct {
	data []byte
	err  error
	n    int // reads made after data ran out
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.n++
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReaderFrameMaxBeforePayload checks that an oversize frame is refused
// from its header, without waiting for the payload.
func TestReaderFrameMaxBeforePayload(t *testing.T) {
	src := &errAfterReader{data: cat([]byte{FrameBody}, u16(1), u32(199992)), err: errors.New("payload was read")}
	r := NewReader(src)
	_, err := r.ReadFrame()
	var e *Error
	if !errors.As(err, &e) || e.Code != FrameError {
		t.Fatalf("error %v, want a frame error", err)
	}
	if e.Text != "frame too large: 200000 > 131072" {
		t.Errorf("text %q", e.Text)
	}
	if got := e.Error(); got != "FRAME_ERROR - frame too large: 200000 > 131072" {
		t.Errorf("Error() = %q", got)
	}
	if src.n != 0 {
		t.Errorf("reader read past the header")
	}
	// The error is sticky: the stream is out of step.
	if _, err2 := r.ReadFrame(); err2 != err {
		t.Errorf("second call: %v", err2)
	}
}

func TestReaderSetFrameMax(t *testing.T) {
	r := NewReader(nil)
	for _, tc := range []struct{ set, want uint32 }{
		{0, DefaultFrameMax}, {1, FrameMinSize}, {FrameMinSize, FrameMinSize}, {1 << 20, 1 << 20},
	} {
		r.SetFrameMax(tc.set)
		if r.FrameMax() != tc.want {
			t.Errorf("SetFrameMax(%d): %d, want %d", tc.set, r.FrameMax(), tc.want)
		}
	}
}

// TestReaderLargeFrame reads frames larger than the read buffer.
func TestReaderLargeFrame(t *testing.T) {
	big := make([]byte, 200000)
	for i := range big {
		big[i] = byte(i)
	}
	var raw []byte
	raw = AppendBodyFrames(raw, 5, big, 0)
	raw = AppendHeartbeat(raw)
	raw = AppendBodyFrames(raw, 5, big[:100], 0)
	r := NewReader(bytes.NewReader(raw))
	r.SetFrameMax(300000)
	f, err := r.ReadFrame()
	if err != nil || f.Type != FrameBody || f.Channel != 5 || !bytes.Equal(f.Payload, big) {
		t.Fatalf("large frame: %v", err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatalf("heartbeat: %v", err)
	}
	if f, err := r.ReadFrame(); err != nil || !bytes.Equal(f.Payload, big[:100]) {
		t.Fatalf("small frame: %v", err)
	}
	if len(r.buf) > 300000+readChunk {
		t.Errorf("buffer grew to %d", len(r.buf))
	}
}

// timeoutReader fails its first read, after three bytes, with a timeout.
type timeoutReader struct {
	data    []byte
	timeout bool
}

type timeoutError struct{}

func (timeoutError) Error() string { return "i/o timeout" }
func (timeoutError) Timeout() bool { return true }

func (r *timeoutReader) Read(p []byte) (int, error) {
	if !r.timeout && len(r.data) > 0 {
		r.timeout = true
		n := copy(p[:3], r.data)
		r.data = r.data[n:]
		return n, timeoutError{}
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReaderRetryAfterTimeout checks that a read error from the connection
// leaves the Reader in step, so the read can be retried.
func TestReaderRetryAfterTimeout(t *testing.T) {
	raw := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "x", RoutingKey: "k"})
	r := NewReader(&timeoutReader{data: raw})
	if _, err := r.ReadFrame(); !errors.Is(err, timeoutError{}) {
		t.Fatalf("first read: %v", err)
	}
	f, err := r.ReadFrame()
	if err != nil || !bytes.Equal(f.Payload, raw[7:len(raw)-1]) {
		t.Fatalf("retry: %+v, %v", f, err)
	}
}

func TestReaderBuffered(t *testing.T) {
	var raw []byte
	for i := 0; i < 3; i++ {
		raw = AppendHeartbeat(raw)
	}
	r := NewReader(bytes.NewReader(raw))
	for want := 16; want >= 0; want -= 8 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != want {
			t.Errorf("Buffered() = %d, want %d", r.Buffered(), want)
		}
	}
}

func TestAppendBodyFrames(t *testing.T) {
	if b := AppendBodyFrames(nil, 1, nil, FrameMinSize); len(b) != 0 {
		t.Errorf("empty body gave %d bytes", len(b))
	}
	body := make([]byte, 10000)
	for _, tc := range []struct {
		frameMax uint32
		sizes    []int
	}{
		{0, []int{10000}},
		{FrameMinSize, []int{4088, 4088, 1824}},
		{100, []int{4088, 4088, 1824}}, // raised to FrameMinSize
		{10008, []int{10000}},
		{10007, []int{9999, 1}},
	} {
		raw := AppendBodyFrames([]byte("prefix"), 7, body, tc.frameMax)
		if string(raw[:6]) != "prefix" {
			t.Fatal("prefix lost")
		}
		frames, _, _, err := decodeStream(raw[6:], 20000)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, f := range frames {
			if f.Type != FrameBody || f.Channel != 7 {
				t.Errorf("frame %+v", f)
			}
			sizes = append(sizes, len(f.Payload))
		}
		if !reflect.DeepEqual(sizes, tc.sizes) {
			t.Errorf("frameMax %d: sizes %v, want %v", tc.frameMax, sizes, tc.sizes)
		}
	}
}

func TestAppendFrameHeader(t *testing.T) {
	got := AppendFrameHeader(nil, FrameBody, 0x0102, 0x03040506)
	if want := []byte{3, 1, 2, 3, 4, 5, 6}; !bytes.Equal(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
	if got := AppendHeartbeat(nil); !bytes.Equal(got, []byte{8, 0, 0, 0, 0, 0, 0, 0xCE}) {
		t.Errorf("heartbeat %x", got)
	}
}

// TestPropertiesRoundTrip encodes every property and decodes it back.
func TestPropertiesRoundTrip(t *testing.T) {
	p := Properties{
		ContentType: "application/json", ContentEncoding: "gzip",
		Headers:      Table{"x-death": []any{Table{"count": int64(1)}}, "s": "v"},
		DeliveryMode: 2, Priority: 9, CorrelationID: "c", ReplyTo: "r", Expiration: "1000",
		MessageID: "m", Timestamp: time.Unix(1700000000, 0).UTC(), Type: "t", UserID: "u",
		AppID: "a", ClusterID: "cl",
	}
	raw := AppendHeaderFrame(nil, 9, ClassBasic, 1234, &p)
	frames, _, headers, err := decodeStream(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := ContentHeader{ClassID: ClassBasic, BodySize: 1234, Properties: p}
	if len(headers) == 1 {
		headers[0].Properties.Present = 0 // checked by TestPresentZeroValues
	}
	if len(headers) != 1 || !reflect.DeepEqual(headers[0], want) {
		t.Fatalf("got %#v\nwant %#v", headers, want)
	}
	if got := want.Append(nil); !bytes.Equal(got, frames[0].Payload) {
		t.Errorf("ContentHeader.Append differs from AppendHeaderFrame")
	}
	// All fourteen flags are set, and none other.
	if flags := u16(0xfffc); !bytes.Equal(frames[0].Payload[12:14], flags) {
		t.Errorf("flags %x", frames[0].Payload[12:14])
	}

	// Absent properties: no flags, and decoding clears old values.
	raw = AppendHeaderFrame(nil, 9, ClassBasic, 0, nil)
	h := headers[0]
	if err := h.Decode(raw[7 : len(raw)-1]); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, ContentHeader{ClassID: ClassBasic}) {
		t.Errorf("after decoding empty properties: %#v", h)
	}
}

// TestBasicPropertyOrder checks the hand-written property flags against the
// property list of the specification XML.
func TestBasicPropertyOrder(t *testing.T) {
	want := []string{
		"content-type shortstr", "content-encoding shortstr", "headers table",
		"delivery-mode octet", "priority octet", "correlation-id shortstr",
		"reply-to shortstr", "expiration shortstr", "message-id shortstr",
		"timestamp timestamp", "type shortstr", "user-id shortstr", "app-id shortstr",
		"reserved shortstr",
	}
	if !reflect.DeepEqual(basicPropertyFields[:], want) {
		t.Fatalf("basic properties in the XML: %v", basicPropertyFields)
	}
	flags := []uint16{flagContentType, flagContentEncoding, flagHeaders, flagDeliveryMode,
		flagPriority, flagCorrelationID, flagReplyTo, flagExpiration, flagMessageID,
		flagTimestamp, flagType, flagUserID, flagAppID, flagClusterID}
	for i, f := range flags {
		if f != 1<<(15-i) {
			t.Errorf("flag %d = %#x", i, f)
		}
	}
}

func TestShortStringTruncated(t *testing.T) {
	long := strings.Repeat("k", 300)
	raw := AppendMethodFrame(nil, 1, &BasicPublish{RoutingKey: long})
	_, methods, _, err := decodeStream(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := methods[0].(*BasicPublish).RoutingKey; got != long[:255] {
		t.Errorf("routing key of %d bytes", len(got))
	}
}

func TestErrorText(t *testing.T) {
	var d MethodDecoder
	_, err := d.Decode(methodPayload(ClassBasic, 99))
	if err == nil || err.Error() != "COMMAND_INVALID - unknown method 99 of class 60" {
		t.Errorf("unknown method: %v", err)
	}
	_, err = d.Decode(methodPayload(ClassBasic, MethodBasicPublish, u16(0)))
	if err == nil || err.Error() != "SYNTAX_ERROR - basic.publish: truncated arguments" {
		t.Errorf("truncated: %v", err)
	}
	if got := (&Error{Code: 999, Text: "x"}).Error(); got != "999 - x" {
		t.Errorf("unknown code: %q", got)
	}
	if !IsHardError(FrameError) || IsHardError(NotFound) || ReplyCodeName(NotFound) != "NOT_FOUND" {
		t.Error("reply code helpers")
	}
}

// TestPresentZeroValues: a property sent with a zero value (priority 0, an
// empty content type) is remembered and encoded again, so it reaches
// consumers as the publisher sent it (section 4.2.6.1: the flag, not the
// value, says whether a property is present).
func TestPresentZeroValues(t *testing.T) {
	sent := Properties{Present: flagPriority | flagContentType, DeliveryMode: 2}
	raw := AppendHeaderFrame(nil, 1, ClassBasic, 0, &sent)
	r := NewReader(bytes.NewReader(raw))
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	var h ContentHeader
	if err := h.Decode(f.Payload); err != nil {
		t.Fatal(err)
	}
	want := uint16(flagPriority | flagContentType | flagDeliveryMode)
	if h.Properties.Present != want {
		t.Fatalf("present flags %#x, want %#x", h.Properties.Present, want)
	}
	again := AppendHeaderFrame(nil, 1, ClassBasic, 0, &h.Properties)
	if !bytes.Equal(again, raw) {
		t.Fatalf("re-encoded header differs:\n%x\n%x", again, raw)
	}
}
