package auth

import "net"

// Loopback reports whether a client at a connects from this machine: a
// loopback IP address, or a Unix socket or pipe. Users with LoopbackOnly
// (guest by default) may log in only from there.
func Loopback(a net.Addr) bool {
	if a == nil {
		return false
	}
	switch x := a.(type) {
	case *net.TCPAddr:
		return x.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	if a.Network() == "unix" || a.Network() == "pipe" {
		return true
	}
	return LoopbackHostPort(a.String())
}

// LoopbackHostPort is Loopback for an address written "host:port" (as
// http.Request.RemoteAddr).
func LoopbackHostPort(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
