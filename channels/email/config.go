package email

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TLS modes of Config.TLS.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS; a
	// server that does not offer STARTTLS is an error (the default).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (smtps, usually port 465).
	TLSImplicit = "implicit"
	// TLSNone never encrypts. SMTP AUTH PLAIN/LOGIN is then refused unless
	// the server is on localhost.
	TLSNone = "none"
)

// DefaultTimeout bounds one Send (dial, TLS, AUTH and the transfer) when
// Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Sender.
type Config struct {
	// URL is smtp://[user[:pass]@]host[:port] or smtps://... for implicit
	// TLS. User and password, when present, are used for SMTP AUTH with
	// PLAIN or LOGIN, whichever the server offers. The default port is
	// 587 for STARTTLS, 25 without TLS and 465 for implicit TLS.
	URL string
	// TLS is "starttls" (default for smtp://), "implicit" (implied by
	// smtps://) or "none".
	TLS string
	// From is the sender address, "addr@example.com" or
	// "Name <addr@example.com>".
	From string
	// Timeout bounds each Send as a whole, dial included (DefaultTimeout
	// when zero). A ctx deadline that comes sooner wins.
	Timeout time.Duration
	// TLSConfig, when set, is used for STARTTLS and implicit TLS (custom
	// root CAs, client certificates). Its ServerName defaults to the URL's
	// host.
	TLSConfig *tls.Config
	// HELO is the name sent with EHLO/HELO; the local host name when empty.
	HELO string
}

// settings is a validated Config.
type settings struct {
	host     string
	port     int
	user     string
	pass     string
	auth     bool
	tlsMode  string
	from     *mail.Address
	timeout  time.Duration
	tlsConf  *tls.Config
	helo     string
	idDomain string // right-hand side of generated Message-IDs
}

func (c Config) validate() (*settings, error) {
	s := &settings{timeout: c.Timeout, helo: c.HELO}
	if c.URL == "" {
		return nil, errors.New("email: URL is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only
		// the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("email: URL: %v", err)
	}
	mode := strings.ToLower(strings.TrimSpace(c.TLS))
	switch mode {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("email: TLS: unknown mode %q (want starttls, implicit or none)", c.TLS)
	}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		if mode == "" {
			mode = TLSStartTLS
		}
	case "smtps":
		if mode == "" {
			mode = TLSImplicit
		}
		if mode != TLSImplicit {
			return nil, fmt.Errorf("email: TLS: mode %q contradicts the smtps:// URL (implicit TLS)", mode)
		}
	default:
		return nil, fmt.Errorf("email: URL: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	s.tlsMode = mode
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("email: URL: want smtp://[user[:pass]@]host[:port] with no path or query")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, errors.New("email: URL: host is missing")
	}
	switch mode {
	case TLSImplicit:
		s.port = 465
	case TLSNone:
		s.port = 25
	default:
		s.port = 587
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("email: URL: bad port %q", p)
		}
		s.port = n
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		s.auth = s.user != ""
	}

	if strings.TrimSpace(c.From) == "" {
		return nil, errors.New("email: From is required")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("email: From: %v", err)
	}
	s.from = from
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && at < len(from.Address)-1 {
		s.idDomain = from.Address[at+1:]
	} else {
		s.idDomain = s.host
	}

	if c.Timeout < 0 {
		return nil, errors.New("email: Timeout must not be negative")
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if strings.ContainsAny(c.HELO, " \t\r\n") {
		return nil, fmt.Errorf("email: HELO: %q is not a host name", c.HELO)
	}

	if c.TLSConfig != nil {
		s.tlsConf = c.TLSConfig.Clone()
	} else {
		s.tlsConf = &tls.Config{}
	}
	if s.tlsConf.ServerName == "" {
		s.tlsConf.ServerName = s.host
	}
	if s.tlsConf.MinVersion == 0 {
		s.tlsConf.MinVersion = tls.VersionTLS12
	}
	return s, nil
}

func (s *settings) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }
