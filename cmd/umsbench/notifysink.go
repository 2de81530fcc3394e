package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A notification's content text carries its stamp, which the webhook body
// repeats and the sink reads back without decoding the JSON:
//
//	umsbench <run> <seq> <submission time, Unix nanoseconds>
//
// The run (random per run) tells this run's notifications from any an
// earlier run left queued in the broker.
const stampPrefix = "umsbench "

// appendStamp appends the stamp of notification seq submitted at sent.
func appendStamp(b []byte, run string, seq int64, sent time.Time) []byte {
	b = append(b, stampPrefix...)
	b = append(b, run...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, sent.UnixNano(), 10)
}

// readStamp finds the stamp of run in a webhook body and returns the
// submission time it carries.
func readStamp(body []byte, run string) (time.Time, bool) {
	i := bytes.Index(body, []byte(`"`+stampPrefix+run+" "))
	if i < 0 {
		return time.Time{}, false
	}
	rest := body[i+1+len(stampPrefix)+len(run)+1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return time.Time{}, false
	}
	sp := bytes.IndexByte(rest[:end], ' ')
	if sp < 0 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(rest[sp+1:end]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// sink is the webhook endpoint of a notify run: a local HTTP/1.1 server
// that answers 200 (after delay, when set) and counts what arrives by the
// X-UMS-Id header. Requests without this run's stamp are counted as stray
// and otherwise ignored.
//
// It speaks only the HTTP/1.1 a webhook sender needs (a request line,
// headers, a body of Content-Length bytes or chunked, keep-alive and
// pipelining) and reads and writes each connection in one goroutine with
// no per-request allocation beyond the id, so that its own cost stays
// small next to the broker's: net/http spent about 37 µs of CPU per
// request here, as much as the broker spends sending it.
type sink struct {
	run   string
	delay time.Duration
	ln    net.Listener

	mu       sync.Mutex
	ids      map[string]int32
	arrivals int64 // this run's requests, repeats included
	stray    int64
	last     time.Time // first arrival of the latest new id
	lat      histogram // submission → first arrival, per id
	changed  chan struct{}
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// startSink listens on addr (host:port) and serves until close.
func startSink(addr, run string, delay time.Duration) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sink{run: run, delay: delay, ln: ln, ids: map[string]int32{}, changed: make(chan struct{}, 1),
		conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// Answers the sink writes.
const (
	sinkOK       = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	sinkBad      = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	sinkMaxBody  = 8 << 20
	sinkMaxLines = 100
)

// serve reads requests from c and answers each, until c closes or sends
// something that is not HTTP/1.1. Answers to pipelined requests go out
// together once no request is left in the read buffer.
func (s *sink) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	br := bufio.NewReaderSize(c, 16<<10)
	bw := bufio.NewWriterSize(c, 4<<10)
	var body []byte
	for {
		req, err := readSinkRequest(br, body[:0])
		if err != nil {
			if errors.Is(err, errSinkBad) {
				bw.WriteString(sinkBad)
				bw.Flush()
			}
			return
		}
		body = req.body
		s.arrive(req.id, req.body)
		if s.delay > 0 {
			time.Sleep(s.delay)
		}
		bw.WriteString(sinkOK)
		if br.Buffered() == 0 || req.close {
			if bw.Flush() != nil || req.close {
				return
			}
		}
	}
}

// arrive counts one request.
func (s *sink) arrive(id, body []byte) {
	now := time.Now()
	sent, ours := readStamp(body, s.run)
	s.mu.Lock()
	if !ours || len(id) == 0 {
		s.stray++
	} else {
		s.arrivals++
		n := s.ids[string(id)] + 1 // no allocation for an id seen before
		if n == 1 {
			s.ids[string(id)] = n
			s.lat.record(now.Sub(sent))
			s.last = now
		} else {
			s.ids[string(id)] = n
		}
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// sinkRequest is what the sink keeps of a request.
type sinkRequest struct {
	id    []byte // X-UMS-Id
	body  []byte
	close bool // Connection: close
}

var errSinkBad = errors.New("malformed request")

// readSinkRequest reads one request from br, its body into buf.
func readSinkRequest(br *bufio.Reader, buf []byte) (sinkRequest, error) {
	var req sinkRequest
	line, err := br.ReadSlice('\n')
	if err != nil {
		return req, err // closed between requests, or a line too long
	}
	if !bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte(" HTTP/1.1")) {
		return req, errSinkBad
	}
	length, chunked := -1, false
	for i := 0; ; i++ {
		if i == sinkMaxLines {
			return req, errSinkBad
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return req, errSinkBad
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return req, errSinkBad
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > sinkMaxBody {
				return req, errSinkBad
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("X-UMS-Id")):
			req.id = append(req.id[:0], value...) // the line is overwritten by the next read
		case bytes.EqualFold(name, []byte("Connection")):
			req.close = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		req.body, err = readChunked(br, buf)
	case length >= 0:
		req.body = slices.Grow(buf, length)[:length]
		_, err = io.ReadFull(br, req.body)
	default:
		req.body = buf // no body
	}
	if err != nil {
		return req, errSinkBad
	}
	return req, nil
}

// readChunked reads a chunked body (no trailers expected, any skipped).
func readChunked(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil || len(buf)+int(n) > sinkMaxBody {
			return nil, errSinkBad
		}
		if n == 0 {
			for { // trailers, then the empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return nil, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return buf, nil
				}
			}
		}
		start := len(buf)
		buf = slices.Grow(buf, int(n))[:start+int(n)]
		if _, err := io.ReadFull(br, buf[start:]); err != nil {
			return nil, err
		}
		if _, err := br.Discard(2); err != nil { // CRLF after the chunk
			return nil, err
		}
	}
}

// distinct returns how many different notifications arrived.
func (s *sink) distinct() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.ids))
}

// waitFor waits until n different notifications arrived, or none arrived
// for idle; it reports whether all n came.
func (s *sink) waitFor(n int64, idle time.Duration) bool {
	t := time.NewTimer(idle)
	defer t.Stop()
	last := s.distinct()
	for last < n {
		select {
		case <-s.changed:
			if d := s.distinct(); d != last {
				last = d
				t.Reset(idle)
			}
		case <-t.C:
			return false
		}
	}
	return true
}

// sinkCounts is what the sink saw.
type sinkCounts struct {
	arrivals, distinct, stray int64
	last                      time.Time
	lat                       histogram
}

func (s *sink) counts() sinkCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkCounts{s.arrivals, int64(len(s.ids)), s.stray, s.last, s.lat}
}

// close stops listening and closes every connection.
func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
