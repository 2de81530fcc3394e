// Package webhook is the webhook channel: a notify.Sender that POSTs the
// notification's JSON document to the recipient's URL, signed with
// HMAC-SHA256 (see Sign and Verify).
//
// Webhook URLs come from users, so the sender refuses to reach loopback,
// private, link-local and other non-public addresses unless
// Config.AllowPrivate is set: ValidateURL checks a URL when it is
// submitted, and the sender's dialer checks every address a host name
// resolves to when it connects, so a name pointing at an internal address
// is refused too.
//
// A request carries
//
//	Content-Type: application/json
//	User-Agent: UMS-Webhook/1
//	X-UMS-Id: <notification id>
//	X-UMS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// Receivers check the signature with Verify (or by computing the HMAC of
// the timestamp, a dot and the raw body with the shared secret) and reject
// old timestamps to stop replays.
//
// Requests go over HTTP/1.1 on keep-alive connections that are reused per
// host, written and read by the sending goroutine itself (client.go).
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/unifiedms/ums/notify"
)

// Header names and values of a webhook request.
const (
	HeaderID        = "X-UMS-Id"
	HeaderSignature = "X-UMS-Signature"
	UserAgent       = "UMS-Webhook/1"
)

// DefaultTimeout bounds one delivery when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

const (
	// maxAnswer is how much of a response body goes into the answer.
	maxAnswer = 4 << 10
	// maxDrain is how much more is read so the connection can be reused.
	maxDrain = 64 << 10
	// maxErrorBody is how much of a response body an error message quotes.
	maxErrorBody = 256
)

// Config configures a Sender.
type Config struct {
	// Secret is the HMAC-SHA256 key of X-UMS-Signature. Required.
	Secret []byte
	// Timeout bounds one delivery: connecting, sending, and reading the
	// answer. 0 means DefaultTimeout.
	Timeout time.Duration
	// AllowHTTP permits http:// URLs; by default only https is used.
	AllowHTTP bool
	// AllowPrivate permits loopback, private, link-local and other
	// non-public destinations. Leave it off for user-supplied URLs.
	AllowPrivate bool
	// Transport, if set, is used (cloned) instead of the default one, e.g.
	// for its TLS settings. Unless AllowPrivate is set, its proxy and dial
	// functions are replaced by the guarded dialer, so it cannot reach
	// what the guard refuses.
	//
	// The sender speaks HTTP/1.1 itself (client.go) and takes from
	// Transport its TLS configuration and idle connection settings. A
	// transport asking for what that client does not do (with
	// AllowPrivate, a proxy or dial function of its own) is used through
	// net/http's client, as are URLs with user info or a non-ASCII host.
	Transport *http.Transport
	// Now is the clock of signatures and Retry-After dates; nil means
	// time.Now.
	Now func() time.Time
}

// Sender delivers webhooks. It is safe for concurrent use.
type Sender struct {
	secret       []byte
	timeout      time.Duration
	allowHTTP    bool
	allowPrivate bool
	now          func() time.Time
	transport    *http.Transport
	client       *http.Client
	// lean, when not nil, sends what it can instead of client (see
	// client.go).
	lean   *leanClient
	signer *signer
	urls   urlCache
}

// urlCache keeps the URLs sent to lately, parsed and checked: the
// notifications of a campaign go to a few endpoints, and parsing the URL
// of each was a tenth of what a send allocated. The URLs it returns are
// shared and must not be changed.
type urlCache struct {
	mu sync.Mutex
	m  map[string]*url.URL
}

// maxCachedURLs bounds the cache; a full cache starts over.
const maxCachedURLs = 1024

// parse returns raw parsed and checked (by check, which is the same for
// every call on one cache), from the cache when it is there.
func (c *urlCache) parse(raw string, check func(string) (*url.URL, error)) (*url.URL, error) {
	c.mu.Lock()
	u := c.m[raw]
	c.mu.Unlock()
	if u != nil {
		return u, nil
	}
	u, err := check(raw)
	if err != nil {
		return nil, err // not kept: a refused URL is rare and cheap to refuse again
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedURLs {
		c.m = make(map[string]*url.URL)
	}
	c.m[raw] = u
	c.mu.Unlock()
	return u, nil
}

var _ notify.Sender = (*Sender)(nil)

// New returns a Sender for cfg.
func New(cfg Config) (*Sender, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: a signing secret is required")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("webhook: negative timeout %v", cfg.Timeout)
	}
	s := &Sender{
		secret:       bytes.Clone(cfg.Secret),
		timeout:      cfg.Timeout,
		allowHTTP:    cfg.AllowHTTP,
		allowPrivate: cfg.AllowPrivate,
		now:          cfg.Now,
	}
	s.signer = newSigner(s.secret)
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if leanTransport(cfg.Transport, s.allowPrivate) {
		dialer := &net.Dialer{KeepAlive: 30 * time.Second}
		if !s.allowPrivate {
			dialer = guardedDialer()
		}
		s.lean = newLeanClient(cfg.Transport, dialer)
	}
	if cfg.Transport != nil {
		s.transport = cfg.Transport.Clone()
	} else {
		s.transport = &http.Transport{
			// No proxy: the guard must see the real destination.
			Proxy:             nil,
			DialContext:       (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2: true,
			// Many workers post to the same few endpoints: without idle
			// connections to reuse, each send would open a connection.
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		}
	}
	if !s.allowPrivate {
		s.transport.Proxy = nil
		s.transport.OnProxyConnectResponse = nil
		s.transport.Dial = nil
		s.transport.DialTLS = nil
		s.transport.DialTLSContext = nil
		s.transport.DialContext = guardedDialer().DialContext
	}
	s.client = &http.Client{
		Transport: s.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return s, nil
}

// Close closes idle connections. The Sender stays usable.
func (s *Sender) Close() error {
	if s.lean != nil {
		s.lean.closeIdle()
	}
	s.transport.CloseIdleConnections()
	return nil
}

// Send POSTs m.Body to m.To. A 2xx answer is a success; the failures are
// classified for notify's retry logic:
//   - refused URLs and destinations, 3xx (redirects are not followed) and
//     4xx other than 408 and 429: permanent;
//   - 408, 429, 5xx, connection errors and timeouts: transient, with the
//     wait of a Retry-After header of a 429 or 503.
func (s *Sender) Send(ctx context.Context, m *notify.Message) (notify.Result, error) {
	if m == nil {
		return notify.Result{}, notify.Permanent(0, errors.New("webhook: no message"))
	}
	u, err := s.urls.parse(m.To, s.checkURL)
	if err != nil {
		return notify.Result{}, notify.Permanent(0, err)
	}
	return s.deliver(ctx, m, u)
}

// ValidateURL is the package's ValidateURL with the sender's settings
// (Config.AllowHTTP, Config.AllowPrivate), for checking submissions: the
// URLs it passes are kept for sending to them.
func (s *Sender) ValidateURL(raw string) error {
	_, err := s.urls.parse(raw, s.checkURL)
	return err
}

// checkURL is parseURL with the sender's settings.
func (s *Sender) checkURL(raw string) (*url.URL, error) {
	return parseURL(raw, s.allowHTTP, s.allowPrivate)
}

// The header names of a request in their canonical form, set without
// canonicalizing them again for every request.
var (
	keyContentType = textproto.CanonicalMIMEHeaderKey("Content-Type")
	keyUserAgent   = textproto.CanonicalMIMEHeaderKey("User-Agent")
	keyID          = textproto.CanonicalMIMEHeaderKey(HeaderID)
	keySignature   = textproto.CanonicalMIMEHeaderKey(HeaderSignature)
	valueJSON      = []string{"application/json"}
	valueUserAgent = []string{UserAgent}
)

// answerBufs hold the start of answers while they are read.
var answerBufs = sync.Pool{New: func() any { return new([maxAnswer]byte) }}

// deliver sends m to u (m.To parsed) without validating it; the dial-time
// guard still applies.
func (s *Sender) deliver(ctx context.Context, m *notify.Message, u *url.URL) (notify.Result, error) {
	if !validHeaderValue(m.ID) {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("webhook: message id %q is not a valid header value", m.ID))
	}
	if s.lean != nil && leanURL(u) {
		return s.deliverLean(ctx, m, u)
	}
	return s.deliverHTTP(ctx, m, u)
}

// deliverHTTP is deliver through net/http's client.
func (s *Sender) deliverHTTP(ctx context.Context, m *notify.Message, u *url.URL) (notify.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	body := m.Body
	host := strings.TrimSuffix(u.Host, ":") // as http.NewRequest has it
	uc := *u                                // the request's own: u is shared (urlCache)
	req := (&http.Request{
		Method:     http.MethodPost,
		URL:        &uc,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			keyContentType: valueJSON,
			keyUserAgent:   valueUserAgent,
			keyID:          {m.ID},
			keySignature:   {s.signer.sign(s.now(), body)},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		ContentLength: int64(len(body)),
		Host:          host,
	}).WithContext(ctx)
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return notify.Result{}, s.classifyError(ctx, u.Host, err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	// A failed or short read leaves what arrived; the status decides
	// regardless.
	buf := answerBufs.Get().(*[maxAnswer]byte)
	n, _ := io.ReadFull(resp.Body, buf[:])
	text := answerText(buf[:n])
	answerBufs.Put(buf)

	return s.result(resp.StatusCode, resp.Status, text, resp.Header.Get("X-Request-Id"), resp.Header.Get("Location"), resp.Header.Get("Retry-After"))
}

// deliverLean is deliver through the lean client.
func (s *Sender) deliverLean(ctx context.Context, m *notify.Message, u *url.URL) (notify.Result, error) {
	if err := ctx.Err(); err != nil {
		return notify.Result{}, s.classifyLeanError(ctx, u, err)
	}
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	bp := requestBufs.Get().(*[]byte)
	req := appendRequest((*bp)[:0], u, m.ID, s.signer, s.now(), m.Body)
	buf := answerBufs.Get().(*[maxAnswer]byte)
	var r response
	n, err := s.lean.post(ctx, u, deadline, req, &r, buf[:])
	if cap(req) <= maxKeptRequestBuffer {
		*bp = req
		requestBufs.Put(bp)
	}
	text := answerText(buf[:n])
	answerBufs.Put(buf)
	if err != nil {
		return notify.Result{}, s.classifyLeanError(ctx, u, err)
	}
	return s.result(r.code, r.status, text, r.requestID, r.location, r.retryAfter)
}

// result classifies an answer: its status code and text, the start of
// its body as text, and the values of its X-Request-Id, Location and
// Retry-After headers.
func (s *Sender) result(code int, status, text, requestID, location, retryAfter string) (notify.Result, error) {
	if status == "" {
		status = strconv.Itoa(code)
	}
	switch {
	case code >= 200 && code < 300:
		answer := status
		if text != "" {
			answer += ": " + text
		}
		return notify.Result{ProviderID: requestID, Answer: answer}, nil
	case code >= 300 && code < 400:
		if location == "" {
			location = "(no Location)"
		}
		return notify.Result{}, notify.Permanent(code, fmt.Errorf("webhook answered %s: redirect to %s not followed", status, location))
	}
	failure := fmt.Errorf("webhook answered %s%s", status, quote(text))
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		return notify.Result{}, notify.Transient(code, notify.RetryAfter(retryAfter, s.now()), failure)
	case code == http.StatusRequestTimeout, code >= 500:
		return notify.Result{}, notify.Transient(code, 0, failure)
	case code >= 400:
		return notify.Result{}, notify.Permanent(code, failure)
	default:
		return notify.Result{}, notify.Transient(code, 0, fmt.Errorf("webhook answered unexpected status %s", status))
	}
}

// classifyLeanError classifies a failed post of the lean client as
// classifyError does net/http's errors, worded as net/http words them.
// The lean client's deadlines are the connection's, so an expired one
// is read from the error; a cancelled context also ends a read as an
// expired deadline, so the context's error comes first.
func (s *Sender) classifyLeanError(ctx context.Context, u *url.URL, err error) error {
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded):
		err = context.DeadlineExceeded
	}
	err = &url.Error{Op: "Post", URL: u.String(), Err: err}
	var refused *refusedDialError
	if errors.As(err, &refused) {
		return notify.Permanent(0, fmt.Errorf("webhook %s: %w", u.Host, refused))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return notify.Transient(0, 0, fmt.Errorf("webhook: timed out: %w", err))
	}
	return notify.Transient(0, 0, fmt.Errorf("webhook: %w", err))
}

// classifyError classifies a failed round trip.
func (s *Sender) classifyError(ctx context.Context, host string, err error) error {
	var refused *refusedDialError
	if errors.As(err, &refused) {
		return notify.Permanent(0, fmt.Errorf("webhook %s: %w", host, refused))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return notify.Transient(0, 0, fmt.Errorf("webhook: timed out: %w", err))
	}
	return notify.Transient(0, 0, fmt.Errorf("webhook: %w", err))
}

// answerText makes a response body printable for an answer or an error.
func answerText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// quote returns ": text", shortened, or "" for no text.
func quote(text string) string {
	if text == "" {
		return ""
	}
	if len(text) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	return ": " + text
}

// validHeaderValue reports whether v can be sent as a header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
