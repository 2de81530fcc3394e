package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzSTOMPFrame reads arbitrary input in every escaping, also through
// one-byte reads (split frames), and checks that nothing panics, that
// nothing beyond the limits is accepted, and that a frame read, written
// and read again is the same frame.
func FuzzSTOMPFrame(f *testing.F) {
	for _, c := range wireCases {
		f.Add([]byte(c.raw), uint8(c.esc))
	}
	f.Add([]byte("SEND\ncontent-length:5\n\n\x00\x00\x00\x00\x00\x00\n\nACK\nid:1\n\n\x00"), uint8(Escape12))
	lim := Limits{MaxFrameSize: 4096, MaxHeaders: 16, MaxHeaderLength: 256}
	f.Fuzz(func(t *testing.T, data []byte, e uint8) {
		esc := Escaping(e % 3)
		whole := readAll(t, bufio.NewReader(bytes.NewReader(data)), esc, lim)
		split := readAll(t, bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16), esc, lim)
		if len(whole) != len(split) {
			t.Fatalf("%d frames whole, %d split", len(whole), len(split))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], split[i]) {
				t.Fatalf("frame %d differs when split: %q vs %q", i, whole[i], split[i])
			}
		}
	})
}

// readAll reads frames until an error and returns each re-encoded; every
// frame must survive a second read of its encoding.
func readAll(t *testing.T, br *bufio.Reader, esc Escaping, lim Limits) [][]byte {
	r := NewReader(br, lim)
	r.Escaping = esc
	var out [][]byte
	for {
		f, err := r.Read()
		if err != nil {
			var we *Error
			if !errors.As(err, &we) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error %v", err)
			}
			return out
		}
		if f == nil {
			continue
		}
		if f.Header.Len() > lim.MaxHeaders || len(f.Body) >= lim.MaxFrameSize {
			t.Fatalf("over the limits: %d headers, %d bytes", f.Header.Len(), len(f.Body))
		}
		fe := esc
		if f.Command == "CONNECT" || f.Command == "STOMP" {
			fe = Escape10
		}
		enc := AppendFrame(nil, f, fe)
		r2 := NewReader(bufio.NewReader(bytes.NewReader(enc)), Limits{MaxFrameSize: 1 << 20, MaxHeaderLength: 1 << 20})
		r2.Escaping = fe
		g, err := r2.Read()
		if err != nil {
			t.Fatalf("re-reading %q: %v", enc, err)
		}
		if enc2 := AppendFrame(nil, g, fe); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip: %q then %q", enc, enc2)
		}
		out = append(out, enc)
	}
}
