// Package email is the e-mail channel: a notify.Sender that delivers over
// SMTP (STARTTLS, implicit TLS or plain text, optional SMTP AUTH) with
// github.com/wneessen/go-mail.
//
// Each Send dials its own connection, so a Sender is safe for concurrent
// use and one broken connection never affects another message. Failures
// are classified by the SMTP reply code: 5xx is permanent, 4xx transient;
// connection errors, TLS errors and timeouts are transient; an address
// that does not parse is permanent without dialing.
package email

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/unifiedms/ums/notify"
)

// ClassAdvertising is the notify.Message class that gets List-Unsubscribe
// headers.
const ClassAdvertising = "advertising"

// Sender sends notify.Messages by SMTP. Create it with New.
type Sender struct {
	s *settings
}

var _ notify.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender. It does not connect.
func New(cfg Config) (*Sender, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Sender{s: s}, nil
}

// ValidateAddress reports whether s is a deliverable recipient: one RFC 5322
// mailbox ("user@example.com" or "Name <user@example.com>") whose address
// fits the RFC 5321 limits (local part up to 64 octets, address up to 254).
func ValidateAddress(s string) error {
	_, err := parseRecipient(s)
	return err
}

func parseRecipient(s string) (*mail.Address, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("email address is empty")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("invalid email address %q: %v", s, err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return nil, fmt.Errorf("invalid email address %q: want local@domain", s)
	}
	if at > 64 {
		return nil, fmt.Errorf("invalid email address %q: local part longer than 64 octets", s)
	}
	if len(a.Address) > 254 {
		return nil, fmt.Errorf("invalid email address %q: longer than 254 octets", s)
	}
	return a, nil
}

// unsubscribeURI turns Message.Unsubscribe into a List-Unsubscribe URI and
// says whether it is an https URL (one-click capable, RFC 8058). A bare
// address becomes a mailto: URI.
func unsubscribeURI(v string) (uri string, https bool, err error) {
	v = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "<"), ">")
	if strings.ContainsAny(v, " \t\r\n<>,") {
		return "", false, fmt.Errorf("invalid unsubscribe target %q", v)
	}
	if !strings.Contains(v, ":") {
		if _, err := parseRecipient(v); err != nil {
			return "", false, fmt.Errorf("invalid unsubscribe target: %v", err)
		}
		return "mailto:" + v, false, nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", false, fmt.Errorf("invalid unsubscribe target %q", v)
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		if _, err := parseRecipient(strings.SplitN(u.Opaque, "?", 2)[0]); err != nil {
			return "", false, fmt.Errorf("invalid unsubscribe target: %v", err)
		}
		return v, false, nil
	case "https":
		if u.Host == "" {
			return "", false, fmt.Errorf("invalid unsubscribe target %q: no host", v)
		}
		return v, true, nil
	case "http":
		if u.Host == "" {
			return "", false, fmt.Errorf("invalid unsubscribe target %q: no host", v)
		}
		return v, false, nil
	}
	return "", false, fmt.Errorf("invalid unsubscribe target %q: want mailto:, https: or http:", v)
}

// newMessageID returns a fresh Message-ID without its angle brackets.
func (s *Sender) newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	domain := s.s.idDomain
	for _, r := range domain {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			domain = "localhost"
			break
		}
	}
	return hex.EncodeToString(b[:]) + "@" + domain
}

// build turns m into a go-mail message; its errors are permanent (the
// message itself is wrong).
func (s *Sender) build(m *notify.Message, to *mail.Address) (*gomail.Msg, string, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.s.from)
	msg.ToMailAddress(to)
	// A subject is one line; line breaks in it become spaces.
	msg.Subject(strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(m.Subject))
	id := s.newMessageID()
	msg.SetMessageIDWithValue(id)
	msg.SetDateWithValue(time.Now())
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	if m.Class == ClassAdvertising && m.Unsubscribe != "" {
		uri, https, err := unsubscribeURI(m.Unsubscribe)
		if err != nil {
			return nil, "", err
		}
		if https {
			if err := msg.SetListUnsubscribeOneClick(uri); err != nil {
				return nil, "", err
			}
		} else {
			msg.SetListUnsubscribe(uri)
		}
	}
	return msg, "<" + id + ">", nil
}

// Send delivers m to m.To. The Result's ProviderID is the Message-ID
// header's value (angle brackets included), its Answer the server's reply
// to the message data.
func (s *Sender) Send(ctx context.Context, m *notify.Message) (notify.Result, error) {
	if m == nil {
		return notify.Result{}, notify.Permanent(0, errors.New("email: nil message"))
	}
	to, err := parseRecipient(m.To)
	if err != nil {
		return notify.Result{}, notify.Permanent(0, err)
	}
	msg, msgID, err := s.build(m, to)
	if err != nil {
		return notify.Result{}, notify.Permanent(0, err)
	}
	if err := ctx.Err(); err != nil {
		return notify.Result{}, notify.Transient(0, 0, err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	perOp := time.Until(deadline)
	if perOp <= 0 {
		return notify.Result{}, notify.Transient(0, 0, context.DeadlineExceeded)
	}

	// The dialer hands go-mail the connection and keeps the raw socket:
	// closing it when ctx ends interrupts whatever go-mail is waiting for,
	// and closing it on return never leaks a half-open session.
	var raw net.Conn
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		raw = c
		context.AfterFunc(ctx, func() { _ = c.Close() })
		if s.s.tlsMode != TLSImplicit {
			return c, nil
		}
		tc := tls.Client(c, s.s.tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, err
		}
		return tc, nil
	}
	defer func() {
		if raw != nil {
			_ = raw.Close()
		}
	}()

	opts := []gomail.Option{
		gomail.WithPort(s.s.port),
		gomail.WithTimeout(perOp),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(s.s.tlsConf),
		gomail.WithoutNoop(),
	}
	switch s.s.tlsMode {
	case TLSImplicit:
		// The dialer does the handshake; WithSSL keeps go-mail from trying
		// STARTTLS on top.
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.s.helo != "" {
		opts = append(opts, gomail.WithHELO(s.s.helo))
	}
	if s.s.auth {
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.s.user), gomail.WithPassword(s.s.pass))
	}
	client, err := gomail.NewClient(s.s.host, opts...)
	if err != nil {
		return notify.Result{}, notify.Transient(0, 0, fmt.Errorf("email: %w", err))
	}

	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return notify.Result{}, classify(ctx, fmt.Errorf("email: connecting to %s: %w", s.s.addr(), err))
	}
	err = client.SendWithSMTPClient(sc, msg)
	if msg.IsDelivered() {
		// The server took the data; a failing RSET or QUIT afterwards
		// must not cause a second copy.
		_ = client.CloseWithSMTPClient(sc)
		return notify.Result{ProviderID: msgID, Answer: answer(msg.ServerResponse())}, nil
	}
	if err == nil {
		err = errors.New("message not accepted")
	}
	return notify.Result{}, classify(ctx, fmt.Errorf("email: sending to %s via %s: %w", to.Address, s.s.addr(), err))
}

func answer(resp string) string {
	resp = strings.TrimSpace(resp)
	if len(resp) > 200 {
		resp = resp[:200]
	}
	if resp == "" {
		return "250 accepted"
	}
	return "250 " + resp
}

// classify turns a go-mail failure into a notify.Error by the SMTP reply
// code it carries: go-mail's SendError for the mail transaction,
// textproto.Error for the greeting, EHLO, STARTTLS and AUTH.
func classify(ctx context.Context, err error) error {
	code := 0
	var se *gomail.SendError
	if errors.As(err, &se) {
		code = se.ErrorCode()
	}
	if code == 0 {
		var te *textproto.Error
		if errors.As(err, &te) {
			code = te.Code
		}
	}
	switch {
	case code >= 500 && code < 600:
		return notify.Permanent(code, err)
	case code >= 400 && code < 500:
		return notify.Transient(code, 0, err)
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		// The socket deadlines are never earlier than the send's
		// deadline but may fire a moment before ctx notices it passed.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return notify.Transient(0, 0, err)
}
