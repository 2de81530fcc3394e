package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readAll reads a response from data the way exchange does, with a small
// read buffer and header limit so that long lines and limits are reached
// by short inputs. It returns the response, the answer and whether the
// body was read to its end.
func readAll(data []byte, answerSize, drain int) (r response, answer []byte, ended bool, err error) {
	lr := lineReader{br: bufio.NewReaderSize(bytes.NewReader(data), 16)}
	if err = lr.readResponse(&r, 1024); err != nil {
		return response{}, nil, false, err
	}
	buf := make([]byte, answerSize)
	n, total := 0, 0
	limit := answerSize + drain
	for total < limit {
		b, err := lr.next(&r, limit-total)
		if len(b) > limit-total {
			panic("next returned more than asked")
		}
		n += copy(buf[n:], b)
		total += len(b)
		if err == io.EOF {
			return r, buf[:n], true, nil
		}
		if err != nil {
			return r, buf[:n], false, err
		}
	}
	_, err = lr.next(&r, 0)
	if err == io.EOF {
		return r, buf[:n], true, nil
	}
	return r, buf[:n], false, err
}

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name, in string
		code     int
		status   string
		body     string
		keep     bool
		err      string // in the error of the head or the body
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: r-1\r\n\r\nhello", code: 200, status: "200 OK", body: "hello", keep: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nA: b\r\n\r\n", code: 200, status: "200 OK", body: "hello!", keep: true},
		{name: "chunked wins", in: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", code: 200, status: "200 OK", body: "hi", keep: true},
		{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", code: 200, status: "200 OK"},
		{name: "until close", in: "HTTP/1.1 500 Oops\r\n\r\nall of it", code: 500, status: "500 Oops", body: "all of it"},
		{name: "1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", code: 200, status: "200 OK", body: "x"},
		{name: "1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", code: 200, status: "200 OK", body: "x", keep: true},
		{name: "1.0 has no codings", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi", code: 200, status: "200 OK", body: "2\r\nhi"},
		{name: "204 ignores length", in: "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", code: 204, status: "204 No Content", keep: true},
		{name: "304", in: "HTTP/1.1 304 Not Modified\r\n\r\n", code: 304, status: "304 Not Modified", keep: true},
		{name: "101", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nxyz", code: 101, status: "101 Switching Protocols"},
		{name: "interim", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", code: 202, status: "202 Accepted", keep: true},
		{name: "bad version", in: "HTTP/1.2 200 OK\r\n\r\n", err: "malformed"},
		{name: "no code", in: "HTTP/1.1 \r\n\r\n", err: "malformed"},
		{name: "long code", in: "HTTP/1.1 2000 OK\r\n\r\n", err: "malformed"},
		{name: "code 099", in: "HTTP/1.1 099 X\r\n\r\n", err: "malformed"},
		{name: "space before colon", in: "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", err: "malformed"},
		{name: "signed length", in: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", err: "Content-Length"},
		{name: "huge length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nx", err: "Content-Length"},
		{name: "two codings", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: "Transfer-Encoding"},
		{name: "head too large", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: b\r\n", 200) + "\r\n", err: "too large"},
		{name: "line too large", in: "HTTP/1.1 200 OK\r\nA: " + strings.Repeat("b", 2000) + "\r\n\r\n", err: "too large"},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", code: 200, status: "200 OK", err: "chunked"},
		{name: "negative chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", code: 200, status: "200 OK", err: "chunked"},
		{name: "huge chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", code: 200, status: "200 OK", err: "chunked"},
		{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhixx0\r\n\r\n", code: 200, status: "200 OK", body: "hi", err: "chunked"},
		{name: "cut body", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", code: 200, status: "200 OK", body: "hel", err: "unexpected EOF"},
		{name: "cut trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n", code: 200, status: "200 OK", err: "unexpected EOF"},
		{name: "empty", in: "", err: "EOF"},
	}
	for _, c := range cases {
		r, body, ended, err := readAll([]byte(c.in), 64, 64)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
			}
		} else if err != nil || !ended {
			t.Errorf("%s: ended %v, %v", c.name, ended, err)
		}
		if r.code != c.code || r.status != c.status || string(body) != c.body || (c.err == "" && r.keepAlive != c.keep) {
			t.Errorf("%s: %d %q body %q keep %v, want %d %q %q %v", c.name, r.code, r.status, body, r.keepAlive, c.code, c.status, c.body, c.keep)
		}
	}
}

func TestReadResponseHeaders(t *testing.T) {
	in := "HTTP/1.1 429 Too Many Requests\r\n" +
		"retry-after: 7\r\nRetry-After: 9\r\nLOCATION: /x\r\n\tmore\r\nx-request-id:  r-1 \r\nContent-Length: 0\r\n\r\n"
	r, _, _, err := readAll([]byte(in), 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r.retryAfter != "7" || r.location != "/x more" || r.requestID != "r-1" {
		t.Fatalf("Retry-After %q, Location %q, X-Request-Id %q", r.retryAfter, r.location, r.requestID)
	}
}

// A body longer than the answer and the drain is not read to its end.
func TestReadResponseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		room int // drain that reads it to its end
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n" + strings.Repeat("x", 17), 9},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n" + strings.Repeat("x", 17) + "\r\n0\r\n\r\n", 9},
		// Its end is seen only by reading past it.
		{"HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 17), 10},
	} {
		if _, body, ended, err := readAll([]byte(c.in), 8, 8); ended || err != nil || len(body) != 8 {
			t.Errorf("%.40q: ended %v, %v, body %q", c.in, ended, err, body)
		}
		if _, _, ended, err := readAll([]byte(c.in), 8, c.room); !ended || err != nil {
			t.Errorf("%.40q with a drain of %d: ended %v, %v", c.in, c.room, ended, err)
		}
	}
}

func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 3\r\n\r\nbusy",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 301 Moved Permanently\r\nLocation: /a\r\n b\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\nX-Request-Id: r\nContent-Length: 1\n\nx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: " + strings.Repeat("b", 100) + "\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, body, ended, err := readAll(data, 32, 32)
		if len(body) > 32 {
			t.Fatalf("answer of %d bytes", len(body))
		}
		if r.code == 0 {
			if err == nil {
				t.Fatal("no status and no error")
			}
			return
		}
		if r.code < 100 || r.code > 999 || r.status == "" {
			t.Fatalf("status %d %q", r.code, r.status)
		}
		if !ended || err != nil || r.code < 200 {
			return
		}
		// What was read completely, net/http reads alike.
		resp, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if herr != nil || resp.StatusCode != r.code {
			return // net/http is stricter or more lenient in places
		}
		want, berr := io.ReadAll(io.LimitReader(resp.Body, 32))
		if berr == nil && !bytes.HasPrefix(want, body) && !errors.Is(berr, io.ErrUnexpectedEOF) {
			t.Fatalf("body %q, net/http reads %q", body, want)
		}
	})
}
