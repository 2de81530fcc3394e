package email

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// envelope is one message the test server accepted.
type envelope struct {
	From string
	To   []string
	Data []byte
	HELO string // the name the client gave in EHLO/HELO
	User string // the authenticated user, "" without AUTH
	TLS  bool   // whether the session was encrypted
}

// serverOptions shape a test SMTP server.
type serverOptions struct {
	tls      string // TLSNone, TLSStartTLS or TLSImplicit
	user     string // non-empty: AUTH required with user/pass
	pass     string
	login    bool          // offer AUTH LOGIN only instead of PLAIN
	rcptCode int           // non-zero: RCPT TO is answered with this code
	dataCode int           // non-zero: the message data is answered with this code
	stall    chan struct{} // non-nil: the data reply waits until it is closed
}

// testServer is a real SMTP server (go-smtp) on 127.0.0.1:0 that records
// what it receives.
type testServer struct {
	t    *testing.T
	opts serverOptions
	addr string
	cert *x509.Certificate

	mu       sync.Mutex
	msgs     []envelope
	sessions int
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ts := &testServer{t: t, opts: opts}
	srv := smtp.NewServer(ts)
	srv.Domain = "mx.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch opts.tls {
	case TLSStartTLS:
		var tc *tls.Config
		tc, ts.cert = selfSigned(t)
		srv.TLSConfig = tc
	case TLSImplicit:
		var tc *tls.Config
		tc, ts.cert = selfSigned(t)
		l = tls.NewListener(l, tc)
	}
	ts.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close may run before Serve has registered l; closing l ends
		// Serve either way.
		_ = l.Close()
		<-done
	})
	if opts.stall != nil {
		// Runs before the server is closed (cleanups run last first).
		t.Cleanup(func() {
			select {
			case <-opts.stall:
			default:
				close(opts.stall)
			}
		})
	}
	return ts
}

// clientTLS trusts the server's self-signed certificate.
func (ts *testServer) clientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ts.cert)
	return &tls.Config{RootCAs: pool}
}

func (ts *testServer) received() []envelope {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]envelope(nil), ts.msgs...)
}

func (ts *testServer) sessionCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.sessions
}

// NewSession implements smtp.Backend.
func (ts *testServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ts.mu.Lock()
	ts.sessions++
	ts.mu.Unlock()
	return &session{ts: ts, conn: c}, nil
}

type session struct {
	ts   *testServer
	conn *smtp.Conn
	user string
	env  envelope
}

func (s *session) AuthMechanisms() []string {
	switch {
	case s.ts.opts.user == "":
		return nil
	case s.ts.opts.login:
		return []string{sasl.Login}
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != s.ts.opts.user || pass != s.ts.opts.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = user
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
}

// loginServer is the server side of the LOGIN mechanism (go-sasl has only
// its client): it asks for the user name, then the password.
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		l.step++ // the user name came as the initial response
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.ts.opts.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.env = envelope{From: from, User: s.user, HELO: s.conn.Hostname()}
	_, s.env.TLS = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if c := s.ts.opts.rcptCode; c != 0 {
		return &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "recipient refused"}
	}
	s.env.To = append(s.env.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.ts.opts.stall != nil {
		<-s.ts.opts.stall
	}
	if c := s.ts.opts.dataCode; c != 0 {
		return &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "try again later"}
	}
	s.env.Data = b
	s.ts.mu.Lock()
	s.ts.msgs = append(s.ts.msgs, s.env)
	s.ts.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.env = envelope{} }
func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned(t *testing.T) (*tls.Config, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mx.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, cert
}

// stallingListener accepts connections and never says a word.
func stallingListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}
