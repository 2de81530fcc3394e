//go:build linux

package netpark

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestSockWritev writes many buffers of odd sizes, more than a socket
// holds, and reads them back whole and in order.
func TestSockWritev(t *testing.T) {
	a, b := pair(t)
	s, ok := NewSock(a)
	if !ok {
		t.Fatal("a TCP connection has no Sock")
	}
	var want bytes.Buffer
	var bufs [][]byte
	for i := range 3000 { // more than maxIovecs
		p := bytes.Repeat([]byte{byte(i)}, 1+i%700)
		bufs = append(bufs, p)
		want.Write(p)
	}
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	n, err := s.Writev(bufs)
	if err != nil || n != int64(want.Len()) {
		t.Fatalf("Writev: %d, %v; want %d", n, err, want.Len())
	}
	a.CloseWrite()
	if all := <-got; !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written in order", len(all), want.Len())
	}
}

// TestSockTryWritev fills a socket nobody reads: TryWritev returns at once
// with what is left, and Writev then finishes it once the peer reads.
func TestSockTryWritev(t *testing.T) {
	a, b := pair(t)
	s, _ := NewSock(a)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i / 1000)
	}
	var bufs [][]byte
	for range 64 {
		bufs = append(bufs, chunk)
	}
	done := make(chan struct{})
	var rest [][]byte
	var err error
	go func() {
		rest, err = s.TryWritev(bufs)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("TryWritev waited for a peer that does not read")
	}
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, p := range rest {
		left += len(p)
	}
	if left == 0 || left == 64<<20 {
		t.Fatalf("%d of %d bytes left; want a part written", left, 64<<20)
	}
	got := make(chan int64)
	go func() {
		var n int64
		buf := make([]byte, 1<<16)
		for pos := int64(0); ; {
			m, err := b.Read(buf)
			for i := range m {
				if buf[i] != chunk[(pos+int64(i))%int64(len(chunk))] {
					t.Errorf("byte %d differs", pos+int64(i))
					got <- n
					return
				}
			}
			pos += int64(m)
			n += int64(m)
			if err != nil {
				got <- n
				return
			}
		}
	}()
	if _, err := s.Writev(rest); err != nil {
		t.Fatal(err)
	}
	a.CloseWrite()
	if n := <-got; n != 64<<20 {
		t.Fatalf("peer read %d bytes, want %d", n, 64<<20)
	}
}

// TestSockRead reads what the peer wrote, honours the read deadline and
// reports the end of the stream.
func TestSockRead(t *testing.T) {
	a, b := pair(t)
	s, _ := NewSock(a)
	b.Write([]byte("hello"))
	buf := make([]byte, 16)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	b.Close()
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want EOF", err)
	}
}

func TestSockTryWrite(t *testing.T) {
	a, b := pair(t)
	s, _ := NewSock(a)
	if n, err := s.TryWrite([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("TryWrite to an empty socket = %d, %v; want 5, nil", n, err)
	}
	big := make([]byte, 64<<20)
	n, err := s.TryWrite(big)
	if err != nil || n == 0 || n == len(big) {
		t.Fatalf("TryWrite of 64 MiB to a peer that does not read = %d, %v; want a part written", n, err)
	}
	if n, err := s.TryWrite(big); n != 0 || err != nil {
		t.Fatalf("TryWrite to a full socket = %d, %v; want 0, nil", n, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

// TestBorrowedReadWrite reads and writes through the package's Read and
// Write, which borrow a Sock's state per call: several connections at
// once, a write larger than the socket holds that waits for the peer, the
// write deadline, and the end of the stream.
func TestBorrowedReadWrite(t *testing.T) {
	a, b := pair(t)
	ra, _ := RawConn(a)
	rb, _ := RawConn(b)
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i / 4093)
	}
	got := make(chan []byte)
	go func() {
		var all []byte
		buf := make([]byte, 64<<10)
		for {
			n, err := Read(rb, buf)
			all = append(all, buf[:n]...)
			if err != nil {
				if err != io.EOF {
					t.Errorf("Read: %v", err)
				}
				got <- all
				return
			}
		}
	}()
	if n, err := Write(ra, big); n != len(big) || err != nil {
		t.Fatalf("Write of 8 MiB = %d, %v", n, err)
	}
	a.CloseWrite()
	if all := <-got; !bytes.Equal(all, big) {
		t.Fatalf("peer read %d bytes, not the %d written in order", len(all), len(big))
	}

	// Nobody reads c's peer: a write that does not fit ends at the deadline.
	c, _ := pair(t)
	rc, _ := RawConn(c)
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := Write(rc, make([]byte, 64<<20)); !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 {
		t.Fatalf("Write past the deadline = %d, %v; want part written and a deadline error", n, err)
	}
}
