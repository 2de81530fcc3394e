package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrDestinationRefused is wrapped by the errors of ValidateURL and of the
// dial-time guard when a destination is a non-public address.
var ErrDestinationRefused = errors.New("destination refused")

// blockedNet is an address range webhooks may not reach unless private
// destinations are allowed.
type blockedNet struct {
	prefix netip.Prefix
	reason string
}

var blockedNets = []blockedNet{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach the
// IPv4 address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// refusedReason says why ip is not a public destination, or "" if it is.
func refusedReason(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		if r := refusedReason(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return r + " (through NAT64)"
		}
		return ""
	}
	for _, n := range blockedNets {
		if n.prefix.Contains(ip) {
			return n.reason
		}
	}
	return ""
}

// ValidateURL checks a webhook URL when a notification is submitted: it
// must be absolute, with scheme https (or http when allowHTTP) and a host;
// unless allowPrivate, the host may not be "localhost" (or a name under
// it) nor a literal IP address that is loopback, private, link-local,
// carrier-grade NAT, unspecified, multicast or reserved. Names are not
// resolved here: the sender checks every address it connects to, so a
// name that resolves to such an address is refused when sending.
func ValidateURL(raw string, allowHTTP, allowPrivate bool) error {
	_, err := parseURL(raw, allowHTTP, allowPrivate)
	return err
}

// parseURL is ValidateURL that returns the parsed URL.
func parseURL(raw string, allowHTTP, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("webhook URL: %w", err)
	}
	return u, validURL(raw, u, allowHTTP, allowPrivate)
}

// validURL checks u, parsed from raw, as ValidateURL says.
func validURL(raw string, u *url.URL, allowHTTP, allowPrivate bool) error {
	if !u.IsAbs() {
		return fmt.Errorf("webhook URL %q is not absolute", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("webhook URL %q: scheme http is not allowed, use https", raw)
		}
	default:
		return fmt.Errorf("webhook URL %q: scheme %q is not allowed", raw, u.Scheme)
	}
	if u.Opaque != "" {
		return fmt.Errorf("webhook URL %q has no host", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("webhook URL %q has no host", raw)
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if r := refusedReason(ip); r != "" {
			return fmt.Errorf("webhook URL %q: %w: %s address %s", raw, ErrDestinationRefused, r, ip)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("webhook URL %q: %w: loopback host name %s", raw, ErrDestinationRefused, host)
	}
	// Some resolvers read "127.1", "0x7f.1" or "2130706433" as IPv4
	// addresses; no top-level domain is numeric, so such hosts are never
	// public names.
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; last != "" && (strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x")) {
		return fmt.Errorf("webhook URL %q: %w: %s is a numeric host that is not a canonical IP address", raw, ErrDestinationRefused, host)
	}
	return nil
}

// refusedDialError is the error of the dial-time guard.
type refusedDialError struct {
	addr   netip.Addr
	reason string
}

func (e *refusedDialError) Error() string {
	return fmt.Sprintf("%v: %s address %s", ErrDestinationRefused, e.reason, e.addr)
}

func (e *refusedDialError) Unwrap() error { return ErrDestinationRefused }

// dialControl is the net.Dialer Control function of the guard: it runs
// after name resolution, for every address the dialer tries, before the
// connection is made.
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &refusedDialError{reason: "unparsable (" + address + ")"}
	}
	if r := refusedReason(ap.Addr()); r != "" {
		return &refusedDialError{addr: ap.Addr(), reason: r}
	}
	return nil
}

// guardedDialer returns a dialer that refuses non-public addresses.
func guardedDialer() *net.Dialer {
	return &net.Dialer{KeepAlive: 30 * time.Second, Control: dialControl}
}
