package sms_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/sms"
	"github.com/unifiedms/ums/notify"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfeedf00dfeedf00dfeedf00dfeed"
	serviceSID = "MG00112233445566778899aabbccddeeff"
	fromNumber = "+15005550006"
	toNumber   = "+821012345678"
	callback   = "https://ums.example.com/api/v1/callbacks/twilio"
)

var clock = time.Unix(1700000000, 0)

// twilio is a local server speaking the Messages API's wire format. It
// checks what every request must carry (path, basic auth, form encoding)
// and hands the form to answer.
type twilio struct {
	*httptest.Server
	t        *testing.T
	requests atomic.Int32
	mu       sync.Mutex
	forms    []url.Values
	answer   func(w http.ResponseWriter, form url.Values)
}

func newTwilio(t *testing.T, answer func(w http.ResponseWriter, form url.Values)) *twilio {
	t.Helper()
	tw := &twilio{t: t, answer: answer}
	tw.Server = httptest.NewServer(http.HandlerFunc(tw.serve))
	t.Cleanup(tw.Close)
	return tw
}

func (tw *twilio) serve(w http.ResponseWriter, r *http.Request) {
	tw.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	if want := "/2010-04-01/Accounts/" + accountSID + "/Messages.json"; r.Method != http.MethodPost || r.URL.Path != want {
		tw.t.Errorf("request %s %s, want POST %s", r.Method, r.URL.Path, want)
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}`)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != accountSID || pass != authToken {
		tw.t.Errorf("basic auth %q:%q (%v)", user, pass, ok)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		tw.t.Errorf("Content-Type %q", ct)
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "twilio-go/") {
		tw.t.Errorf("User-Agent %q, want the twilio-go library's", ua)
	}
	if err := r.ParseForm(); err != nil {
		tw.t.Errorf("form: %v", err)
	}
	tw.mu.Lock()
	tw.forms = append(tw.forms, r.PostForm)
	tw.mu.Unlock()
	tw.answer(w, r.PostForm)
}

func (tw *twilio) lastForm() url.Values {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if len(tw.forms) == 0 {
		tw.t.Fatal("no request reached the server")
	}
	return tw.forms[len(tw.forms)-1]
}

// created answers like Twilio to a created message.
func created(sid string) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, f url.Values) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"account_sid":%q,"api_version":"2010-04-01","body":%q,`+
			`"date_created":"Tue, 14 Nov 2023 22:13:20 +0000","date_sent":null,"date_updated":"Tue, 14 Nov 2023 22:13:20 +0000",`+
			`"direction":"outbound-api","error_code":null,"error_message":null,"from":%q,"messaging_service_sid":%q,`+
			`"num_media":"%d","num_segments":"1","price":null,"price_unit":"USD","sid":%q,"status":"queued",`+
			`"subresource_uris":{"media":"/2010-04-01/Accounts/%s/Messages/%s/Media.json"},"to":%q,`+
			`"uri":"/2010-04-01/Accounts/%s/Messages/%s.json"}`,
			accountSID, f.Get("Body"), f.Get("From"), f.Get("MessagingServiceSid"), len(f["MediaUrl"]), sid,
			accountSID, sid, f.Get("To"), accountSID, sid)
	}
}

// twilioError answers with Twilio's error document.
func twilioError(status, code int, header map[string]string) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, _ url.Values) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"code":%d,"message":"error %d for the test","more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`,
			code, code, code, status)
	}
}

func newSender(t *testing.T, base string, change func(*sms.Config)) *sms.Sender {
	t.Helper()
	cfg := sms.Config{
		AccountSID:     accountSID,
		AuthToken:      authToken,
		From:           fromNumber,
		StatusCallback: callback,
		Timeout:        5 * time.Second,
		BaseURL:        base,
		Now:            func() time.Time { return clock },
	}
	if change != nil {
		change(&cfg)
	}
	s, err := sms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(text string) *notify.Message {
	return &notify.Message{ID: "n-1", Channel: "sms", To: toNumber, Text: text, Attempt: 1}
}

// classified returns err's *notify.Error or fails the test.
func classified(t *testing.T, err error) *notify.Error {
	t.Helper()
	var e *notify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *notify.Error", err, err)
	}
	return e
}

// only checks that form has exactly the fields of want.
func only(t *testing.T, form url.Values, want url.Values) {
	t.Helper()
	for k, v := range want {
		if !slices.Equal(form[k], v) {
			t.Errorf("%s = %q, want %q", k, form[k], v)
		}
	}
	for k := range form {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %s = %q", k, form[k])
		}
	}
}

func TestSendSMS(t *testing.T) {
	tw := newTwilio(t, created("SM0123456789abcdef0123456789abcdef"))
	text := "Your code is 123456. Don't share it {ever}."
	res, err := newSender(t, tw.URL, nil).Send(context.Background(), message(text))
	if err != nil {
		t.Fatal(err)
	}
	want := notify.Result{
		ProviderID: "SM0123456789abcdef0123456789abcdef",
		Provider:   "twilio",
		Answer:     "201 Created: queued",
		Segments:   1,
	}
	if res != want {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
	only(t, tw.lastForm(), url.Values{
		"To":             {toNumber},
		"From":           {fromNumber},
		"Body":           {text},
		"StatusCallback": {callback},
	})
}

func TestSendSegmentsOfLongText(t *testing.T) {
	tw := newTwilio(t, created("SM1"))
	text := strings.Repeat("한", 150) // UCS-2: 67 a part
	res, err := newSender(t, tw.URL, nil).Send(context.Background(), message(text))
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != 3 {
		t.Errorf("Segments = %d, want 3", res.Segments)
	}
	if got := tw.lastForm().Get("Body"); got != text {
		t.Errorf("Body = %q", got)
	}
}

func TestSendMMS(t *testing.T) {
	tw := newTwilio(t, created("MM0123456789abcdef0123456789abcdef"))
	m := message("Your receipt")
	m.Media = []string{"https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg?sig=1&x=2"}
	res, err := newSender(t, tw.URL, nil).Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "MM0123456789abcdef0123456789abcdef" || res.Segments != 1 {
		t.Errorf("Result = %+v", res)
	}
	only(t, tw.lastForm(), url.Values{
		"To":             {toNumber},
		"From":           {fromNumber},
		"Body":           {"Your receipt"},
		"MediaUrl":       m.Media,
		"StatusCallback": {callback},
	})

	// Pictures alone, no text.
	m.Text = ""
	m.Media = m.Media[:1]
	if _, err := newSender(t, tw.URL, nil).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	only(t, tw.lastForm(), url.Values{
		"To":             {toNumber},
		"From":           {fromNumber},
		"MediaUrl":       m.Media,
		"StatusCallback": {callback},
	})
}

func TestSendMessagingService(t *testing.T) {
	tw := newTwilio(t, created("SM2"))
	s := newSender(t, tw.URL, func(c *sms.Config) {
		c.From = ""
		c.MessagingServiceSID = serviceSID
		c.StatusCallback = ""
	})
	if _, err := s.Send(context.Background(), message("hi")); err != nil {
		t.Fatal(err)
	}
	only(t, tw.lastForm(), url.Values{
		"To":                  {toNumber},
		"MessagingServiceSid": {serviceSID},
		"Body":                {"hi"},
	})

	// Both: From picks the sender in the service's pool.
	s = newSender(t, tw.URL, func(c *sms.Config) { c.MessagingServiceSID = serviceSID })
	if _, err := s.Send(context.Background(), message("hi")); err != nil {
		t.Fatal(err)
	}
	only(t, tw.lastForm(), url.Values{
		"To":                  {toNumber},
		"From":                {fromNumber},
		"MessagingServiceSid": {serviceSID},
		"Body":                {"hi"},
		"StatusCallback":      {callback},
	})
}

func TestSendErrors(t *testing.T) {
	httpDate := clock.Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name       string
		answer     func(http.ResponseWriter, url.Values)
		permanent  bool
		code       int
		retryAfter time.Duration
		say        string
	}{
		{"invalid number", twilioError(400, 21211, nil), true, 21211, 0, "error 21211"},
		{"unsubscribed", twilioError(400, 21610, nil), true, 21610, 0, "error 21610"},
		{"not mobile", twilioError(400, 21614, nil), true, 21614, 0, "https://www.twilio.com/docs/errors/21614"},
		{"auth", twilioError(401, 20003, nil), true, 20003, 0, "answered 401"},
		{"not found", twilioError(404, 20404, nil), true, 20404, 0, "error 20404"},
		{"rate limited", twilioError(429, 20429, map[string]string{"Retry-After": "3"}), false, 20429, 3 * time.Second, "error 20429"},
		{"rate limited, date", twilioError(429, 20429, map[string]string{"Retry-After": httpDate}), false, 20429, 90 * time.Second, "429"},
		{"queue full", twilioError(400, 21611, nil), false, 21611, 0, "error 21611"},
		{"internal", twilioError(500, 20500, nil), false, 20500, 0, "answered 500"},
		{"unavailable", twilioError(503, 20503, map[string]string{"Retry-After": "20"}), false, 20503, 20 * time.Second, "error 20503"},
		{"429 without a document", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(429)
			io.WriteString(w, "<html>slow down</html>")
		}, false, 429, 5 * time.Second, "answered 429"},
		{"502 from a proxy", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
		}, false, 502, 0, "answered 502"},
		{"400 without a document", func(w http.ResponseWriter, _ url.Values) {
			w.WriteHeader(400)
		}, true, 400, 0, "answered 400"},
		{"redirect", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Location", "https://elsewhere.example.com/")
			w.WriteHeader(301)
			io.WriteString(w, "{}")
		}, true, 301, 0, "301"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tw := newTwilio(t, c.answer)
			res, err := newSender(t, tw.URL, nil).Send(context.Background(), message("hello"))
			if err == nil {
				t.Fatalf("no error (%+v)", res)
			}
			e := classified(t, err)
			if e.Permanent != c.permanent || e.Code != c.code || e.RetryAfter != c.retryAfter {
				t.Errorf("permanent=%v code=%d retryAfter=%v, want %v %d %v (%v)",
					e.Permanent, e.Code, e.RetryAfter, c.permanent, c.code, c.retryAfter, err)
			}
			if !strings.Contains(err.Error(), c.say) {
				t.Errorf("error %q does not say %q", err, c.say)
			}
			if tw.requests.Load() != 1 {
				t.Errorf("%d requests, want 1", tw.requests.Load())
			}
		})
	}
}

func TestSendAcceptedButUnreadable(t *testing.T) {
	tw := newTwilio(t, func(w http.ResponseWriter, _ url.Values) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "not json")
	})
	res, err := newSender(t, tw.URL, nil).Send(context.Background(), message("hi"))
	if err != nil {
		t.Fatalf("a message Twilio took must not fail (it would be sent twice): %v", err)
	}
	if res.ProviderID != "" || !strings.HasPrefix(res.Answer, "201 Created (answer unreadable") {
		t.Errorf("Result = %+v", res)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	tw := newTwilio(t, func(w http.ResponseWriter, _ url.Values) { <-release })
	defer close(release) // before the server's Close, which waits for handlers
	s := newSender(t, tw.URL, func(c *sms.Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := s.Send(context.Background(), message("hi"))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v with a 100ms timeout", took)
	}
	e := classified(t, err)
	if e.Permanent || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %v, want a transient timeout", err)
	}
}

func TestSendCanceled(t *testing.T) {
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the request is at Twilio, waiting for its answer.
	tw := newTwilio(t, func(w http.ResponseWriter, _ url.Values) { cancel(); <-release })
	defer close(release)
	_, err := newSender(t, tw.URL, nil).Send(ctx, message("hi"))
	if e := classified(t, err); e.Permanent || !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want a transient cancellation", err)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = newSender(t, "http://"+addr, nil).Send(context.Background(), message("hi"))
	if e := classified(t, err); e.Permanent || e.Code != 0 {
		t.Errorf("error %v, want transient without a code", err)
	}
}

func TestSendTLS(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if r.URL.Path != "/2010-04-01/Accounts/"+accountSID+"/Messages.json" {
			t.Errorf("path %s", r.URL.Path)
		}
		r.ParseForm()
		created("SM3")(w, r.PostForm)
	}))
	defer srv.Close()
	s := newSender(t, srv.URL, func(c *sms.Config) { c.Transport = srv.Client().Transport })
	res, err := s.Send(context.Background(), message("hi"))
	if err != nil || res.ProviderID != "SM3" || got.Load() != 1 {
		t.Fatalf("Send = %+v, %v (%d requests)", res, err, got.Load())
	}
}

func TestSendRefusedLocally(t *testing.T) {
	tw := newTwilio(t, created("SM4"))
	s := newSender(t, tw.URL, func(c *sms.Config) { c.MaxSegments = 2 })
	media := func(urls ...string) *notify.Message {
		m := message("")
		m.Media = urls
		return m
	}
	cases := []struct {
		name string
		m    *notify.Message
		is   error
	}{
		{"nil", nil, nil},
		{"no plus", &notify.Message{To: "821012345678", Text: "hi"}, sms.ErrInvalidNumber},
		{"letters", &notify.Message{To: "+1555CALLME", Text: "hi"}, sms.ErrInvalidNumber},
		{"too long", &notify.Message{To: "+1234567890123456", Text: "hi"}, sms.ErrInvalidNumber},
		{"leading zero", &notify.Message{To: "+0123456", Text: "hi"}, sms.ErrInvalidNumber},
		{"empty", message(""), nil},
		{"http media", media("http://cdn.example.com/a.png"), nil},
		{"relative media", media("/a.png"), nil},
		{"eleven media", media(slices.Repeat([]string{"https://cdn.example.com/a.png"}, 11)...), nil},
		{"three segments", message(strings.Repeat("x", 307)), sms.ErrTooManySegments},
	}
	for _, c := range cases {
		_, err := s.Send(context.Background(), c.m)
		if e := classified(t, err); !e.Permanent {
			t.Errorf("%s: %v is not permanent", c.name, err)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v is not %v", c.name, err, c.is)
		}
	}
	if n := tw.requests.Load(); n != 0 {
		t.Errorf("%d requests reached Twilio", n)
	}
	// Two segments pass; the limit does not apply to MMS.
	if _, err := s.Send(context.Background(), message(strings.Repeat("x", 306))); err != nil {
		t.Error(err)
	}
	m := message(strings.Repeat("x", 1000))
	m.Media = []string{"https://cdn.example.com/a.png"}
	if _, err := s.Send(context.Background(), m); err != nil {
		t.Error(err)
	}
}

func TestSendConcurrent(t *testing.T) {
	tw := newTwilio(t, func(w http.ResponseWriter, f url.Values) {
		created("SM-"+f.Get("Body"))(w, f)
	})
	s := newSender(t, tw.URL, nil)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			body := fmt.Sprint(i)
			res, err := s.Send(context.Background(), message(body))
			if err != nil || res.ProviderID != "SM-"+body {
				t.Errorf("send %d: %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()
}

func TestNewRejects(t *testing.T) {
	cases := []struct {
		name   string
		change func(*sms.Config)
	}{
		{"no account", func(c *sms.Config) { c.AccountSID = "" }},
		{"not an account SID", func(c *sms.Config) { c.AccountSID = "MG0123456789abcdef0123456789abcdef" }},
		{"short account SID", func(c *sms.Config) { c.AccountSID = "AC0123" }},
		{"no token", func(c *sms.Config) { c.AuthToken = "" }},
		{"token with symbols", func(c *sms.Config) { c.AuthToken = "abc:def" }},
		{"no sender", func(c *sms.Config) { c.From = "" }},
		{"bad service SID", func(c *sms.Config) { c.MessagingServiceSID = "AC00112233445566778899aabbccddeeff" }},
		{"relative callback", func(c *sms.Config) { c.StatusCallback = "/api/v1/callbacks/twilio" }},
		{"ftp base", func(c *sms.Config) { c.BaseURL = "ftp://api.twilio.com" }},
		{"base with query", func(c *sms.Config) { c.BaseURL = "https://api.twilio.com/?x=1" }},
		{"negative segments", func(c *sms.Config) { c.MaxSegments = -1 }},
		{"negative timeout", func(c *sms.Config) { c.Timeout = -time.Second }},
	}
	for _, c := range cases {
		cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber}
		if _, err := sms.New(cfg); err != nil {
			t.Fatalf("base config: %v", err)
		}
		c.change(&cfg)
		if _, err := sms.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", c.name, cfg)
		}
	}
}

func TestSendAPIError(t *testing.T) {
	tw := newTwilio(t, twilioError(400, 21211, nil))
	_, err := newSender(t, tw.URL, nil).Send(context.Background(), message("hi"))
	var api *sms.APIError
	if !errors.As(err, &api) {
		t.Fatalf("error %v does not wrap an *sms.APIError", err)
	}
	want := sms.APIError{Status: 400, Code: 21211, Message: "error 21211 for the test", MoreInfo: "https://www.twilio.com/docs/errors/21211"}
	if *api != want {
		t.Errorf("APIError = %+v, want %+v", *api, want)
	}
	if got := err.Error(); got != "permanent failure (21211): twilio answered 400, error 21211: error 21211 for the test (https://www.twilio.com/docs/errors/21211)" {
		t.Errorf("error text %q", got)
	}
}

// A base URL may carry a path: a regional edge behind a proxy prefix.
func TestSendBaseURLWithPath(t *testing.T) {
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		r.ParseForm()
		created("SM5")(w, r.PostForm)
	}))
	defer srv.Close()
	if _, err := newSender(t, srv.URL+"/edge/", nil).Send(context.Background(), message("hi")); err != nil {
		t.Fatal(err)
	}
	if got, want := path.Load(), "/edge/2010-04-01/Accounts/"+accountSID+"/Messages.json"; got != want {
		t.Errorf("path %v, want %s", got, want)
	}
}

// BenchmarkSend measures sends per second to a local Twilio.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		created("SM0123456789abcdef0123456789abcdef")(w, r.PostForm)
	}))
	defer srv.Close()
	s, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, StatusCallback: callback, BaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := message("Your code is 123456.")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Send(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
