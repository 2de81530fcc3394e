package wire

import (
	"encoding/binary"
	"time"
)

// decoder reads AMQP data fields (section 4.2.5) from a method's arguments or
// a content header's property list. The first failure is recorded in err;
// later reads return zero values, so generated code can decode every field
// and check once at the end.
type decoder struct {
	b   []byte
	off int
	err *Error
}

var errTruncatedArgs = newError(SyntaxError, "truncated arguments")

// need reports whether n more bytes are available, recording a truncation
// error if they are not.
func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b)-d.off < n {
		d.err = errTruncatedArgs
		return false
	}
	return true
}

func (d *decoder) octet() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) short() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) long() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) longlong() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

// shortstr decodes a short string. It returns old, without allocating, when
// the bytes on the wire equal it.
func (d *decoder) shortstr(old string) string {
	if !d.need(1) {
		return ""
	}
	n := int(d.b[d.off])
	if !d.need(1 + n) {
		return ""
	}
	s := d.b[d.off+1 : d.off+1+n]
	d.off += 1 + n
	if string(s) == old {
		return old
	}
	return string(s)
}

// rawLongstr returns the bytes of a long string, aliasing the input.
func (d *decoder) rawLongstr() []byte {
	if !d.need(4) {
		return nil
	}
	n := binary.BigEndian.Uint32(d.b[d.off:])
	if uint64(n) > uint64(len(d.b)-d.off-4) {
		d.err = errTruncatedArgs
		return nil
	}
	s := d.b[d.off+4 : d.off+4+int(n)]
	d.off += 4 + int(n)
	return s
}

// longstr decodes a long string, returning old when the bytes equal it.
func (d *decoder) longstr(old string) string {
	s := d.rawLongstr()
	if string(s) == old {
		return old
	}
	return string(s)
}

// bytes decodes a long string into a new byte slice, nil when empty.
func (d *decoder) bytes() []byte {
	s := d.rawLongstr()
	if len(s) == 0 {
		return nil
	}
	return append([]byte(nil), s...)
}

func (d *decoder) timestamp() time.Time {
	if !d.need(8) {
		return time.Time{}
	}
	return decodeTime(d.longlong())
}

// table decodes a field table: nil when empty, freshly allocated otherwise.
func (d *decoder) table() Table {
	if d.err != nil {
		return nil
	}
	t, n, err := decodeTable(d.b[d.off:], 0)
	if err != nil {
		d.err = err
		return nil
	}
	d.off += n
	return t
}

// finish returns the decoding error, if any, naming the method, and rejects
// bytes left after the last argument.
func (d *decoder) finish(name string) error {
	if d.err != nil {
		return newError(d.err.Code, name+": "+d.err.Text)
	}
	if d.off != len(d.b) {
		return newError(SyntaxError, name+": trailing bytes after arguments")
	}
	return nil
}

// decodeTime converts a timestamp, seconds since the Unix epoch, to a UTC time.
func decodeTime(sec uint64) time.Time {
	return time.Unix(int64(sec), 0).UTC()
}

func bit(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// appendShortstr appends a short string, truncating it to 255 bytes.
func appendShortstr(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// appendLongstr appends a long string.
func appendLongstr[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTimestamp appends a timestamp as seconds since the Unix epoch.
func appendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
}
