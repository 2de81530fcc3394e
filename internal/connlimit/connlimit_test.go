package connlimit

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestListenerLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(inner, 1).(*Listener)
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial()
	first := next()
	if err := Refused(first); err != nil {
		t.Fatalf("first connection refused: %v", err)
	}
	var refused []net.Conn
	for range Spare {
		dial()
		c := next()
		var le *Error
		if err := Refused(c); !errors.As(err, &le) || le.Max != 1 {
			t.Fatalf("connection beyond the limit: Refused = %v", err)
		}
		refused = append(refused, c)
	}
	// No spare place left: the next client's socket is closed at once.
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection beyond the spare places: read err = %v, want EOF", err)
	}
	for _, c := range refused {
		c.Close()
	}
	first.Close()
	first.Close() // a second Close frees nothing more
	if live, refusing := l.Open(); live != 0 || refusing != 0 {
		t.Fatalf("after closing all: live %d, refusing %d", live, refusing)
	}
	dial()
	if err := Refused(next()); err != nil {
		t.Fatalf("connection after the others left refused: %v", err)
	}
}
