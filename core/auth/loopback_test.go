package auth

import (
	"net"
	"testing"
)

type otherAddr string

func (a otherAddr) Network() string { return "ws" }
func (a otherAddr) String() string  { return string(a) }

func TestLoopback(t *testing.T) {
	for _, c := range []struct {
		a    net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/ums.sock", Net: "unix"}, true},
		{otherAddr("127.0.0.1:5000"), true}, // a WebSocket's peer
		{otherAddr("192.0.2.7:5000"), false},
		{otherAddr("not an address"), false},
		{nil, false},
	} {
		if got := Loopback(c.a); got != c.want {
			t.Errorf("Loopback(%v) = %v, want %v", c.a, got, c.want)
		}
	}
	for hp, want := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "203.0.113.1:80": false, "localhost:80": false, "": false} {
		if got := LoopbackHostPort(hp); got != want {
			t.Errorf("LoopbackHostPort(%q) = %v, want %v", hp, got, want)
		}
	}
}
