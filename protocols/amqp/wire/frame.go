package wire

import (
	"encoding/binary"
	"io"
	"math"
)

// ProtocolHeader is the header a client sends before its first frame to ask
// for AMQP 0-9-1 (section 4.2.2). A server that receives any other header
// writes this one back and closes the connection.
var ProtocolHeader = [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// DefaultFrameMax is the frame size limit a Reader enforces until
// SetFrameMax is called, and when it is called with 0: 128 KiB, the frame-max
// RabbitMQ and amqp091-go propose by default.
const DefaultFrameMax = 131072

// FrameOverhead is the number of bytes a frame adds to its payload: the
// 7-byte header and the frame-end octet.
const FrameOverhead = 8

// readChunk is the size of the Reader's buffer and of each read it issues.
const readChunk = 64 << 10

// Frame is one frame read by a Reader.
type Frame struct {
	// Type is FrameMethod, FrameHeader, FrameBody or FrameHeartbeat.
	Type    uint8
	Channel uint16
	// Payload aliases the Reader's buffer: it is valid until the next call
	// to ReadFrame or ReadProtocolHeader. It is empty for heartbeats.
	Payload []byte
}

// Reader reads frames from a connection. It does its own buffering, reading
// in 64 KiB chunks so that many small frames cost one read call; do not wrap
// the connection in a bufio.Reader. The buffer grows to hold a frame larger
// than 64 KiB, so its size is bounded by the frame-max. A Reader is not safe
// for concurrent use.
type Reader struct {
	rd       io.Reader
	buf      []byte
	r, w     int // unread data is buf[r:w]
	frameMax uint32
	err      *Error // sticky protocol error
}

// NewReader returns a Reader that reads from rd with a frame-max of
// DefaultFrameMax. The buffer is allocated by the first read.
func NewReader(rd io.Reader) *Reader {
	return &Reader{rd: rd, frameMax: DefaultFrameMax}
}

// SetFrameMax sets the largest frame the Reader accepts, counting the 7-byte
// header and the frame-end octet, as negotiated by connection.tune-ok. Zero,
// which the specification allows to mean "no limit", selects
// DefaultFrameMax; values below FrameMinSize are raised to it, since every
// peer must accept frames of that size.
func (r *Reader) SetFrameMax(n uint32) {
	switch {
	case n == 0:
		n = DefaultFrameMax
	case n < FrameMinSize:
		n = FrameMinSize
	}
	r.frameMax = n
}

// FrameMax returns the frame size limit the Reader enforces.
func (r *Reader) FrameMax() uint32 { return r.frameMax }

// Buffered returns the number of bytes read from the connection but not yet
// returned. A server can flush its output only when it is zero, since more
// frames are otherwise already waiting.
func (r *Reader) Buffered() int { return r.w - r.r }

// ReadProtocolHeader reads the 8-byte protocol header (section 4.2.2). It
// returns io.EOF if the connection closed before sending anything and
// io.ErrUnexpectedEOF if it closed in the middle of the header.
func (r *Reader) ReadProtocolHeader() ([8]byte, error) {
	var h [8]byte
	if err := r.fill(len(h)); err != nil {
		return h, err
	}
	copy(h[:], r.buf[r.r:])
	r.r += len(h)
	return h, nil
}

// ReadFrame reads the next frame (section 4.2.3). The frame type, the size
// against the frame-max and, for heartbeats, the channel and size are checked
// from the header, before the payload is read or buffer space allocated.
//
// Errors: io.EOF if the connection closed between frames,
// io.ErrUnexpectedEOF if it closed within one, other errors from the
// underlying reader as they are (a read can be retried after a timeout), and
// an *Error with code FrameError for an unknown frame type, a frame larger
// than the frame-max, a bad frame-end octet or a malformed heartbeat. After
// an *Error the stream is out of step: every later call returns the same
// error.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	if err := r.fill(7); err != nil {
		return Frame{}, err
	}
	h := r.buf[r.r : r.r+7]
	typ := h[0]
	channel := binary.BigEndian.Uint16(h[1:])
	size := binary.BigEndian.Uint32(h[3:])
	switch typ {
	case FrameMethod, FrameHeader, FrameBody:
	case FrameHeartbeat:
		// Section 4.2.7: heartbeats are empty and use channel 0.
		if size != 0 {
			return Frame{}, r.fail(errHeartbeatPayload)
		}
		if channel != 0 {
			return Frame{}, r.fail(errHeartbeatChannel)
		}
	default:
		return Frame{}, r.fail(unknownFrameType(typ))
	}
	total := uint64(size) + FrameOverhead
	if total > uint64(r.frameMax) {
		return Frame{}, r.fail(frameTooLarge(total, uint64(r.frameMax)))
	}
	n := int(total)
	if err := r.fill(n); err != nil {
		return Frame{}, err
	}
	if r.buf[r.r+n-1] != FrameEnd {
		return Frame{}, r.fail(errBadFrameEnd)
	}
	end := r.r + 7 + int(size)
	f := Frame{Type: typ, Channel: channel, Payload: r.buf[r.r+7 : end : end]}
	r.r += n
	return f, nil
}

func (r *Reader) fail(err *Error) error {
	r.err = err
	return err
}

// fill ensures that at least n unread bytes are buffered.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	if len(r.buf)-r.r < n {
		buf := r.buf
		if n > len(buf) {
			// Round up to whole read chunks so that the bytes that follow
			// the large frame can be read along with it.
			buf = make([]byte, (n+readChunk-1)/readChunk*readChunk)
		}
		r.w = copy(buf, r.buf[r.r:r.w])
		r.r = 0
		r.buf = buf
	}
	for empty := 0; r.w-r.r < n; {
		m, err := r.rd.Read(r.buf[r.w:])
		r.w += m
		if r.w-r.r >= n {
			return nil
		}
		if err != nil {
			if err == io.EOF && r.w > r.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return io.ErrNoProgress
		}
	}
	return nil
}

// AppendFrameHeader appends a 7-byte frame header (section 4.2.3).
func AppendFrameHeader(b []byte, typ uint8, channel uint16, size uint32) []byte {
	return append(b, typ, byte(channel>>8), byte(channel),
		byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
}

// AppendMethodFrame appends a whole method frame for m (section 4.2.4):
// header, class id, method id, arguments and frame-end octet.
func AppendMethodFrame(b []byte, channel uint16, m Method) []byte {
	b = AppendFrameHeader(b, FrameMethod, channel, 0)
	start := len(b)
	b = AppendMethod(b, m)
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return append(b, FrameEnd)
}

// AppendHeaderFrame appends a whole content header frame (section 4.2.6.1)
// with weight 0. A nil p encodes no properties.
func AppendHeaderFrame(b []byte, channel uint16, classID uint16, bodySize uint64, p *Properties) []byte {
	b = AppendFrameHeader(b, FrameHeader, channel, 0)
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, classID)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint64(b, bodySize)
	b = appendProperties(b, p)
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return append(b, FrameEnd)
}

// AppendBodyFrames appends body as content body frames (section 4.2.6.2),
// each at most frameMax bytes long including header and frame-end octet. It
// appends nothing for an empty body. A frameMax of 0 means no limit; values
// below FrameMinSize are raised to it.
func AppendBodyFrames(b []byte, channel uint16, body []byte, frameMax uint32) []byte {
	limit := uint64(math.MaxUint32)
	switch {
	case frameMax == 0:
	case frameMax < FrameMinSize:
		limit = FrameMinSize - FrameOverhead
	default:
		limit = uint64(frameMax) - FrameOverhead
	}
	for len(body) > 0 {
		n := len(body)
		if uint64(n) > limit {
			n = int(limit)
		}
		b = AppendFrameHeader(b, FrameBody, channel, uint32(n))
		b = append(b, body[:n]...)
		b = append(b, FrameEnd)
		body = body[n:]
	}
	return b
}

// AppendHeartbeat appends a heartbeat frame (section 4.2.7).
func AppendHeartbeat(b []byte) []byte {
	return append(b, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}
