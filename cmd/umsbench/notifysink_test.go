package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sinkBody is a webhook body carrying notification seq's stamp of run.
func sinkBody(run string, seq int64) string {
	return `{"id":"x","content":{"text":"` + string(appendStamp(nil, run, seq, time.Now())) + `"}}`
}

// The sink answers Go's HTTP client (keep-alive, Content-Length and
// chunked bodies) and counts each id once, repeats as arrivals, and
// requests of another run as stray.
func TestSinkCountsRequests(t *testing.T) {
	s, err := startSink("127.0.0.1:0", "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	url := "http://" + s.ln.Addr().String() + "/hook"
	post := func(id, body string, chunked bool) {
		t.Helper()
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("POST", url, r)
		req.Header.Set("X-UMS-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	post("a", sinkBody("r1", 1), false)
	post("b", sinkBody("r1", 2), true)
	post("a", sinkBody("r1", 1), false) // a repeat
	post("c", sinkBody("r0", 3), false) // another run's
	post("", sinkBody("r1", 4), false)  // no id
	c := s.counts()
	if c.distinct != 2 || c.arrivals != 3 || c.stray != 2 {
		t.Fatalf("distinct %d arrivals %d stray %d, want 2 3 2", c.distinct, c.arrivals, c.stray)
	}
}

// Pipelined requests written at once are all answered, in order, and a
// request that is not HTTP/1.1 gets 400 and the connection closed.
func TestSinkPipelinedAndMalformed(t *testing.T) {
	s, err := startSink("127.0.0.1:0", "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	c, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reqs strings.Builder
	for i, id := range []string{"p1", "p2", "p3"} {
		b := sinkBody("r1", int64(i))
		reqs.WriteString("POST /hook HTTP/1.1\r\nHost: x\r\nX-UMS-Id: " + id + "\r\nContent-Length: " +
			strconv.Itoa(len(b)) + "\r\n\r\n" + b)
	}
	reqs.WriteString("GARBAGE\r\n\r\n")
	if _, err := c.Write([]byte(reqs.String())); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for i, want := range []int{200, 200, 200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("answer %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed after a malformed request: %v", err)
	}
	if got := s.distinct(); got != 3 {
		t.Fatalf("%d distinct, want 3", got)
	}
}
