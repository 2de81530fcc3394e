package push

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Web Push endpoints come from browsers, so from users: like webhooks they
// could point at the server's own network. Unless WebPushConfig.AllowPrivate
// is set, the Web Push dialer refuses every address that is not public,
// after name resolution, so a host name resolving to such an address is
// refused too.

// ErrEndpointRefused is wrapped by the error of a Web Push endpoint whose
// address is not public.
var ErrEndpointRefused = errors.New("push endpoint refused")

// cgnat is the carrier-grade NAT range (RFC 6598), not covered by
// netip.Addr.IsPrivate.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach the
// IPv4 address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// public reports whether ip is a public unicast address.
func public(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		return public(netip.AddrFrom4([4]byte(b[12:])))
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

// checkEndpointHost refuses an endpoint whose host is "localhost" (or a
// name under it) or a literal IP address that is not public. Other names
// are checked when the dialer resolves them.
func checkEndpointHost(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("web_push.endpoint: %v", err)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !public(ip) {
			return fmt.Errorf("web_push.endpoint: %w: %s is not a public address", ErrEndpointRefused, host)
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("web_push.endpoint: %w: %s is a loopback name", ErrEndpointRefused, host)
	}
	return nil
}

type refusedDialError struct{ addr string }

func (e *refusedDialError) Error() string {
	return fmt.Sprintf("%v: %s is not a public address", ErrEndpointRefused, e.addr)
}

func (e *refusedDialError) Unwrap() error { return ErrEndpointRefused }

// dialControl runs for every address the dialer tries, before it connects.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !public(ap.Addr()) {
		return &refusedDialError{addr: address}
	}
	return nil
}

// guard makes tr dial only public addresses, directly (no proxy: the
// guard must see the real destination).
func guard(tr *http.Transport) {
	tr.Proxy = nil
	tr.OnProxyConnectResponse = nil
	tr.Dial = nil
	tr.DialTLS = nil
	tr.DialTLSContext = nil
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl}).DialContext
}

// isNetError reports whether err came from the HTTP round trip (as
// opposed to preparing the request).
func isNetError(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}
