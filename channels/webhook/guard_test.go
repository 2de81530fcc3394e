package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	cases := []struct {
		url          string
		allowHTTP    bool
		allowPrivate bool
		want         string // "" for no error, else a part of the message
	}{
		{"https://hooks.example.com/ums", false, false, ""},
		{"https://hooks.example.com:8443/ums?x=1", false, false, ""},
		{"HTTPS://Hooks.Example.com/", false, false, ""},
		{"https://203.0.113.7/hook", false, false, ""},
		{"https://[2001:db8::1]/hook", false, false, ""},
		{"http://hooks.example.com/ums", false, false, "scheme http is not allowed"},
		{"http://hooks.example.com/ums", true, false, ""},
		{"https://127.0.0.1/hook", false, false, "loopback address 127.0.0.1"},
		{"https://127.0.0.1/hook", false, true, ""},
		{"https://localhost/hook", false, false, "loopback host name"},
		{"https://LOCALHOST./hook", false, false, "loopback host name"},
		{"https://api.localhost/hook", false, false, "loopback host name"},
		{"https://localhost/hook", false, true, ""},
		{"https://10.1.2.3/hook", false, false, "private address 10.1.2.3"},
		{"https://172.16.0.1/hook", false, false, "private address"},
		{"https://192.168.1.1/hook", false, false, "private address"},
		{"https://[::1]/hook", false, false, "loopback address ::1"},
		{"https://[::1]:8080/hook", false, true, ""},
		{"https://[fd00::1]/hook", false, false, "private address"},
		{"https://[fe80::1%25eth0]/hook", false, false, "link-local address"},
		{"https://[::ffff:127.0.0.1]/hook", false, false, "loopback address"},
		{"https://[64:ff9b::a9fe:a9fe]/hook", false, false, "link-local (through NAT64)"},
		{"https://169.254.169.254/latest/meta-data", false, false, "link-local address 169.254.169.254"},
		{"https://100.64.0.1/hook", false, false, "carrier-grade NAT address 100.64.0.1"},
		{"https://0.0.0.0/hook", false, false, "unspecified address"},
		{"https://[::]/hook", false, false, "unspecified address"},
		{"https://224.0.0.1/hook", false, false, "multicast address"},
		{"https://[ff02::1]/hook", false, false, "multicast address"},
		{"https://2130706433/hook", false, false, "numeric host"},
		{"https://127.1/hook", false, false, "numeric host"},
		{"https://0x7f000001/hook", false, false, "numeric host"},
		{"/relative/hook", false, false, "not absolute"},
		{"hooks.example.com/ums", false, false, "not absolute"},
		{"https:///hook", false, false, "no host"},
		{"https://:443/hook", false, false, "no host"},
		{"https:hooks.example.com", false, false, "no host"},
		{"ftp://hooks.example.com/ums", true, true, `scheme "ftp" is not allowed`},
		{"https://hooks.example.com/%zz", false, false, "invalid URL escape"},
	}
	for _, c := range cases {
		err := ValidateURL(c.url, c.allowHTTP, c.allowPrivate)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("ValidateURL(%q, http=%v, private=%v) = %v, want ok", c.url, c.allowHTTP, c.allowPrivate, err)
		case c.want != "" && err == nil:
			t.Errorf("ValidateURL(%q, http=%v, private=%v) = nil, want %q", c.url, c.allowHTTP, c.allowPrivate, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("ValidateURL(%q, http=%v, private=%v) = %v, want it to say %q", c.url, c.allowHTTP, c.allowPrivate, err, c.want)
		}
	}
	if err := ValidateURL("https://10.0.0.1/", false, false); !errors.Is(err, ErrDestinationRefused) {
		t.Errorf("a refused address does not wrap ErrDestinationRefused: %v", err)
	}
}

func TestDialControl(t *testing.T) {
	cases := []struct {
		addr string
		want string
	}{
		{"203.0.113.7:443", ""},
		{"[2001:db8::1]:443", ""},
		{"[64:ff9b::cb00:7107]:443", ""},
		{"127.0.0.1:80", "loopback"},
		{"127.9.9.9:80", "loopback"},
		{"[::1]:80", "loopback"},
		{"[::ffff:10.0.0.1]:80", "private"},
		{"10.1.2.3:80", "private"},
		{"172.31.255.255:80", "private"},
		{"192.168.0.10:80", "private"},
		{"[fc00::5]:80", "private"},
		{"169.254.169.254:80", "link-local"},
		{"[fe80::1%eth0]:80", "link-local"},
		{"100.127.255.255:80", "carrier-grade NAT"},
		{"0.0.0.0:80", "unspecified"},
		{"[::]:80", "unspecified"},
		{"239.1.1.1:80", "multicast"},
		{"255.255.255.255:80", "reserved"},
		{"not-an-address", "unparsable"},
	}
	for _, c := range cases {
		err := dialControl("tcp", c.addr, nil)
		if c.want == "" {
			if err != nil {
				t.Errorf("dialControl(%s) = %v, want ok", c.addr, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrDestinationRefused) {
			t.Errorf("dialControl(%s) = %v, want a refusal saying %q", c.addr, err, c.want)
		}
	}
	if r := refusedReason(netip.MustParseAddr("8.8.8.8")); r != "" {
		t.Errorf("public address refused: %s", r)
	}
}

// The sender's URL cache answers as parsing does, keeps refusing what it
// refused, and starts over when full.
func TestURLCache(t *testing.T) {
	var c urlCache
	calls := 0
	check := func(raw string) (*url.URL, error) {
		calls++
		return parseURL(raw, false, false)
	}
	u1, err := c.parse("https://hooks.example.com/a?x=1", check)
	if err != nil || u1.Host != "hooks.example.com" || u1.RawQuery != "x=1" {
		t.Fatalf("%v %v", u1, err)
	}
	if u2, err := c.parse("https://hooks.example.com/a?x=1", check); err != nil || u2 != u1 || calls != 1 {
		t.Fatalf("second parse: %v %v, %d checks", u2, err, calls)
	}
	for range 2 {
		if _, err := c.parse("http://hooks.example.com/", check); err == nil {
			t.Fatal("http URL accepted")
		}
	}
	if calls != 3 {
		t.Fatalf("%d checks, want 3 (a refused URL is checked each time)", calls)
	}
	for i := range maxCachedURLs + 1 {
		if _, err := c.parse(fmt.Sprintf("https://h%d.example.com/", i), check); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxCachedURLs {
		t.Fatalf("cache holds %d URLs, bound %d", len(c.m), maxCachedURLs)
	}
}

// A sender's ValidateURL answers as ValidateURL with its settings.
func TestSenderValidateURL(t *testing.T) {
	s, err := New(Config{Secret: []byte("k"), AllowHTTP: false, AllowPrivate: false})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, raw := range []string{"https://hooks.example.com/x", "http://hooks.example.com/x", "https://127.0.0.1/x",
		"https://10.0.0.1/", "ftp://x/", "/relative", "https://hooks.example.com/x"} {
		want := ValidateURL(raw, false, false)
		if got := s.ValidateURL(raw); (got == nil) != (want == nil) {
			t.Fatalf("%s: %v, want %v", raw, got, want)
		}
	}
}
