package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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

// sink is the webhook endpoint of a notify run: a local HTTP server that
// answers 200 (after delay, when set) and counts what arrives by the
// X-UMS-Id header. Requests without this run's stamp are counted as stray
// and otherwise ignored.
type sink struct {
	run   string
	delay time.Duration
	srv   *http.Server
	ln    net.Listener

	mu       sync.Mutex
	ids      map[string]int32
	arrivals int64 // this run's requests, repeats included
	stray    int64
	last     time.Time // first arrival of the latest new id
	lat      histogram // submission → first arrival, per id
	changed  chan struct{}
}

// startSink listens on addr (host:port) and serves until close.
func startSink(addr, run string, delay time.Duration) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sink{run: run, delay: delay, ln: ln, ids: map[string]int32{}, changed: make(chan struct{}, 1)}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sent, ours := readStamp(body, s.run)
	id := r.Header.Get("X-UMS-Id")
	s.mu.Lock()
	if !ours || id == "" {
		s.stray++
	} else {
		s.arrivals++
		s.ids[id]++
		if s.ids[id] == 1 {
			s.lat.record(now.Sub(sent))
			s.last = now
		}
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	w.WriteHeader(http.StatusOK)
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

func (s *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}
