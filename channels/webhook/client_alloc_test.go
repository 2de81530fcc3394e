//go:build !race

package webhook

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
)

// The lean client's allocations per send. The server is a raw one that
// allocates nothing per request, so that only the client's count.
func TestLeanAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	to := rawServer(t, func(conn net.Conn, br *bufio.Reader) {
		answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		for {
			// Headers up to the empty line, then the body.
			length := 0
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
					for _, c := range bytes.TrimSpace(v) {
						length = length*10 + int(c-'0')
					}
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := br.Discard(length); err != nil {
				return
			}
			if _, err := conn.Write(answer); err != nil {
				return
			}
		}
	})
	s := leanSender(t, nil)
	m := leanMessage(to, "n-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	})
	// Parsing the URL (1), and a cancellable context's AfterFunc (2).
	if allocs > 3 {
		t.Errorf("%.0f allocations per send", allocs)
	}
}
