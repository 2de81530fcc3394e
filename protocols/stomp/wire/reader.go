package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"
)

// Default limits, as RabbitMQ's STOMP plugin (max_headers, max_header_length)
// and the frame size.
const (
	DefaultMaxFrameSize    = 16 << 20
	DefaultMaxHeaders      = 1000
	DefaultMaxHeaderLength = 100 << 10
)

// Errors of Read. Every one but io errors is a malformed or oversized
// frame: the connection answers it with an ERROR frame and closes.
var (
	ErrInvalidCommand = errors.New("invalid command")
	ErrMalformed      = errors.New("malformed frame")
	ErrBadEscape      = errors.New("undefined escape sequence in header")
	ErrFrameTooLarge  = errors.New("frame too large")
	ErrTooManyHeaders = errors.New("too many headers")
	ErrHeaderTooLong  = errors.New("header too long")
)

// Error is a malformed frame: Kind is one of the errors above, Detail says
// what was wrong.
type Error struct {
	Kind   error
	Detail string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Detail }

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Limits bound what Read accepts; zero fields take the defaults.
type Limits struct {
	MaxFrameSize    int // command, headers and body, in bytes
	MaxHeaders      int
	MaxHeaderLength int // one header line (name, colon, value), in bytes
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrameSize <= 0 {
		l.MaxFrameSize = DefaultMaxFrameSize
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLength <= 0 {
		l.MaxHeaderLength = DefaultMaxHeaderLength
	}
	return l
}

// Escaping is the header encoding of a protocol version.
type Escaping uint8

// Header encodings.
const (
	// Escape10: STOMP 1.0, and CONNECT/CONNECTED in every version: no
	// escapes.
	Escape10 Escaping = iota
	// Escape11: \n \c \\ (STOMP 1.1).
	Escape11
	// Escape12: \r \n \c \\ (STOMP 1.2).
	Escape12
)

// ForVersion returns the escaping of a negotiated version ("1.0", "1.1",
// "1.2").
func ForVersion(v string) Escaping {
	switch v {
	case "1.1":
		return Escape11
	case "1.2":
		return Escape12
	}
	return Escape10
}

// Reader reads frames sent by clients.
type Reader struct {
	r   *bufio.Reader
	lim Limits
	// Escaping is how header values are decoded (CONNECT frames are never
	// decoded); the connection sets it once the version is negotiated.
	Escaping Escaping
}

// NewReader reads frames from r within lim.
func NewReader(r *bufio.Reader, lim Limits) *Reader {
	return &Reader{r: r, lim: lim.withDefaults()}
}

// Reset reads from r from now on, keeping the limits and the escaping: a
// connection lends its buffer back to a pool while idle and takes another
// one (or nil, while it has none) when it reads again.
func (r *Reader) Reset(br *bufio.Reader) { r.r = br }

// clientCommands are the frames a client may send.
var clientCommands = map[string]string{
	frame.CONNECT: frame.CONNECT, frame.STOMP: frame.STOMP, frame.SEND: frame.SEND,
	frame.SUBSCRIBE: frame.SUBSCRIBE, frame.UNSUBSCRIBE: frame.UNSUBSCRIBE,
	frame.ACK: frame.ACK, frame.NACK: frame.NACK, frame.BEGIN: frame.BEGIN,
	frame.COMMIT: frame.COMMIT, frame.ABORT: frame.ABORT, frame.DISCONNECT: frame.DISCONNECT,
}

// Read returns the next frame, or nil for a heart-beat (an EOL between
// frames). A malformed or oversized frame is an *Error; the reader cannot
// be used after any error.
func (r *Reader) Read() (*frame.Frame, error) {
	budget := r.lim.MaxFrameSize
	line, err := r.readLine(r.lim.MaxHeaderLength, &budget)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && budget == r.lim.MaxFrameSize {
			return nil, io.EOF // between frames
		}
		return nil, err
	}
	if len(line) == 0 {
		return nil, nil
	}
	cmd, ok := clientCommands[string(line)]
	if !ok {
		return nil, errorf(ErrInvalidCommand, "unknown command %q", truncate(line))
	}
	f := &frame.Frame{Command: cmd, Header: &frame.Header{}}
	esc := r.Escaping
	if cmd == frame.CONNECT || cmd == frame.STOMP {
		esc = Escape10
	}
	for n := 0; ; n++ {
		line, err := r.readLine(r.lim.MaxHeaderLength, &budget)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if n >= r.lim.MaxHeaders {
			return nil, errorf(ErrTooManyHeaders, "more than %d headers", r.lim.MaxHeaders)
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return nil, errorf(ErrMalformed, "header without a name and a colon: %q", truncate(line))
		}
		name, err := Unescape(line[:i], esc)
		if err != nil {
			return nil, err
		}
		value, err := Unescape(line[i+1:], esc)
		if err != nil {
			return nil, err
		}
		f.Header.Add(name, value)
	}
	if text, ok := f.Header.Contains(frame.ContentLength); ok {
		n, err := strconv.ParseUint(text, 10, 31)
		if err != nil {
			return nil, errorf(ErrMalformed, "invalid content-length %q", truncate([]byte(text)))
		}
		if int(n) >= budget { // the body and its NUL
			return nil, errorf(ErrFrameTooLarge, "content-length %d over the maximum frame size of %d bytes", n, r.lim.MaxFrameSize)
		}
		f.Body = make([]byte, n)
		if _, err := io.ReadFull(r.r, f.Body); err != nil {
			return nil, eof(err)
		}
		b, err := r.r.ReadByte()
		if err != nil {
			return nil, eof(err)
		}
		if b != 0 {
			return nil, errorf(ErrMalformed, "no NUL after a body of content-length %d", n)
		}
		return f, nil
	}
	body, err := r.readUntilNUL(budget)
	if err != nil {
		return nil, err
	}
	f.Body = body
	return f, nil
}

// readLine reads a line of at most max bytes (without its EOL) within the
// frame's budget. The slice is valid until the next read.
func (r *Reader) readLine(max int, budget *int) ([]byte, error) {
	line, err := r.r.ReadSlice('\n')
	if err == nil {
		*budget -= len(line)
		line = line[:len(line)-1]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > max {
			return nil, errorf(ErrHeaderTooLong, "line of %d bytes over the maximum of %d", len(line), max)
		}
		if *budget < 0 {
			return nil, errorf(ErrFrameTooLarge, "headers over the maximum frame size of %d bytes", r.lim.MaxFrameSize)
		}
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, eof(err)
	}
	// A line longer than the read buffer: gather it, within bounds.
	long := append([]byte(nil), line...)
	for {
		if len(long) > max+1 {
			return nil, errorf(ErrHeaderTooLong, "line over the maximum of %d bytes", max)
		}
		if len(long) > *budget {
			return nil, errorf(ErrFrameTooLarge, "headers over the maximum frame size of %d bytes", r.lim.MaxFrameSize)
		}
		more, err := r.r.ReadSlice('\n')
		long = append(long, more...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, eof(err)
		}
	}
	*budget -= len(long)
	long = long[:len(long)-1]
	if len(long) > 0 && long[len(long)-1] == '\r' {
		long = long[:len(long)-1]
	}
	if len(long) > max {
		return nil, errorf(ErrHeaderTooLong, "line of %d bytes over the maximum of %d", len(long), max)
	}
	if *budget < 0 {
		return nil, errorf(ErrFrameTooLarge, "headers over the maximum frame size of %d bytes", r.lim.MaxFrameSize)
	}
	return long, nil
}

// readUntilNUL reads a body up to its NUL, within budget bytes (NUL
// included).
func (r *Reader) readUntilNUL(budget int) ([]byte, error) {
	var body []byte
	for {
		chunk, err := r.r.ReadSlice(0)
		if len(body)+len(chunk) > budget {
			return nil, errorf(ErrFrameTooLarge, "body over the maximum frame size of %d bytes", r.lim.MaxFrameSize)
		}
		if err == nil {
			if body == nil {
				// The whole body was buffered: one copy, of its size.
				return append(make([]byte, 0, len(chunk)-1), chunk[:len(chunk)-1]...), nil
			}
			body = append(body, chunk[:len(chunk)-1]...)
			return body, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, eof(err)
		}
		body = append(body, chunk...)
	}
}

// eof turns an end of input inside a frame into io.ErrUnexpectedEOF.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// Unescape decodes a header name or value.
func Unescape(b []byte, esc Escaping) (string, error) {
	if esc == Escape10 || bytes.IndexByte(b, '\\') < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(b) {
			return "", errorf(ErrBadEscape, "header ends with a backslash")
		}
		i++
		switch b[i] {
		case 'n':
			out = append(out, '\n')
		case 'c':
			out = append(out, ':')
		case '\\':
			out = append(out, '\\')
		case 'r':
			if esc != Escape12 {
				return "", errorf(ErrBadEscape, `\r is not defined in STOMP 1.1`)
			}
			out = append(out, '\r')
		default:
			return "", errorf(ErrBadEscape, `\%c`, b[i])
		}
	}
	return string(out), nil
}
