// Package smtpserver runs a real SMTP server (github.com/emersion/go-smtp)
// on a loopback port for tests: plain SMTP without TLS or AUTH, every
// message parsed back with github.com/emersion/go-message and kept.
package smtpserver

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
)

// Mail is one message the server accepted.
type Mail struct {
	From    string
	To      []string
	Subject string
	Header  mail.Header
	Text    string // the text/plain part
	HTML    string // the text/html part
	Raw     []byte
}

// Server is a running test SMTP server.
type Server struct {
	Addr string // 127.0.0.1:port

	mu    sync.Mutex
	mails []Mail
	// Reject, when set, answers the data of the next messages with this
	// SMTP code (e.g. 550, 451).
	reject int
	wake   chan struct{}
}

// Start starts a server that stops when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{wake: make(chan struct{}, 1)}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	tb.Cleanup(func() { srv.Close(); l.Close(); <-done })
	return s
}

// URL is the smtp:// URL of the server (use with --smtp-tls none).
func (s *Server) URL() string { return "smtp://" + s.Addr }

// Reject makes the server answer message data with code (0: accept).
func (s *Server) Reject(code int) {
	s.mu.Lock()
	s.reject = code
	s.mu.Unlock()
}

// Mails returns the messages received so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Wait waits until n messages arrived and returns them, failing the test
// after timeout.
func (s *Server) Wait(tb testing.TB, n int, timeout time.Duration) []Mail {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if m := s.Mails(); len(m) >= n {
			return m
		}
		select {
		case <-s.wake:
		case <-deadline.C:
			tb.Fatalf("smtp: %d of %d messages after %v", len(s.Mails()), n, timeout)
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *Server
	from string
	to   []string
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error { x.from = from; return nil }
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	code := x.s.reject
	x.s.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "refused by the test"}
	}
	m, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparsable: " + err.Error()}
	}
	m.From, m.To = x.from, x.to
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, m)
	x.s.mu.Unlock()
	select {
	case x.s.wake <- struct{}{}:
	default:
	}
	return nil
}

// parse reads a message and its text and HTML parts.
func parse(raw []byte) (Mail, error) {
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{Raw: raw, Header: mr.Header}
	m.Subject, _ = mr.Header.Subject()
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Mail{}, err
		}
		h, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			continue
		}
		ct, _, _ := h.ContentType()
		b, err := io.ReadAll(p.Body)
		if err != nil {
			return Mail{}, err
		}
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			m.Text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			m.HTML = string(b)
		}
	}
	return m, nil
}
