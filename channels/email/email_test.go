package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	gmail "github.com/emersion/go-message/mail"

	"github.com/unifiedms/ums/notify"
)

const testFrom = "UMS Notifications <noreply@ums.test>"

// parsedMail is what a mail client shows of a received message.
type parsedMail struct {
	header      gmail.Header
	from, to    string // addresses
	subject     string
	messageID   string // raw header value
	date        time.Time
	contentType string // top-level media type
	parts       map[string]string
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	mr, err := gmail.CreateReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse mail: %v\n%s", err, data)
	}
	defer mr.Close()
	p := parsedMail{header: mr.Header, parts: map[string]string{}}
	from, err := mr.Header.AddressList("From")
	if err != nil || len(from) != 1 {
		t.Fatalf("From %v: %v", from, err)
	}
	p.from = from[0].Address
	to, err := mr.Header.AddressList("To")
	if err != nil || len(to) != 1 {
		t.Fatalf("To %v: %v", to, err)
	}
	p.to = to[0].Address
	if p.subject, err = mr.Header.Subject(); err != nil {
		t.Fatalf("Subject: %v", err)
	}
	p.messageID = mr.Header.Get("Message-Id")
	if p.date, err = mr.Header.Date(); err != nil {
		t.Fatalf("Date: %v", err)
	}
	if p.contentType, _, err = mr.Header.ContentType(); err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		h, ok := part.Header.(*gmail.InlineHeader)
		if !ok {
			t.Fatalf("unexpected attachment part %T", part.Header)
		}
		ct, _, err := h.ContentType()
		if err != nil {
			t.Fatalf("part Content-Type: %v", err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("part body: %v", err)
		}
		// Text travels with CRLF line ends; a reader sees lines.
		p.parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	return p
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = testFrom
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.HELO == "" {
		cfg.HELO = "client.ums.test"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func message() *notify.Message {
	return &notify.Message{
		ID:      "n-1",
		Channel: "email",
		To:      "Ada Lovelace <ada@example.org>",
		Subject: "Your code: 123456 — valid 5 min",
		Text:    "Your login code is 123456.\nIt expires in 5 minutes.",
		HTML:    "<p>Your login code is <b>123456</b>.</p>",
		Class:   "transactional",
		Attempt: 1,
	}
}

// checkDelivered asserts the one message ts received is m as sent by s.
func checkDelivered(t *testing.T, ts *testServer, res notify.Result, m *notify.Message) parsedMail {
	t.Helper()
	got := ts.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	env := got[0]
	if env.From != "noreply@ums.test" {
		t.Errorf("MAIL FROM %q", env.From)
	}
	if env.HELO != "client.ums.test" {
		t.Errorf("HELO %q", env.HELO)
	}
	if len(env.To) != 1 || env.To[0] != "ada@example.org" {
		t.Errorf("RCPT TO %q", env.To)
	}
	p := parseMail(t, env.Data)
	if p.from != "noreply@ums.test" || p.to != "ada@example.org" {
		t.Errorf("From %q To %q", p.from, p.to)
	}
	if want := strings.ReplaceAll(m.Subject, "\n", " "); p.subject != want {
		t.Errorf("Subject %q, want %q", p.subject, m.Subject)
	}
	if res.ProviderID == "" || p.messageID != res.ProviderID {
		t.Errorf("Message-ID %q, ProviderID %q", p.messageID, res.ProviderID)
	}
	if id, err := p.header.MessageID(); err != nil || "<"+id+">" != res.ProviderID {
		t.Errorf("Message-ID does not parse: %q %v", id, err)
	}
	if d := time.Since(p.date); d < -time.Minute || d > time.Minute {
		t.Errorf("Date %v is not now", p.date)
	}
	return p
}

func TestSendOverEachTLSMode(t *testing.T) {
	cases := []struct {
		name     string
		server   serverOptions
		url      func(ts *testServer) string
		tlsMode  string
		wantUser string
		wantTLS  bool
	}{
		{
			name:    "plain text without auth",
			server:  serverOptions{tls: TLSNone},
			url:     func(ts *testServer) string { return "smtp://" + ts.addr },
			tlsMode: TLSNone,
		},
		{
			name:     "starttls with auth",
			server:   serverOptions{tls: TLSStartTLS, user: "mailer", pass: "p@ss:w/rd"},
			url:      func(ts *testServer) string { return "smtp://mailer:p%40ss%3Aw%2Frd@" + ts.addr },
			wantUser: "mailer",
			wantTLS:  true,
		},
		{
			name:     "starttls with auth login",
			server:   serverOptions{tls: TLSStartTLS, user: "mailer", pass: "secret", login: true},
			url:      func(ts *testServer) string { return "smtp://mailer:secret@" + ts.addr },
			wantUser: "mailer",
			wantTLS:  true,
		},
		{
			name:     "implicit tls with auth",
			server:   serverOptions{tls: TLSImplicit, user: "mailer", pass: "secret"},
			url:      func(ts *testServer) string { return "smtps://mailer:secret@" + ts.addr },
			wantUser: "mailer",
			wantTLS:  true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.server)
			cfg := Config{URL: tc.url(ts), TLS: tc.tlsMode}
			if ts.cert != nil {
				cfg.TLSConfig = ts.clientTLS()
			}
			s := newSender(t, cfg)
			m := message()
			res, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !strings.HasPrefix(res.Answer, "250") {
				t.Errorf("Answer %q", res.Answer)
			}
			p := checkDelivered(t, ts, res, m)
			env := ts.received()[0]
			if env.User != tc.wantUser || env.TLS != tc.wantTLS {
				t.Errorf("session user %q tls %v, want %q %v", env.User, env.TLS, tc.wantUser, tc.wantTLS)
			}
			if p.contentType != "multipart/alternative" {
				t.Errorf("Content-Type %q", p.contentType)
			}
			if got := strings.TrimSpace(p.parts["text/plain"]); got != m.Text {
				t.Errorf("text part %q", got)
			}
			if got := strings.TrimSpace(p.parts["text/html"]); got != m.HTML {
				t.Errorf("html part %q", got)
			}
			if p.header.Has("List-Unsubscribe") {
				t.Errorf("transactional mail has List-Unsubscribe")
			}
		})
	}
}

func TestSendBodiesAndUnsubscribe(t *testing.T) {
	cases := []struct {
		name        string
		edit        func(m *notify.Message)
		contentType string
		parts       []string
		unsubscribe string // expected List-Unsubscribe, "" for none
		oneClick    bool
	}{
		{
			name:        "text only",
			edit:        func(m *notify.Message) { m.HTML = "" },
			contentType: "text/plain",
			parts:       []string{"text/plain"},
		},
		{
			name:        "subject with a line break stays one header",
			edit:        func(m *notify.Message) { m.Subject = "Hello\nX-Injected: yes" },
			contentType: "multipart/alternative",
			parts:       []string{"text/plain", "text/html"},
		},
		{
			name:        "html only",
			edit:        func(m *notify.Message) { m.Text = "" },
			contentType: "text/html",
			parts:       []string{"text/html"},
		},
		{
			name: "advertising with https unsubscribe",
			edit: func(m *notify.Message) {
				m.Class = "advertising"
				m.Unsubscribe = "https://ums.test/unsubscribe?u=42&c=spring"
			},
			contentType: "multipart/alternative",
			parts:       []string{"text/plain", "text/html"},
			unsubscribe: "<https://ums.test/unsubscribe?u=42&c=spring>",
			oneClick:    true,
		},
		{
			name: "advertising with mailto unsubscribe",
			edit: func(m *notify.Message) {
				m.Class = "advertising"
				m.Unsubscribe = "mailto:unsubscribe@ums.test?subject=stop"
			},
			contentType: "multipart/alternative",
			parts:       []string{"text/plain", "text/html"},
			unsubscribe: "<mailto:unsubscribe@ums.test?subject=stop>",
		},
		{
			name: "transactional ignores unsubscribe",
			edit: func(m *notify.Message) {
				m.Unsubscribe = "https://ums.test/unsubscribe"
			},
			contentType: "multipart/alternative",
			parts:       []string{"text/plain", "text/html"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOptions{tls: TLSNone})
			s := newSender(t, Config{URL: "smtp://" + ts.addr, TLS: TLSNone})
			m := message()
			tc.edit(m)
			res, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			p := checkDelivered(t, ts, res, m)
			if p.contentType != tc.contentType {
				t.Errorf("Content-Type %q, want %q", p.contentType, tc.contentType)
			}
			if len(p.parts) != len(tc.parts) {
				t.Errorf("parts %v, want %v", p.parts, tc.parts)
			}
			want := map[string]string{"text/plain": m.Text, "text/html": m.HTML}
			for _, ct := range tc.parts {
				if got := strings.TrimSpace(p.parts[ct]); got != want[ct] {
					t.Errorf("%s part %q, want %q", ct, got, want[ct])
				}
			}
			if p.header.Has("X-Injected") {
				t.Errorf("a header was injected through the subject")
			}
			if got := p.header.Get("List-Unsubscribe"); got != tc.unsubscribe {
				t.Errorf("List-Unsubscribe %q, want %q", got, tc.unsubscribe)
			}
			post := p.header.Get("List-Unsubscribe-Post")
			if tc.oneClick && post != "List-Unsubscribe=One-Click" || !tc.oneClick && post != "" {
				t.Errorf("List-Unsubscribe-Post %q (one-click %v)", post, tc.oneClick)
			}
		})
	}
}

// wantFailure checks err is a notify.Error of the given kind and code.
func wantFailure(t *testing.T, err error, permanent bool, code int) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded, want a failure")
	}
	var ne *notify.Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not a *notify.Error", err, err)
	}
	if ne.Permanent != permanent || ne.Code != code {
		t.Fatalf("got permanent=%v code=%d (%v), want permanent=%v code=%d", ne.Permanent, ne.Code, err, permanent, code)
	}
}

func TestSendServerRefusals(t *testing.T) {
	cases := []struct {
		name      string
		server    serverOptions
		userinfo  string
		permanent bool
		code      int
	}{
		{"recipient 550", serverOptions{rcptCode: 550}, "", true, 550},
		{"recipient 452", serverOptions{rcptCode: 452}, "", false, 452},
		{"data 451", serverOptions{dataCode: 451}, "", false, 451},
		{"data 554", serverOptions{dataCode: 554}, "", true, 554},
		{"auth 535", serverOptions{tls: TLSStartTLS, user: "mailer", pass: "right"}, "mailer:wrong@", true, 535},
		// go-smtp answers MAIL FROM without AUTH with 502 5.7.0.
		{"auth required 502", serverOptions{tls: TLSStartTLS, user: "mailer", pass: "right"}, "", true, 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.server.tls == "" {
				tc.server.tls = TLSNone
			}
			ts := startServer(t, tc.server)
			cfg := Config{URL: "smtp://" + tc.userinfo + ts.addr, TLS: tc.server.tls}
			if ts.cert != nil {
				cfg.TLSConfig = ts.clientTLS()
			}
			s := newSender(t, cfg)
			_, err := s.Send(context.Background(), message())
			wantFailure(t, err, tc.permanent, tc.code)
			if n := len(ts.received()); n != 0 {
				t.Errorf("server stored %d messages", n)
			}
		})
	}
}

func TestSendConnectionFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		s := newSender(t, Config{URL: "smtp://" + closedPort(t), TLS: TLSNone})
		_, err := s.Send(context.Background(), message())
		wantFailure(t, err, false, 0)
	})
	t.Run("starttls required but not offered", func(t *testing.T) {
		ts := startServer(t, serverOptions{tls: TLSNone})
		s := newSender(t, Config{URL: "smtp://" + ts.addr})
		_, err := s.Send(context.Background(), message())
		wantFailure(t, err, false, 0)
		if n := len(ts.received()); n != 0 {
			t.Errorf("server stored %d messages", n)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		ts := startServer(t, serverOptions{tls: TLSImplicit})
		s := newSender(t, Config{URL: "smtps://" + ts.addr})
		_, err := s.Send(context.Background(), message())
		wantFailure(t, err, false, 0)
	})
}

func TestSendHonoursContext(t *testing.T) {
	const deadline = 300 * time.Millisecond
	cases := []struct {
		name   string
		addr   func(t *testing.T) string
		cancel bool // cancel instead of a deadline
		cfgTO  bool // the Config's Timeout instead of ctx
	}{
		{name: "silent greeting, ctx deadline", addr: stallingListener},
		{name: "stalled data reply, ctx deadline", addr: stallServer},
		{name: "stalled data reply, ctx cancelled", addr: stallServer, cancel: true},
		{name: "stalled data reply, config timeout", addr: stallServer, cfgTO: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: "smtp://" + tc.addr(t), TLS: TLSNone}
			if tc.cfgTO {
				cfg.Timeout = deadline
			}
			s := newSender(t, cfg)
			ctx := context.Background()
			var cancel context.CancelFunc
			switch {
			case tc.cancel:
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(deadline, cancel)
			case !tc.cfgTO:
				ctx, cancel = context.WithTimeout(ctx, deadline)
			default:
				cancel = func() {}
			}
			defer cancel()
			start := time.Now()
			_, err := s.Send(ctx, message())
			took := time.Since(start)
			wantFailure(t, err, false, 0)
			if took > deadline+time.Second {
				t.Errorf("Send returned after %v, deadline was %v", took, deadline)
			}
			want := context.DeadlineExceeded
			if tc.cancel {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
		})
	}
}

func stallServer(t *testing.T) string {
	return startServer(t, serverOptions{tls: TLSNone, stall: make(chan struct{})}).addr
}

func TestSendInvalidRecipientIsPermanentWithoutDialing(t *testing.T) {
	ts := startServer(t, serverOptions{tls: TLSNone})
	s := newSender(t, Config{URL: "smtp://" + ts.addr, TLS: TLSNone})
	for _, to := range []string{"", "not-an-address", "a@b, c@d", "ada@", "@example.org", "ada@example.org\r\nBcc: x@y.z"} {
		m := message()
		m.To = to
		_, err := s.Send(context.Background(), m)
		wantFailure(t, err, true, 0)
	}
	bad := message()
	bad.Class = "advertising"
	bad.Unsubscribe = "javascript:alert(1)"
	_, err := s.Send(context.Background(), bad)
	wantFailure(t, err, true, 0)
	if n := ts.sessionCount(); n != 0 {
		t.Errorf("the server saw %d sessions, want none", n)
	}
}

func TestSendConcurrent(t *testing.T) {
	ts := startServer(t, serverOptions{tls: TLSStartTLS, user: "mailer", pass: "secret"})
	s := newSender(t, Config{URL: "smtp://mailer:secret@" + ts.addr, TLSConfig: ts.clientTLS()})
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			m := message()
			m.Subject = fmt.Sprintf("message %d", i)
			res, err := s.Send(context.Background(), m)
			ids[i], errs[i] = res.ProviderID, err
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("send %d: %v", i, errs[i])
		}
		seen[ids[i]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct Message-IDs for %d sends", len(seen), n)
	}
	got := ts.received()
	if len(got) != n {
		t.Fatalf("server received %d messages, want %d", len(got), n)
	}
	for _, env := range got {
		p := parseMail(t, env.Data)
		if !seen[p.messageID] {
			t.Errorf("received Message-ID %q was not returned by Send", p.messageID)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // a word the error must name
	}{
		{"missing URL", Config{From: testFrom}, "URL"},
		{"unparsable URL", Config{URL: "smtp://user:se cret@host:25%", From: testFrom}, "URL"},
		{"wrong scheme", Config{URL: "http://mail.example.org", From: testFrom}, "scheme"},
		{"no host", Config{URL: "smtp://", From: testFrom}, "host"},
		{"bad port", Config{URL: "smtp://mail.example.org:99999", From: testFrom}, "port"},
		{"path", Config{URL: "smtp://mail.example.org/x", From: testFrom}, "URL"},
		{"missing From", Config{URL: "smtp://mail.example.org"}, "From"},
		{"bad From", Config{URL: "smtp://mail.example.org", From: "nobody"}, "From"},
		{"unknown TLS mode", Config{URL: "smtp://mail.example.org", From: testFrom, TLS: "ssl"}, "TLS"},
		{"smtps with starttls", Config{URL: "smtps://mail.example.org", From: testFrom, TLS: "starttls"}, "TLS"},
		{"negative timeout", Config{URL: "smtp://mail.example.org", From: testFrom, Timeout: -time.Second}, "Timeout"},
		{"bad HELO", Config{URL: "smtp://mail.example.org", From: testFrom, HELO: "two words"}, "HELO"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if s != nil {
				t.Errorf("New returned a Sender with error %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "se cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	cases := []struct {
		cfg      Config
		mode     string
		port     int
		user     string
		pass     string
		insecure bool
	}{
		{Config{URL: "smtp://mail.example.org"}, TLSStartTLS, 587, "", "", false},
		{Config{URL: "smtp://mail.example.org", TLS: "none"}, TLSNone, 25, "", "", false},
		{Config{URL: "smtps://u:p@mail.example.org"}, TLSImplicit, 465, "u", "p", false},
		{Config{URL: "SMTP://u@mail.example.org:2525", TLS: "Implicit"}, TLSImplicit, 2525, "u", "", false},
		{Config{URL: "smtp://mail.example.org", TLSConfig: &tls.Config{InsecureSkipVerify: true}}, TLSStartTLS, 587, "", "", true},
	}
	for _, tc := range cases {
		tc.cfg.From = testFrom
		s, err := New(tc.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", tc.cfg, err)
		}
		st := s.s
		if st.tlsMode != tc.mode || st.port != tc.port || st.user != tc.user || st.pass != tc.pass || st.auth != (tc.user != "") {
			t.Errorf("%s: got mode %s port %d user %q pass %q", tc.cfg.URL, st.tlsMode, st.port, st.user, st.pass)
		}
		if st.timeout != DefaultTimeout || st.tlsConf.ServerName != "mail.example.org" || st.tlsConf.InsecureSkipVerify != tc.insecure {
			t.Errorf("%s: timeout %v server name %q insecure %v", tc.cfg.URL, st.timeout, st.tlsConf.ServerName, st.tlsConf.InsecureSkipVerify)
		}
	}
}

func TestValidateAddress(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"ada@example.org", true},
		{"Ada Lovelace <ada@example.org>", true},
		{"\"ada.l\"@example.org", true},
		{"ada+news@sub.example.org", true},
		{"", false},
		{"   ", false},
		{"ada", false},
		{"ada@", false},
		{"@example.org", false},
		{"ada@example.org, bob@example.org", false},
		{"ada@example.org\r\nBcc: eve@example.org", false},
		{strings.Repeat("a", 65) + "@example.org", false},
		{"ada@" + strings.Repeat("d", 250) + ".org", false},
	}
	for _, tc := range cases {
		err := ValidateAddress(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateAddress(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
