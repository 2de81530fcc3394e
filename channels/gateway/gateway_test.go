package gateway_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/unifiedms/ums/channels/gateway"
	"github.com/unifiedms/ums/notify"
)

var clock = time.Unix(1700000000, 123_000_000)

const (
	accessKey = "ncpAccessKey1234"
	secretKey = "ncpSecretKey5678"
)

// classified returns err's *notify.Error or fails the test.
func classified(t *testing.T, err error) *notify.Error {
	t.Helper()
	var e *notify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *notify.Error", err, err)
	}
	return e
}

// ncp imitates NAVER Cloud's API gateway in front of SENS: it checks the
// x-ncp-apigw-* headers as the gateway does, then answers SMS sends
// (POST /sms/v2/services/{id}/messages) and Alimtalk sends
// (POST /alimtalk/v2/services/{id}/messages) like SENS. Behaviour per
// recipient: 01000000429 is rate limited, 01000000500 fails inside,
// 01099999999 is not a KakaoTalk user (Alimtalk).
type ncp struct {
	*httptest.Server
	t        *testing.T
	requests atomic.Int32
	mu       sync.Mutex
	bodies   []map[string]any
}

func newNCP(t *testing.T) *ncp {
	n := &ncp{t: t}
	n.Server = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.Close)
	return n
}

func (n *ncp) lastBody() map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.bodies) == 0 {
		n.t.Fatal("no request reached the gateway")
	}
	return n.bodies[len(n.bodies)-1]
}

func gatewayError(w http.ResponseWriter, status int, code, message string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"errorCode":%q,"message":%q,"details":"test"}}`, code, message)
}

func (n *ncp) serve(w http.ResponseWriter, r *http.Request) {
	n.requests.Add(1)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	ts := r.Header.Get("x-ncp-apigw-timestamp")
	if ts != strconv.FormatInt(clock.UnixMilli(), 10) {
		n.t.Errorf("timestamp %q", ts)
	}
	// The gateway's signature, computed here as NAVER Cloud documents it.
	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte(r.Method + " " + r.URL.RequestURI() + "\n" + ts + "\n" + accessKey))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if r.Header.Get("x-ncp-iam-access-key") != accessKey || r.Header.Get("x-ncp-apigw-signature-v2") != want {
		gatewayError(w, http.StatusUnauthorized, "200", "Authentication Failed")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		n.t.Errorf("Content-Type %q", ct)
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		n.t.Errorf("body: %v", err)
		gatewayError(w, http.StatusBadRequest, "100", "Bad Request Exception")
		return
	}
	n.mu.Lock()
	n.bodies = append(n.bodies, body)
	n.mu.Unlock()
	messages, _ := body["messages"].([]any)
	if len(messages) != 1 {
		n.t.Errorf("messages %v", body["messages"])
		gatewayError(w, http.StatusBadRequest, "100", "Bad Request Exception")
		return
	}
	to, _ := messages[0].(map[string]any)["to"].(string)
	switch to {
	case "01000000429":
		w.Header().Set("Retry-After", "2")
		gatewayError(w, http.StatusTooManyRequests, "420", "Rate Limited")
		return
	case "01000000500":
		gatewayError(w, http.StatusInternalServerError, "500", "Endpoint Error")
		return
	}
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sms/v2/services/") && strings.HasSuffix(r.URL.Path, "/messages"):
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"requestId":"RSSA-1700000000123-4321-12345678-abcdefgh","requestTime":"2023-11-15T07:13:20.123","statusCode":"202","statusName":"success"}`)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/alimtalk/v2/services/") && strings.HasSuffix(r.URL.Path, "/messages"):
		status, desc := "A000", "성공"
		if to == "01099999999" {
			status, desc = "A003", "카카오톡 사용자가 아닙니다"
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"requestId":"ATA-1","requestTime":"2023-11-15T07:13:20.123","statusCode":"202","statusName":"success",`+
			`"messages":[{"messageId":"msg-0001","to":%q,"countryCode":"82","content":"...","requestStatusCode":%q,"requestStatusName":"success","requestStatusDesc":%q,"useSmsFailover":false}]}`,
			to, status, desc)
	default:
		gatewayError(w, http.StatusNotFound, "300", "Not Found Exception")
	}
}

// example returns the gateways of deployments/gateways.example.yaml, with
// their environment set and their URLs pointed at base.
func example(t *testing.T, base string) map[string]gateway.Config {
	t.Helper()
	data, err := os.ReadFile("../../deployments/gateways.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Gateways []gateway.Config `yaml:"gateways"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"NCP_ACCESS_KEY":          accessKey,
		"NCP_SECRET_KEY":          secretKey,
		"NCP_SMS_SERVICE_ID":      "ncp:sms:kr:123456789012:ums",
		"NCP_SMS_FROM":            "0212345678",
		"NCP_ALIMTALK_SERVICE_ID": "ncp:kkobizmsg:kr:1234567:ums",
		"KAKAO_CHANNEL_ID":        "@ums",
	} {
		t.Setenv(k, v)
	}
	out := map[string]gateway.Config{}
	for _, c := range file.Gateways {
		c.URL = strings.Replace(c.URL, "https://sens.apigw.ntruss.com", base, 1)
		c.Now = func() time.Time { return clock }
		out[c.Name] = c
	}
	return out
}

func newSender(t *testing.T, cfg gateway.Config) *gateway.Sender {
	t.Helper()
	s, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExampleFile(t *testing.T) {
	cfgs := example(t, "https://sens.apigw.ntruss.com")
	if len(cfgs) != 2 || cfgs["sms-kr"].Name == "" || cfgs["kakao"].Name == "" {
		t.Fatalf("gateways %v, want sms-kr and kakao", cfgs)
	}
	if d := cfgs["sms-kr"].Timeout; d != 10*time.Second {
		t.Errorf("timeout %v", d)
	}
	for name, c := range cfgs {
		if _, err := gateway.New(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	os.Unsetenv("NCP_SECRET_KEY") // restored by t.Setenv's cleanup
	if _, err := gateway.New(cfgs["sms-kr"]); err == nil || !strings.Contains(err.Error(), "NCP_SECRET_KEY") {
		t.Errorf("New without NCP_SECRET_KEY: %v", err)
	}
}

func TestNCPSMS(t *testing.T) {
	srv := newNCP(t)
	s := newSender(t, example(t, srv.URL)["sms-kr"])
	m := &notify.Message{ID: "n-1", Channel: "sms-kr", To: "+821012345678", Text: `인증번호 "123456" ${NCP_SECRET_KEY}`, Class: "transactional"}
	res, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "RSSA-1700000000123-4321-12345678-abcdefgh" || res.Provider != "sms-kr" || !strings.HasPrefix(res.Answer, "202 Accepted: {") {
		t.Errorf("Result = %+v", res)
	}
	body := srv.lastBody()
	want := map[string]any{
		"type":        "SMS",
		"contentType": "COMM",
		"countryCode": "82",
		"from":        "0212345678",
		"content":     `인증번호 "123456" ${NCP_SECRET_KEY}`, // message content is not expanded
		"messages":    []any{map[string]any{"to": "01012345678"}},
	}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body\n%v\nwant\n%v", body, want)
	}

	// A subject, a long text, advertising.
	m = &notify.Message{To: "+821012345678", Subject: "공지", Text: strings.Repeat("가", 40), Class: "advertising"}
	if _, err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	body = srv.lastBody()
	if body["type"] != "LMS" || body["subject"] != "공지" || body["contentType"] != "AD" {
		t.Errorf("body %v", body)
	}
}

func TestNCPFailures(t *testing.T) {
	srv := newNCP(t)
	cfg := example(t, srv.URL)["sms-kr"]
	s := newSender(t, cfg)
	cases := []struct {
		to         string
		permanent  bool
		code       int
		retryAfter time.Duration
		say        string
	}{
		{"+821000000429", false, 420, 2 * time.Second, "answered 429 Too Many Requests, code 420: Rate Limited"},
		{"+821000000500", false, 500, 0, "code 500: Endpoint Error"},
	}
	for _, c := range cases {
		_, err := s.Send(context.Background(), &notify.Message{To: c.to, Text: "hi"})
		e := classified(t, err)
		if e.Permanent != c.permanent || e.Code != c.code || e.RetryAfter != c.retryAfter || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: %v (permanent=%v code=%d retryAfter=%v)", c.to, err, e.Permanent, e.Code, e.RetryAfter)
		}
	}

	// A wrong secret: the gateway refuses the signature, permanently.
	t.Setenv("NCP_SECRET_KEY", "wrong")
	s = newSender(t, cfg)
	_, err := s.Send(context.Background(), &notify.Message{To: "+821012345678", Text: "hi"})
	if e := classified(t, err); !e.Permanent || !strings.Contains(err.Error(), "401 Unauthorized, code 200: Authentication Failed") {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestNCPAlimtalk(t *testing.T) {
	srv := newNCP(t)
	s := newSender(t, example(t, srv.URL)["kakao"])
	m := &notify.Message{
		ID: "n-2", To: "+821012345678", Text: "주문하신 상품이 발송되었습니다.\n송장: 1234",
		Data: map[string]any{"template": "ORDER_SHIPPED"},
	}
	res, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "msg-0001" || res.Provider != "kakao" {
		t.Errorf("Result = %+v", res)
	}
	body := srv.lastBody()
	if !strings.Contains(fmt.Sprint(body), "plusFriendId:@ums templateCode:ORDER_SHIPPED") {
		t.Errorf("body %v", body)
	}
	msg := body["messages"].([]any)[0].(map[string]any)
	if msg["to"] != "01012345678" || msg["content"] != m.Text || msg["countryCode"] != "82" {
		t.Errorf("message %v", msg)
	}

	// Accepted as a request, refused for this recipient: permanent, with
	// the provider's code and text.
	m.To = "+821099999999"
	_, err = s.Send(context.Background(), m)
	if e := classified(t, err); !e.Permanent || !strings.Contains(err.Error(), "code A003: 카카오톡 사용자가 아닙니다") {
		t.Errorf("not a KakaoTalk user: %v", err)
	}

	// No template in the data: refused before any request.
	before := srv.requests.Load()
	m.Data = nil
	_, err = s.Send(context.Background(), m)
	if e := classified(t, err); !e.Permanent || !strings.Contains(err.Error(), "template") {
		t.Errorf("no template: %v", err)
	}
	if srv.requests.Load() != before {
		t.Error("a request was sent without a template")
	}
}

// reseller imitates an Alimtalk reseller's API: bearer token, its own
// JSON, and always HTTP 200 with a result code.
func reseller(t *testing.T, got chan<- map[string]any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/alimtalk/send" || r.Header.Get("Authorization") != "Bearer tok-123" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"result":{"code":"4010","message":"invalid token"}}`)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("body: %v", err)
		}
		got <- body
		w.Header().Set("Content-Type", "application/json")
		switch body["recipient"] {
		case "01011110000":
			io.WriteString(w, `{"result":{"code":"3018","message":"not a KakaoTalk user"}}`)
		case "01022220000":
			w.Header().Set("Retry-After", "9")
			io.WriteString(w, `{"result":{"code":"9999","message":"system busy"}}`)
		case "01033330000":
			io.WriteString(w, `{"result":{"code":5555,"message":"something new"}}`)
		case "01044440000":
			io.WriteString(w, `<html>maintenance</html>`)
		case "01055550000":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"result":{"code":"4290","message":"sender over quota"}}`)
		case "01066660000":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"result":{"code":"4000","message":"bad request"}}`)
		case "01077770000":
			w.Header().Set("Location", "https://elsewhere.example.com/")
			w.WriteHeader(http.StatusFound)
		default:
			io.WriteString(w, `{"result":{"code":"0000","message":"OK"},"data":{"msgId":12345678901234}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func resellerConfig(url string) gateway.Config {
	return gateway.Config{
		Name:    "alimtalk",
		URL:     url + "/v1/alimtalk/send",
		Headers: map[string]string{"Authorization": "Bearer ${RESELLER_TOKEN}", "X-Request-Id": "{{.ID}}-{{.Attempt}}"},
		Body: `{"senderKey":"${RESELLER_SENDER_KEY}","templateCode":{{json .Data.template}},` +
			`"recipient":"{{localNumber .To "+82" "0"}}","message":"{{jsonEscape .Text}}",` +
			`"variables":{{json .Data}},"tenant":{{json .Tenant}}}`,
		SuccessPath:   "result.code",
		SuccessValues: []string{"0000"},
		IDPath:        "data.msgId",
		MessagePath:   "result.message",
		Errors: map[string]string{
			"3018": "permanent",
			"9999": "transient",
			"4290": "Transient",
		},
		Timeout: 5 * time.Second,
		Now:     func() time.Time { return clock },
	}
}

func TestReseller(t *testing.T) {
	t.Setenv("RESELLER_TOKEN", "tok-123")
	t.Setenv("RESELLER_SENDER_KEY", "sk-1")
	got := make(chan map[string]any, 1)
	srv := reseller(t, got)
	s := newSender(t, resellerConfig(srv.URL))
	m := func(to string) *notify.Message {
		return &notify.Message{ID: "n-3", To: to, Text: "안녕하세요 \"고객\"님\n\t{{.Secret}}", Tenant: "acme", Attempt: 2,
			Data: map[string]any{"template": "WELCOME", "name": "김철수"}}
	}

	res, err := s.Send(context.Background(), m("+821012345678"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "12345678901234" || res.Provider != "alimtalk" {
		t.Errorf("Result = %+v", res)
	}
	body := <-got
	want := map[string]any{
		"senderKey":    "sk-1",
		"templateCode": "WELCOME",
		"recipient":    "01012345678",
		"message":      "안녕하세요 \"고객\"님\n\t{{.Secret}}", // content is data, not a template
		"variables":    map[string]any{"template": "WELCOME", "name": "김철수"},
		"tenant":       "acme",
	}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body\n%v\nwant\n%v", body, want)
	}

	cases := []struct {
		to         string
		permanent  bool
		code       int
		retryAfter time.Duration
		say        string
	}{
		{"+821011110000", true, 3018, 0, "answered 200 OK, code 3018: not a KakaoTalk user"},
		{"+821022220000", false, 9999, 9 * time.Second, "code 9999: system busy"},
		{"+821033330000", true, 5555, 0, "code 5555: something new"}, // unlisted code in a 2xx answer
		{"+821044440000", false, 200, 0, "<html>maintenance</html> (not a JSON answer)"},
		{"+821055550000", false, 4290, 0, "400 Bad Request, code 4290"}, // the table wins over the 4xx
		{"+821066660000", true, 4000, 0, "code 4000: bad request"},
		{"+821077770000", true, 302, 0, "302 Found"},
	}
	for _, c := range cases {
		_, err := s.Send(context.Background(), m(c.to))
		<-got
		e := classified(t, err)
		if e.Permanent != c.permanent || e.Code != c.code || e.RetryAfter != c.retryAfter || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: %v (permanent=%v code=%d retryAfter=%v), want %v %d %v %q",
				c.to, err, e.Permanent, e.Code, e.RetryAfter, c.permanent, c.code, c.retryAfter, c.say)
		}
	}
}

func TestHeadersRendered(t *testing.T) {
	t.Setenv("RESELLER_TOKEN", "tok-123")
	t.Setenv("RESELLER_SENDER_KEY", "sk-1")
	var header atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header.Store(r.Header.Clone())
		io.WriteString(w, `{"result":{"code":"0000"}}`)
	}))
	defer srv.Close()
	s := newSender(t, resellerConfig(srv.URL))
	if _, err := s.Send(context.Background(), &notify.Message{ID: "n-9", To: "+8210", Attempt: 3, Data: map[string]any{"template": "T"}}); err != nil {
		t.Fatal(err)
	}
	h := header.Load().(http.Header)
	for k, want := range map[string]string{
		"Authorization": "Bearer tok-123",
		"X-Request-Id":  "n-9-3",
		"User-Agent":    "UMS-Gateway/1",
		"Content-Type":  "application/json",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// A header value that would render a line break is refused.
	cfg := resellerConfig(srv.URL)
	cfg.Headers = map[string]string{"X-Subject": "{{.Subject}}"}
	_, err := newSender(t, cfg).Send(context.Background(), &notify.Message{To: "+8210", Subject: "a\r\nX-Evil: 1", Data: map[string]any{"template": "T"}})
	if e := classified(t, err); !e.Permanent {
		t.Errorf("header injection: %v", err)
	}
}

func TestInvalidJSONBodyNotSent(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer srv.Close()
	s := newSender(t, gateway.Config{Name: "naive", URL: srv.URL, Body: `{"text":"{{.Text}}"}`})
	_, err := s.Send(context.Background(), &notify.Message{To: "+8210", Text: `say "hi"`})
	if e := classified(t, err); !e.Permanent || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("error %v", err)
	}
	if requests.Load() != 0 {
		t.Error("an invalid JSON body was sent")
	}
	// The same text, properly escaped, goes.
	s = newSender(t, gateway.Config{Name: "careful", URL: srv.URL, Body: `{"text":{{json .Text}}}`})
	if _, err := s.Send(context.Background(), &notify.Message{To: "+8210", Text: `say "hi"`}); err != nil || requests.Load() != 1 {
		t.Errorf("escaped body: %v (%d requests)", err, requests.Load())
	}
}

func TestFormBodyAndGET(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got <- r
		io.WriteString(w, "OK")
	}))
	defer srv.Close()

	s := newSender(t, gateway.Config{
		Name:        "carrier",
		URL:         srv.URL + "/send",
		Body:        `to={{urlquery .To}}&msg={{urlquery .Text}}`,
		ContentType: "application/x-www-form-urlencoded",
	})
	res, err := s.Send(context.Background(), &notify.Message{To: "+821012345678", Text: "a&b=c 한"})
	if err != nil || res.Answer != "200 OK: OK" {
		t.Fatalf("Send = %+v, %v", res, err)
	}
	r := <-got
	if r.PostForm.Get("to") != "+821012345678" || r.PostForm.Get("msg") != "a&b=c 한" {
		t.Errorf("form %v", r.PostForm)
	}

	s = newSender(t, gateway.Config{Name: "get", Method: "get", URL: srv.URL + "/send?to={{urlquery .To}}&id={{.ID}}"})
	if _, err := s.Send(context.Background(), &notify.Message{ID: "n-5", To: "+8210"}); err != nil {
		t.Fatal(err)
	}
	r = <-got
	if r.Method != http.MethodGet || r.URL.Query().Get("to") != "+8210" || r.URL.Query().Get("id") != "n-5" || r.ContentLength > 0 {
		t.Errorf("GET %s %v (%d bytes)", r.Method, r.URL, r.ContentLength)
	}
}

func TestTimeoutAndConnectionErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s := newSender(t, gateway.Config{Name: "slow", URL: srv.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := s.Send(context.Background(), &notify.Message{To: "+8210"})
	if e := classified(t, err); e.Permanent || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timeout: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s = newSender(t, gateway.Config{Name: "gone", URL: "http://" + addr + "/"})
	_, err = s.Send(context.Background(), &notify.Message{To: "+8210"})
	if e := classified(t, err); e.Permanent {
		t.Errorf("connection refused: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	t.Setenv("SET", "x")
	base := gateway.Config{Name: "gw", URL: "https://gw.example.com/send"}
	if _, err := gateway.New(base); err != nil {
		t.Fatalf("base: %v", err)
	}
	cases := []struct {
		name   string
		change func(*gateway.Config)
		say    string
	}{
		{"no name", func(c *gateway.Config) { c.Name = "" }, "name"},
		{"upper-case name", func(c *gateway.Config) { c.Name = "Kakao" }, "name"},
		{"no url", func(c *gateway.Config) { c.URL = "" }, "url"},
		{"relative url", func(c *gateway.Config) { c.URL = "/send" }, "url"},
		{"ftp url", func(c *gateway.Config) { c.URL = "ftp://gw.example.com/" }, "url"},
		{"unset env", func(c *gateway.Config) { c.URL = "https://gw.example.com/${UNSET_FOR_TEST}" }, "UNSET_FOR_TEST"},
		{"unset env in header", func(c *gateway.Config) { c.Headers = map[string]string{"X-Key": "${UNSET_KEY}"} }, "UNSET_KEY"},
		{"unset env in body", func(c *gateway.Config) { c.Body = `{"k":"${UNSET_BODY}"}` }, "UNSET_BODY"},
		{"method", func(c *gateway.Config) { c.Method = "DELETE" }, "method"},
		{"bad template", func(c *gateway.Config) { c.Body = `{{.To` }, "body"},
		{"unknown function", func(c *gateway.Config) { c.Body = `{{env "HOME"}}` }, "env"},
		{"bad header name", func(c *gateway.Config) { c.Headers = map[string]string{"X Key": "v"} }, "header"},
		{"content type header", func(c *gateway.Config) { c.Headers = map[string]string{"content-type": "text/plain"} }, "content_type"},
		{"bad content type", func(c *gateway.Config) { c.Body = "x"; c.ContentType = "/" }, "content type"},
		{"success path without values", func(c *gateway.Config) { c.SuccessPath = "code" }, "success_values"},
		{"values without path", func(c *gateway.Config) { c.SuccessValues = []string{"0"} }, "success_path"},
		{"bad path", func(c *gateway.Config) { c.IDPath = "data..id" }, "id_path"},
		{"bad class", func(c *gateway.Config) { c.Errors = map[string]string{"E1": "retry"} }, "E1"},
		{"negative timeout", func(c *gateway.Config) { c.Timeout = -1 }, "timeout"},
	}
	for _, c := range cases {
		cfg := base
		c.change(&cfg)
		_, err := gateway.New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: New = %v, want an error saying %q", c.name, err, c.say)
		}
	}
}

func TestSendRefusesNothingToSend(t *testing.T) {
	s := newSender(t, gateway.Config{Name: "gw", URL: "https://gw.example.com/send"})
	for _, m := range []*notify.Message{nil, {Text: "no recipient"}} {
		if _, err := s.Send(context.Background(), m); !notify.IsPermanent(err) {
			t.Errorf("%+v: %v", m, err)
		}
	}
}

// BenchmarkSend measures sends per second through the example's NCP SENS
// gateway to a local SENS (templates, signature and answer paths).
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"requestId":"RSSA-1","requestTime":"2023-11-15T07:13:20.123","statusCode":"202","statusName":"success"}`)
	}))
	defer srv.Close()
	b.Setenv("NCP_SMS_SERVICE_ID", "ncp:sms:kr:1:ums")
	b.Setenv("NCP_ACCESS_KEY", accessKey)
	b.Setenv("NCP_SECRET_KEY", secretKey)
	b.Setenv("NCP_SMS_FROM", "0212345678")
	data, err := os.ReadFile("../../deployments/gateways.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var file struct {
		Gateways []gateway.Config `yaml:"gateways"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		b.Fatal(err)
	}
	cfg := file.Gateways[0]
	cfg.URL = strings.Replace(cfg.URL, "https://sens.apigw.ntruss.com", srv.URL, 1)
	s, err := gateway.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := &notify.Message{ID: "n-1", To: "+821012345678", Text: "인증번호는 123456 입니다."}
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
