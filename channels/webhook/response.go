package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// The response reader of the lean client (client.go). It reads one
// HTTP/1.x response from a bufio.Reader without building an http.Header:
// only the fields deliver and the connection's reuse need are kept.
//
// A body is framed as RFC 9112 section 6.3 says: none for 1xx, 204 and
// 304; chunked when Transfer-Encoding is chunked (the only transfer coding
// accepted, as net/http does); Content-Length; otherwise it runs until the
// server closes the connection.

// maxInterim bounds the 1xx responses skipped before the final one, as
// net/http does (it allows 5).
const maxInterim = 5

// maxChunkLine bounds a chunk-size line (size and extensions).
const maxChunkLine = 4 << 10

var (
	errHeaderTooLarge = errors.New("webhook: response header too large")
	errTooManyInterim = errors.New("webhook: too many 1xx informational responses")
	errBadChunk       = errors.New("webhook: malformed chunked encoding")
)

// protocolError is a response that is not HTTP/1.x.
type protocolError struct{ what, text string }

func (e *protocolError) Error() string {
	return fmt.Sprintf("webhook: malformed HTTP response: %s %q", e.what, e.text)
}

func malformed(what string, text []byte) error {
	if len(text) > 64 {
		text = text[:64]
	}
	return &protocolError{what, string(text)}
}

// body framing
const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyUntilClose
)

// response is what the lean client keeps of a response.
type response struct {
	code   int
	status string // "200 OK", as http.Response.Status has it
	// The values of the headers deliver reads, the first of each.
	requestID, location, retryAfter string
	// keepAlive reports whether the connection may carry another request
	// once the body has been read.
	keepAlive bool

	framing int
	left    int64 // bytes left of a length body or of the current chunk
	// chunk state: afterData is set when a chunk's data has been read and
	// its CRLF not yet.
	afterData bool
	done      bool // the body has been read to its end
	budget    int  // header bytes the trailers may still take
}

// lineReader reads lines of a response from br; lines longer than br's
// buffer are gathered in long.
type lineReader struct {
	br   *bufio.Reader
	long []byte
}

// line returns the next line without its line ending, counting its length
// against *budget. The slice is valid until the next read.
func (lr *lineReader) line(budget *int) ([]byte, error) {
	line, err := lr.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		lr.long = append(lr.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(lr.long) > *budget {
				return nil, errHeaderTooLarge
			}
			line, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, line...)
		}
		line = lr.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *budget -= len(line); *budget < 0 {
		return nil, errHeaderTooLarge
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readResponse reads the status line and headers of the final response
// into r, skipping 1xx interim responses; maxHeader bounds the bytes of
// each response's head. The body is left to r.next.
func (lr *lineReader) readResponse(r *response, maxHeader int) error {
	for interim := 0; ; interim++ {
		if interim > maxInterim {
			return errTooManyInterim
		}
		*r = response{}
		budget := maxHeader
		if err := lr.readHead(r, &budget); err != nil {
			return err
		}
		if r.code >= 200 || r.code == http.StatusSwitchingProtocols {
			r.budget = budget
			break
		}
	}
	switch {
	case r.code < 200, r.code == http.StatusNoContent, r.code == http.StatusNotModified:
		// 101 hands the connection over to another protocol.
		r.keepAlive = r.keepAlive && r.code != http.StatusSwitchingProtocols
		r.framing, r.done = bodyNone, true
	case r.framing == bodyChunked, r.framing == bodyLength:
		r.done = r.framing == bodyLength && r.left == 0
	default:
		r.framing = bodyUntilClose
		r.keepAlive = false
	}
	return nil
}

// readHead reads one response head: status line and header fields.
func (lr *lineReader) readHead(r *response, budget *int) error {
	line, err := lr.line(budget)
	if err != nil {
		return err
	}
	var minor int
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
		minor = 1
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		minor = 0
	default:
		return malformed("status line", line)
	}
	rest := bytes.TrimLeft(line[len("HTTP/1.x "):], " ")
	if len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return malformed("status line", line)
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return malformed("status code", line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return malformed("status code", line)
	}
	r.code = code
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Interim: only its end matters.
		for {
			line, err := lr.line(budget)
			if err != nil {
				return err
			}
			if len(line) == 0 {
				return nil
			}
		}
	}
	r.status = statusText(code, rest)

	// HTTP/1.1 keeps the connection unless told to close it, HTTP/1.0
	// only when told to keep it.
	keep, closing := minor == 1, false
	var lengths, codings int
	var last *string // the kept field a continuation line extends
	for {
		line, err := lr.line(budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: a continuation of the previous field's value.
			if last == nil {
				continue
			}
			if v := bytes.Trim(line, " \t"); len(v) > 0 {
				*last += " " + string(v)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return malformed("header line", line)
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		last = nil
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseLength(value)
			if !ok || (lengths > 0 && n != r.left) {
				return malformed("Content-Length", value)
			}
			lengths++
			r.left = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if codings++; codings > 1 || !bytes.EqualFold(value, []byte("chunked")) {
				return malformed("Transfer-Encoding", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				if bytes.EqualFold(tok, []byte("close")) {
					closing = true
				} else if bytes.EqualFold(tok, []byte("keep-alive")) {
					keep = true
				}
			}
		case bytes.EqualFold(name, []byte("Retry-After")):
			last = keepFirst(&r.retryAfter, value)
		case bytes.EqualFold(name, []byte("Location")):
			last = keepFirst(&r.location, value)
		case bytes.EqualFold(name, []byte("X-Request-Id")):
			last = keepFirst(&r.requestID, value)
		}
	}
	r.keepAlive = keep && !closing
	if codings > 0 && minor == 0 {
		// HTTP/1.0 has no transfer codings: the framing is faulty (RFC
		// 9112 section 6.1), read as net/http reads it, and the
		// connection not trusted again.
		codings, r.keepAlive = 0, false
	}
	switch {
	case codings > 0:
		// Chunked wins over a length (RFC 9112 section 6.3).
		r.framing, r.left = bodyChunked, 0
	case lengths > 0:
		r.framing = bodyLength
	}
	return nil
}

// keepFirst stores value in *dst unless a value is there already, and
// returns dst for continuation lines when it stored it.
func keepFirst(dst *string, value []byte) *string {
	if *dst != "" {
		return nil
	}
	*dst = string(value)
	return dst
}

// statusTexts holds "200 OK" and the like, so the usual status lines cost
// no allocation.
var statusTexts = func() (t [600]string) {
	for code := range t {
		if text := http.StatusText(code); text != "" {
			t[code] = strconv.Itoa(code) + " " + text
		}
	}
	return t
}()

// statusText returns the status (code and reason) from rest, the status
// line after the protocol version.
func statusText(code int, rest []byte) string {
	if code < len(statusTexts) && string(rest) == statusTexts[code] {
		return statusTexts[code]
	}
	return string(rest)
}

// validFieldName reports whether b is a token (RFC 9110 section 5.6.2).
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// next returns up to max bytes of the body from the reader's buffer,
// valid until the next read, or io.EOF at the body's end. With max 0 it
// reads no data but still reads a chunk's framing, so it reports whether
// the body ends here; a body that runs until the connection closes never
// says so before it has.
func (lr *lineReader) next(r *response, max int) ([]byte, error) {
	if r.done {
		return nil, io.EOF
	}
	br := lr.br
	switch r.framing {
	case bodyLength:
		if r.left == 0 {
			r.done = true
			return nil, io.EOF
		}
	case bodyChunked:
		if r.left == 0 {
			if err := lr.nextChunk(r); err != nil {
				return nil, err
			}
			if r.done {
				return nil, io.EOF
			}
		}
	case bodyUntilClose:
		if max == 0 {
			return nil, nil
		}
		if _, err := br.Peek(1); err == io.EOF {
			r.done = true
			return nil, io.EOF
		} else if err != nil {
			return nil, err
		}
		b, _ := br.Peek(min(max, br.Buffered()))
		br.Discard(len(b))
		return b, nil
	default:
		return nil, io.EOF
	}
	if max == 0 {
		return nil, nil
	}
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := min(int64(max), int64(br.Buffered()), r.left)
	b, _ := br.Peek(int(n))
	br.Discard(len(b))
	r.left -= n
	r.afterData = r.framing == bodyChunked && r.left == 0
	return b, nil
}

// nextChunk reads the CRLF ending the previous chunk's data, the next
// chunk-size line, and for the last chunk the trailer section.
func (lr *lineReader) nextChunk(r *response) error {
	if r.afterData {
		var crlf [2]byte
		if _, err := io.ReadFull(lr.br, crlf[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if crlf != [2]byte{'\r', '\n'} {
			return errBadChunk
		}
		r.afterData = false
	}
	budget := maxChunkLine
	line, err := lr.line(&budget)
	if err == errHeaderTooLarge {
		return errBadChunk
	}
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return errBadChunk
	}
	var size int64
	for _, c := range line {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return errBadChunk
		}
		size = size<<4 | int64(c)
	}
	if size > 0 {
		r.left = size
		return nil
	}
	// The last chunk: trailer fields until an empty line, counted against
	// what the head left of the header limit.
	for {
		line, err := lr.line(&r.budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			r.done = true
			return nil
		}
	}
}
