// Package sms is the SMS channel: a notify.Sender that sends text messages
// (and MMS, when a message carries media URLs) through Twilio's Programmable
// Messaging API, with the twilio-go library's client and 2010-04-01 API
// packages.
//
// One send is one request:
//
//	POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json
//	Authorization: Basic base64(AccountSID:AuthToken)
//	Content-Type: application/x-www-form-urlencoded
//
//	To=+15005550006&From=+15005550001&Body=...&MediaUrl=https://...&StatusCallback=https://...
//
// (MessagingServiceSid replaces or joins From when a messaging service is
// configured.) Twilio answers 201 with the Message resource, whose sid is
// the Result's ProviderID, or an error document
// {"code":21211,"message":"...","more_info":"...","status":400} that Send
// classifies (see Send).
//
// Segments counts the GSM-7 or UCS-2 segments a text is billed as, and
// CheckSegments refuses texts longer than a limit when they are submitted.
// Twilio reports delivery later to the StatusCallback URL; ParseCallback
// verifies such a request's X-Twilio-Signature (see VerifySignature) and
// returns its status.
package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/unifiedms/ums/notify"
)

// Provider is the Result.Provider of messages this package sends.
const Provider = "twilio"

// DefaultBaseURL is Twilio's API host.
const DefaultBaseURL = "https://api.twilio.com"

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// MaxMedia is the most media URLs Twilio takes in one message.
const MaxMedia = 10

const (
	// maxAnswer bounds how much of an answer the library may decode.
	maxAnswer = 1 << 20
	// maxDrain is how much more is read so the connection can be reused.
	maxDrain = 64 << 10
)

// Twilio error codes given a meaning of their own by Send.
const (
	CodeInvalidNumber      = 21211 // the To number is not a valid phone number
	CodeQueueFull          = 21611 // the From number's queue is full (10 hours of messages)
	CodeNotMobile          = 21614 // the To number is not a mobile number
	CodeUnsubscribed       = 21610 // the recipient replied STOP
	CodeTooManyRequests    = 20429 // Twilio's rate limit
	CodeInternalError      = 20500
	CodeServiceUnavailable = 20503
)

// transientCodes are Twilio error codes worth retrying even when the HTTP
// status is a 4xx.
var transientCodes = map[int]bool{
	CodeTooManyRequests:    true,
	CodeQueueFull:          true,
	CodeInternalError:      true,
	CodeServiceUnavailable: true,
}

// APIError is an error answer of Twilio's API, wrapped by Send's
// failures.
type APIError struct {
	Status   int    // the HTTP status
	Code     int    // Twilio's error code, 0 without an error document
	Message  string // Twilio's message
	MoreInfo string // the URL of the code's documentation
}

func (e *APIError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("twilio answered %d %s", e.Status, http.StatusText(e.Status))
	}
	s := fmt.Sprintf("twilio answered %d, error %d: %s", e.Status, e.Code, e.Message)
	if e.MoreInfo != "" {
		s += " (" + e.MoreInfo + ")"
	}
	return s
}

// ErrInvalidNumber is wrapped by the error of a To that is not an E.164
// number.
var ErrInvalidNumber = errors.New("not an E.164 phone number")

var (
	e164      = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	sidFormat = regexp.MustCompile(`^[A-Z]{2}[0-9a-fA-F]{32}$`)
	alnum     = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// Config configures a Sender.
type Config struct {
	// AccountSID is the account (AC followed by 32 hex digits). Required.
	AccountSID string
	// AuthToken is the account's auth token: the password of the API's
	// basic authentication and the key of callback signatures. Required.
	AuthToken string
	// From is the sender: a Twilio number in E.164 form, a short code or
	// an alphanumeric sender ID. From or MessagingServiceSID is required;
	// with both, From picks a sender of the service's pool.
	From string
	// MessagingServiceSID is a messaging service (MG followed by 32 hex
	// digits) whose sender pool Twilio chooses From from.
	MessagingServiceSID string
	// StatusCallback, when set, is sent with every message: the absolute
	// URL Twilio POSTs status changes to, usually CallbackURL(publicURL).
	StatusCallback string
	// MaxSegments, when positive, makes Send refuse SMS texts of more
	// segments (see Segments) as a permanent failure.
	MaxSegments int
	// Timeout bounds one Send. 0 means DefaultTimeout.
	Timeout time.Duration
	// BaseURL replaces DefaultBaseURL: a regional edge such as
	// https://api.dublin.ie1.twilio.com, or a local server in tests. An
	// http URL is accepted.
	BaseURL string
	// Transport, if set, carries the requests (e.g. for its TLS
	// settings); nil means a transport of its own.
	Transport http.RoundTripper
	// Now is the clock of Retry-After dates; nil means time.Now.
	Now func() time.Time
}

// Sender sends SMS and MMS through Twilio. It is safe for concurrent use.
type Sender struct {
	accountSID     string
	authToken      string
	from           string
	serviceSID     string
	statusCallback string
	maxSegments    int
	timeout        time.Duration
	base           *url.URL // nil: the library's own host
	transport      http.RoundTripper
	now            func() time.Time
}

var _ notify.Sender = (*Sender)(nil)

// New returns a Sender for cfg, or an error naming what is wrong in it.
func New(cfg Config) (*Sender, error) {
	if !sidFormat.MatchString(cfg.AccountSID) || !strings.HasPrefix(cfg.AccountSID, "AC") {
		return nil, fmt.Errorf("sms: account SID %q is not AC followed by 32 hex digits", cfg.AccountSID)
	}
	if !alnum.MatchString(cfg.AuthToken) {
		return nil, errors.New("sms: an auth token (letters and digits) is required")
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		return nil, errors.New("sms: a From sender or a messaging service SID is required")
	}
	if cfg.MessagingServiceSID != "" && (!sidFormat.MatchString(cfg.MessagingServiceSID) || !strings.HasPrefix(cfg.MessagingServiceSID, "MG")) {
		return nil, fmt.Errorf("sms: messaging service SID %q is not MG followed by 32 hex digits", cfg.MessagingServiceSID)
	}
	if strings.ContainsAny(cfg.From, "\r\n") {
		return nil, fmt.Errorf("sms: From %q has a line break", cfg.From)
	}
	if cfg.StatusCallback != "" {
		if err := checkHTTPURL(cfg.StatusCallback, false); err != nil {
			return nil, fmt.Errorf("sms: status callback: %w", err)
		}
	}
	if cfg.MaxSegments < 0 {
		return nil, fmt.Errorf("sms: negative max segments %d", cfg.MaxSegments)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("sms: negative timeout %v", cfg.Timeout)
	}
	s := &Sender{
		accountSID:     cfg.AccountSID,
		authToken:      cfg.AuthToken,
		from:           cfg.From,
		serviceSID:     cfg.MessagingServiceSID,
		statusCallback: cfg.StatusCallback,
		maxSegments:    cfg.MaxSegments,
		timeout:        cfg.Timeout,
		transport:      cfg.Transport,
		now:            cfg.Now,
	}
	if cfg.BaseURL != "" {
		if err := checkHTTPURL(cfg.BaseURL, true); err != nil {
			return nil, fmt.Errorf("sms: base URL: %w", err)
		}
		s.base, _ = url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.transport == nil {
		s.transport = notify.HTTPTransport()
	}
	return s, nil
}

// checkHTTPURL checks that raw is an absolute http(s) URL with a host
// (and, for a base, no query or fragment).
func checkHTTPURL(raw string, base bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if base && (u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("%q has a query or fragment", raw)
	}
	return nil
}

// Close closes idle connections of the Sender's own transport. The Sender
// stays usable.
func (s *Sender) Close() error {
	if t, ok := s.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// ValidateNumber checks that to is an E.164 number: a plus sign and up to
// 15 digits, the first not 0.
func ValidateNumber(to string) error {
	if !e164.MatchString(to) {
		return fmt.Errorf("sms: %q: %w", to, ErrInvalidNumber)
	}
	return nil
}

// validateMedia checks MMS media URLs: at most MaxMedia, absolute https.
func validateMedia(media []string) error {
	if len(media) > MaxMedia {
		return fmt.Errorf("sms: %d media URLs, Twilio takes at most %d", len(media), MaxMedia)
	}
	for _, m := range media {
		u, err := url.Parse(m)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("sms: media URL %q is not an absolute https URL", m)
		}
	}
	return nil
}

// Send sends m.Text to the E.164 number m.To, as an MMS when m.Media lists
// pictures. The Result carries Twilio's message SID and the segments the
// text is billed as (an MMS counts as one).
//
// Failures are classified for notify's retry logic; the notify.Error's
// Code is Twilio's error code when the answer has one, else the HTTP
// status:
//   - a To that is not E.164, bad media URLs, an empty message, a text
//     over MaxSegments: permanent, without a request;
//   - 429 and error 20429 (rate limited), 21611 (the sender's queue is
//     full), 5xx, connection errors and timeouts: transient, with the
//     wait of a Retry-After header;
//   - other 4xx, such as 21211 (invalid number), 21610 (the recipient
//     unsubscribed) or 21614 (not a mobile number): permanent.
func (s *Sender) Send(ctx context.Context, m *notify.Message) (notify.Result, error) {
	if m == nil {
		return notify.Result{}, notify.Permanent(0, errors.New("sms: no message"))
	}
	if err := ValidateNumber(m.To); err != nil {
		return notify.Result{}, notify.Permanent(0, err)
	}
	if m.Text == "" && len(m.Media) == 0 {
		return notify.Result{}, notify.Permanent(0, errors.New("sms: empty message"))
	}
	if err := validateMedia(m.Media); err != nil {
		return notify.Result{}, notify.Permanent(0, err)
	}
	segments := 1
	if len(m.Media) == 0 {
		segments, _ = Segments(m.Text)
		if err := CheckSegments(m.Text, s.maxSegments); err != nil {
			return notify.Result{}, notify.Permanent(0, err)
		}
	}

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	if s.from != "" {
		params.SetFrom(s.from)
	}
	if s.serviceSID != "" {
		params.SetMessagingServiceSid(s.serviceSID)
	}
	if m.Text != "" {
		params.SetBody(m.Text)
	}
	if len(m.Media) > 0 {
		params.SetMediaUrl(m.Media)
	}
	if s.statusCallback != "" {
		params.SetStatusCallback(s.statusCallback)
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rt := &roundTrip{ctx: ctx, base: s.base, next: s.transport}
	c := &client.Client{
		Credentials: client.NewCredentials(s.accountSID, s.authToken),
		HTTPClient: &http.Client{
			Transport: rt,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	c.SetAccountSid(s.accountSID)
	// A RequestHandler of its own, not NewRequestHandler: that one reads
	// TWILIO_EDGE and TWILIO_REGION from the environment, and the host
	// belongs to the configuration (BaseURL).
	api := openapi.NewApiService(&client.RequestHandler{Client: c})
	msg, err := api.CreateMessage(params)
	rt.done()

	status := 0
	var header http.Header
	if rt.resp != nil {
		status, header = rt.resp.StatusCode, rt.resp.Header
	}
	if err != nil && !(status >= 200 && status < 300) {
		return notify.Result{}, s.classify(ctx, status, header, err)
	}
	res := notify.Result{Provider: Provider, Segments: segments, Answer: statusText(rt.resp)}
	switch {
	case status >= 300:
		return notify.Result{}, notify.Permanent(status, fmt.Errorf("twilio answered %s, not a message", res.Answer))
	case err != nil:
		// Twilio took the message (2xx) but its answer could not be read.
		// Retrying would send the text twice, so this is a success
		// without an id.
		res.Answer += " (answer unreadable: " + err.Error() + ")"
	default:
		if msg.Sid != nil {
			res.ProviderID = *msg.Sid
		}
		if msg.Status != nil {
			res.Answer += ": " + *msg.Status
		}
	}
	return res, nil
}

// classify turns a failed CreateMessage into a notify error. status is
// the HTTP status of the answer, 0 if none arrived.
func (s *Sender) classify(ctx context.Context, status int, header http.Header, err error) error {
	var rest *client.TwilioRestError
	if !errors.As(err, &rest) {
		rest = nil
	}
	if status == 0 && rest == nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return notify.Transient(0, 0, fmt.Errorf("twilio: timed out: %w", err))
		}
		return notify.Transient(0, 0, fmt.Errorf("twilio: %w", err))
	}
	if status == 0 {
		status = rest.Status
	}
	code := status
	var failure error
	if rest != nil && rest.Code != 0 {
		code = rest.Code
		failure = &APIError{Status: status, Code: rest.Code, Message: rest.Message, MoreInfo: rest.MoreInfo}
	} else {
		// No error document (a proxy's page, an empty body).
		failure = &APIError{Status: status}
	}
	if status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500 || transientCodes[code] {
		return notify.Transient(code, notify.RetryAfter(header.Get("Retry-After"), s.now()), failure)
	}
	return notify.Permanent(code, failure)
}

// statusText is "201 Created", or "" without an answer.
func statusText(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	if resp.Status != "" {
		return resp.Status
	}
	return strconv.Itoa(resp.StatusCode)
}

// roundTrip carries one Send's request. The library builds its requests
// without a context and keeps no answer headers on errors, so this
// transport gives the request Send's context (its deadline and
// cancellation), points it at the configured base URL, and keeps the
// answer for classification (status, Retry-After). One Send uses one
// roundTrip, from one goroutine.
type roundTrip struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper
	resp *http.Response
}

func (t *roundTrip) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(t.ctx)
	if t.base != nil {
		r.URL.Scheme = t.base.Scheme
		r.URL.Host = t.base.Host
		r.URL.Path = t.base.Path + r.URL.Path
		r.URL.RawPath = ""
		r.Host = ""
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{Reader: io.LimitReader(resp.Body, maxAnswer), body: resp.Body}
	t.resp = resp
	return resp, nil
}

// done drains and closes the answer: the library does not close the body
// of an error answer.
func (t *roundTrip) done() {
	if t.resp == nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(t.resp.Body.(*limitedBody).body, maxDrain))
	t.resp.Body.Close()
}

// limitedBody bounds what the library may read of an answer.
type limitedBody struct {
	io.Reader
	body io.ReadCloser
}

func (b *limitedBody) Close() error { return b.body.Close() }
