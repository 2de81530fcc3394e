// Package gateway is a notification channel configured entirely by data:
// a notify.Sender that sends each message as one HTTP request built from
// templates and reads the answer with JSON paths, so SMS and KakaoTalk
// gateways (NCP SENS, Alimtalk resellers, carriers' HTTP APIs) plug in
// from the configuration file without code. Several gateways may be
// configured, each under its own Name, which is its channel name.
//
// A request is built from Config.URL, Config.Headers and Config.Body,
// each a text/template rendered with a Data (the message's fields and
// this request's time and nonce). ${NAME} in them is replaced by the
// environment variable NAME once, when the gateway is created, so
// secrets stay out of the file; message content is never expanded.
// Header templates also see the request's method, path and body, enough
// to sign requests: NCP's API gateway signature is
//
//	{{printf "%s %s\n%s\n%s" .Method .Path .Timestamp "${NCP_ACCESS_KEY}" | hmacSHA256 "${NCP_SECRET_KEY}" | base64}}
//
// The answer decides success: a 2xx status and, when Config.SuccessPath
// is set, a JSON answer whose value at that path is one of
// Config.SuccessValues. Failures are classified (see Sender.Send) by the
// provider's error code, read at Config.ErrorPath and looked up in
// Config.Errors, and otherwise by the HTTP status as for webhooks.
//
// deployments/gateways.example.yaml shows an NCP SENS SMS gateway and a
// KakaoTalk Alimtalk one.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/unifiedms/ums/notify"
)

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// UserAgent is sent unless Config.Headers sets one.
const UserAgent = "UMS-Gateway/1"

// Classes of Config.Errors.
const (
	Transient = "transient"
	Permanent = "permanent"
)

const (
	// maxAnswer is how much of an answer is read.
	maxAnswer = 64 << 10
	// maxDrain is how much more is read so the connection can be reused.
	maxDrain = 64 << 10
	// maxQuote is how much of an answer an answer or error quotes.
	maxQuote = 256
)

var (
	validName   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	headerToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// Config configures one gateway. Its yaml names are those of the server's
// configuration file (a gateways: list of them).
type Config struct {
	// Name names the gateway: its channel name and the Result's Provider.
	// Lower case letters, digits, - and _; required.
	Name string `yaml:"name"`
	// Method is the HTTP method: POST (the default), PUT, PATCH or GET.
	Method string `yaml:"method"`
	// URL is the request's absolute http(s) URL, a template.
	URL string `yaml:"url"`
	// Headers are the request's headers; each value is a template.
	// Content-Type is set by ContentType instead.
	Headers map[string]string `yaml:"headers"`
	// Body is the request body, a template; empty sends none. Its JSON
	// helpers are json (a value's JSON: {{json .Text}}) and jsonEscape.
	Body string `yaml:"body"`
	// ContentType is the body's type; default application/json. A JSON
	// body that does not render to valid JSON is not sent.
	ContentType string `yaml:"content_type"`
	// SuccessPath, when set, is the dot path into the JSON answer
	// ("statusCode", "result.code", "messages.0.status") whose value
	// must be one of SuccessValues for a 2xx answer to be a success.
	SuccessPath   string   `yaml:"success_path"`
	SuccessValues []string `yaml:"success_values"`
	// IDPath is the path of the provider's id of the message (the
	// Result's ProviderID).
	IDPath string `yaml:"id_path"`
	// ErrorPath is the path of the provider's error code in a failed
	// answer. Without it, the value at SuccessPath is the code.
	ErrorPath string `yaml:"error_path"`
	// MessagePath is the path of the provider's error text, quoted in
	// failures instead of the answer's start.
	MessagePath string `yaml:"message_path"`
	// Errors classifies provider error codes as "transient" or
	// "permanent"; it takes precedence over the HTTP status.
	Errors map[string]string `yaml:"errors"`
	// Timeout bounds one Send. 0 means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`

	// Transport, if set, carries the requests (e.g. for TLS settings).
	Transport http.RoundTripper `yaml:"-"`
	// Now is the clock of .Now, .Timestamp and Retry-After dates; nil
	// means time.Now.
	Now func() time.Time `yaml:"-"`
}

// Sender sends messages through one gateway. It is safe for concurrent
// use.
type Sender struct {
	name          string
	method        string
	url           *template.Template
	headers       map[string]*template.Template
	body          *template.Template // nil: no body
	contentType   string
	jsonBody      bool
	successPath   string
	successValues []string
	idPath        string
	errorPath     string
	messagePath   string
	errors        map[string]bool // code -> permanent
	timeout       time.Duration
	transport     http.RoundTripper
	client        *http.Client
	now           func() time.Time
}

var _ notify.Sender = (*Sender)(nil)

// New checks cfg, expands its ${NAME} references, parses its templates
// and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if !validName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("gateway: name %q: use lower case letters, digits, - and _ (at most 32)", cfg.Name)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("gateway %s: "+format, append([]any{cfg.Name}, args...)...)
	}
	s := &Sender{
		name:          cfg.Name,
		method:        strings.ToUpper(cfg.Method),
		headers:       make(map[string]*template.Template, len(cfg.Headers)),
		contentType:   cfg.ContentType,
		successPath:   cfg.SuccessPath,
		successValues: slices.Clone(cfg.SuccessValues),
		idPath:        cfg.IDPath,
		errorPath:     cfg.ErrorPath,
		messagePath:   cfg.MessagePath,
		errors:        make(map[string]bool, len(cfg.Errors)),
		timeout:       cfg.Timeout,
		transport:     cfg.Transport,
		now:           cfg.Now,
	}
	switch s.method {
	case "":
		s.method = http.MethodPost
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodGet:
	default:
		return nil, fail("method %q: use POST, PUT, PATCH or GET", cfg.Method)
	}

	var err error
	parseExpanded := func(what, text string) (*template.Template, error) {
		text, err := expandEnv(text, lookupEnv)
		if err != nil {
			return nil, fail("%s: %v", what, err)
		}
		t, err := parse(what, text)
		if err != nil {
			return nil, fail("%v", err)
		}
		return t, nil
	}
	if cfg.URL == "" {
		return nil, fail("a url is required")
	}
	if s.url, err = parseExpanded("url", cfg.URL); err != nil {
		return nil, err
	}
	if !strings.Contains(cfg.URL, "{{") {
		// A fixed URL is checked now rather than at the first send.
		u, _ := render(s.url, &Data{})
		if err := checkURL(u); err != nil {
			return nil, fail("%v", err)
		}
	}
	for name, value := range cfg.Headers {
		if !headerToken.MatchString(name) {
			return nil, fail("header name %q is not valid", name)
		}
		if strings.EqualFold(name, "Content-Type") {
			return nil, fail("set the Content-Type header with content_type")
		}
		if s.headers[http.CanonicalHeaderKey(name)], err = parseExpanded("header "+name, value); err != nil {
			return nil, err
		}
	}
	if cfg.Body != "" {
		if s.body, err = parseExpanded("body", cfg.Body); err != nil {
			return nil, err
		}
		if s.contentType == "" {
			s.contentType = "application/json"
		}
		mt, _, err := mime.ParseMediaType(s.contentType)
		if err != nil {
			return nil, fail("content type %q: %v", s.contentType, err)
		}
		s.jsonBody = mt == "application/json" || strings.HasSuffix(mt, "+json")
	}

	for what, path := range map[string]string{"success_path": cfg.SuccessPath, "id_path": cfg.IDPath, "error_path": cfg.ErrorPath, "message_path": cfg.MessagePath} {
		if path != "" && !validPath(path) {
			return nil, fail("%s %q is not a dot path", what, path)
		}
	}
	if cfg.SuccessPath != "" && len(cfg.SuccessValues) == 0 {
		return nil, fail("success_path needs success_values")
	}
	if cfg.SuccessPath == "" && len(cfg.SuccessValues) > 0 {
		return nil, fail("success_values needs a success_path")
	}
	for code, class := range cfg.Errors {
		switch strings.ToLower(class) {
		case Transient:
			s.errors[code] = false
		case Permanent:
			s.errors[code] = true
		default:
			return nil, fail("errors: code %q is %q, not transient or permanent", code, class)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fail("negative timeout %v", cfg.Timeout)
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
	s.client = &http.Client{
		Transport: s.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return s, nil
}

// Name is the gateway's name.
func (s *Sender) Name() string { return s.name }

// Close closes idle connections of the Sender's own transport. The Sender
// stays usable.
func (s *Sender) Close() error {
	if t, ok := s.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// checkURL checks that u is an absolute http(s) URL with a host.
func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("url: %v", err)
	}
	if (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return fmt.Errorf("url %q is not an absolute http(s) URL", u)
	}
	return nil
}

// Send renders the request for m, sends it and reads the answer.
//
// A 2xx answer is a success when no SuccessPath is configured, or when
// the JSON answer's value there is one of SuccessValues. Otherwise the
// failure is classified:
//   - a provider error code (at ErrorPath, else at SuccessPath) listed
//     in Errors: as listed;
//   - a 2xx answer that is not JSON: transient (a maintenance page);
//   - any other 2xx answer: permanent (the gateway refused the message);
//   - 408, 429, 5xx, connection errors and timeouts: transient, with the
//     wait of a Retry-After header;
//   - 3xx (not followed) and other 4xx: permanent;
//   - a template that fails to render (a missing .Data key) or renders
//     invalid JSON: permanent, without a request.
//
// The notify.Error's Code is the provider's code when it is a number,
// else the HTTP status.
func (s *Sender) Send(ctx context.Context, m *notify.Message) (notify.Result, error) {
	if m == nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("gateway %s: no message", s.name))
	}
	if m.To == "" {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("gateway %s: no recipient", s.name))
	}
	req, err := s.request(ctx, m)
	if err != nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("gateway %s: %w", s.name, err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return notify.Result{}, notify.Transient(0, 0, fmt.Errorf("gateway %s: timed out: %w", s.name, err))
		}
		return notify.Result{}, notify.Transient(0, 0, fmt.Errorf("gateway %s: %w", s.name, err))
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	// A failed read leaves what arrived; the status and answer decide.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return s.answer(resp, body)
}

// request renders the request for m.
func (s *Sender) request(ctx context.Context, m *notify.Message) (*http.Request, error) {
	now := s.now().UTC()
	var nonce [16]byte
	rand.Read(nonce[:])
	d := &Data{
		Gateway: s.name,
		ID:      m.ID, Channel: m.Channel, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
		Class: m.Class, Tenant: m.Tenant, Tags: m.Tags, Media: m.Media, Data: m.Data, Attempt: m.Attempt,
		Now:       now,
		Timestamp: strconv.FormatInt(now.UnixMilli(), 10),
		Unix:      strconv.FormatInt(now.Unix(), 10),
		Nonce:     hex.EncodeToString(nonce[:]),
		Method:    s.method,
	}
	if d.Data == nil {
		d.Data = map[string]any{}
	}
	rawURL, err := render(s.url, d)
	if err != nil {
		return nil, err
	}
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL)
	d.Path = u.RequestURI()

	var body io.Reader = http.NoBody
	if s.body != nil {
		if d.Body, err = render(s.body, d); err != nil {
			return nil, err
		}
		if s.jsonBody && !json.Valid([]byte(d.Body)) {
			return nil, fmt.Errorf("the body template rendered invalid JSON (use {{json .Field}} for values): %s", clip(d.Body))
		}
		body = strings.NewReader(d.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.method, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if s.body != nil {
		req.Header.Set("Content-Type", s.contentType)
	}
	for name, t := range s.headers {
		v, err := render(t, d)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("header %s rendered a line break", name)
		}
		req.Header.Set(name, v)
	}
	return req, nil
}

// answer classifies the gateway's answer.
func (s *Sender) answer(resp *http.Response, body []byte) (notify.Result, error) {
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode)
	}
	code := resp.StatusCode
	doc, isJSON := decodeAnswer(body)
	get := func(path string) (string, bool) {
		if !isJSON || path == "" {
			return "", false
		}
		return lookup(doc, path)
	}

	ok2xx := code >= 200 && code < 300
	if ok2xx {
		v, found := get(s.successPath)
		if s.successPath == "" || (found && slices.Contains(s.successValues, v)) {
			id, _ := get(s.idPath)
			answer := status
			if text := printable(body); text != "" {
				answer += ": " + clip(text)
			}
			return notify.Result{ProviderID: id, Provider: s.name, Answer: answer}, nil
		}
	}

	providerCode, found := get(s.errorPath)
	if !found {
		providerCode, _ = get(s.successPath)
	}
	text, found := get(s.messagePath)
	if !found {
		text = printable(body)
	}
	desc := fmt.Sprintf("gateway %s answered %s", s.name, status)
	if providerCode != "" {
		desc += ", code " + providerCode
	}
	if text != "" {
		desc += ": " + clip(text)
	}
	failure := errors.New(desc)
	errCode := code
	if n, err := strconv.Atoi(providerCode); err == nil {
		errCode = n
	}
	retryAfter := notify.RetryAfter(resp.Header.Get("Retry-After"), s.now())

	if permanent, listed := s.errors[providerCode]; listed && providerCode != "" {
		if permanent {
			return notify.Result{}, notify.Permanent(errCode, failure)
		}
		return notify.Result{}, notify.Transient(errCode, retryAfter, failure)
	}
	switch {
	case ok2xx && !isJSON:
		return notify.Result{}, notify.Transient(errCode, retryAfter, fmt.Errorf("%w (not a JSON answer)", failure))
	case ok2xx:
		return notify.Result{}, notify.Permanent(errCode, failure)
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		return notify.Result{}, notify.Transient(errCode, retryAfter, failure)
	default:
		return notify.Result{}, notify.Permanent(errCode, failure)
	}
}

// printable makes an answer printable for an answer or an error.
func printable(b []byte) string {
	b = bytes.TrimSpace(b)
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// clip shortens text to maxQuote bytes.
func clip(text string) string {
	if len(text) <= maxQuote {
		return text
	}
	cut := maxQuote
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "..."
}
