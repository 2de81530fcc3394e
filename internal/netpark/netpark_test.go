//go:build linux

package netpark

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// woken returns a wake function and a channel that counts its runs.
func woken() (func(), chan struct{}) {
	ch := make(chan struct{}, 10)
	return func() { ch <- struct{}{} }, ch
}

func expectWake(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake")
	}
}

func expectNoWake(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("unexpected wake")
	case <-time.After(50 * time.Millisecond):
	}
}

// A parked socket wakes once when bytes arrive (also bytes that arrived
// before it parked), and can park again.
func TestWakeOnRead(t *testing.T) {
	p := newPoller(t)
	client, server := pair(t)
	rc := rawConn(t, server)
	var h Handle
	wake, ch := woken()
	if err := p.Park(&h, rc, wake); err != nil {
		t.Fatal(err)
	}
	if p.Parked() != 1 {
		t.Fatalf("parked %d", p.Parked())
	}
	expectNoWake(t, ch)
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectWake(t, ch)
	expectNoWake(t, ch) // one-shot, though the byte is still unread
	if p.Parked() != 0 || p.Cancel(&h) {
		t.Fatal("still parked after the wake")
	}
	// The unread byte wakes a new parking at once (level-triggered).
	if err := p.Park(&h, rc, wake); err != nil {
		t.Fatal(err)
	}
	expectWake(t, ch)
	buf := make([]byte, 1)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	// A hang-up wakes too.
	if err := p.Park(&h, rc, wake); err != nil {
		t.Fatal(err)
	}
	client.Close()
	expectWake(t, ch)
}

// Cancel wins over later bytes, a closed socket can be parked no more,
// and a descriptor number reused after a close is a new registration.
func TestCancelAndClose(t *testing.T) {
	p := newPoller(t)
	client, server := pair(t)
	var h Handle
	wake, ch := woken()
	if err := p.Park(&h, rawConn(t, server), wake); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(&h, rawConn(t, server), wake); err == nil {
		t.Fatal("parked twice")
	}
	if !p.Cancel(&h) {
		t.Fatal("cancel lost")
	}
	if p.Cancel(&h) {
		t.Fatal("cancelled twice")
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectNoWake(t, ch)
	rc := rawConn(t, server)
	server.Close()
	if err := p.Park(&h, rc, wake); err == nil {
		t.Fatal("parked a closed socket")
	}
	if p.Parked() != 0 {
		t.Fatalf("parked %d", p.Parked())
	}

	// Many sockets parked, closed behind the poller's back after their
	// cancel, and new ones (likely on the same numbers) parked: only the
	// new ones wake.
	var hs [50]Handle
	chs := make([]chan struct{}, len(hs))
	clients := make([]*net.TCPConn, len(hs))
	for i := range hs {
		c, s := pair(t)
		w, ch := woken()
		chs[i], clients[i] = ch, c
		if err := p.Park(&hs[i], rawConn(t, s), w); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if !p.Cancel(&hs[i]) {
				t.Fatal("cancel lost")
			}
			s.Close()
			c.Close()
		}
	}
	for i := range hs {
		if i%2 == 1 {
			if _, err := clients[i].Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			expectWake(t, chs[i])
		}
	}
	for i := range hs {
		if i%2 == 0 {
			expectNoWake(t, chs[i])
		}
	}
}

// Close stops the loop; Park fails after it.
func TestPollerClose(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, server := pair(t)
	var h Handle
	if err := p.Park(&h, rawConn(t, server), func() {}); err != ErrClosed {
		t.Fatalf("park after close: %v", err)
	}
}
