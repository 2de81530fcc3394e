package push_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/notify"
)

const (
	fcmProject     = "demo-project"
	fcmClientEmail = "ums@demo-project.iam.gserviceaccount.com"
	fcmKeyID       = "key-1"
	fcmToken       = "dQw4w9WgXcQ:APA91bH-test_token.0123456789"
)

// rsaKey is the service account's key, made once: RSA generation is slow
// under the race detector.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// serviceAccountJSON is a service account key whose token_uri is tokenURL.
func serviceAccountJSON(t testing.TB, tokenURL string) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     fcmProject,
		"private_key_id": fcmKeyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   fcmClientEmail,
		"client_id":      "1234567890",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fcmAnswer is what the test FCM server answers for one token.
type fcmAnswer struct {
	status int
	header map[string]string
	body   string
}

// fcmEnv is a Google OAuth 2 token endpoint and an FCM v1 API, both
// local, checking what a real one checks.
type fcmEnv struct {
	t         testing.TB
	token     *httptest.Server
	api       *httptest.Server
	tokenHits atomic.Int32
	// tokenAnswer, when set, replaces the token endpoint's success.
	tokenAnswer *fcmAnswer
	mu          sync.Mutex
	answers     map[string]fcmAnswer // by registration token
	requests    []fcmRequest
}

type fcmRequest struct {
	Path          string
	Authorization string
	ContentType   string
	Message       struct {
		Token        string            `json:"token"`
		Notification map[string]string `json:"notification"`
		Data         map[string]string `json:"data"`
	} `json:"message"`
}

func newFCMEnv(t testing.TB) *fcmEnv {
	e := &fcmEnv{t: t, answers: map[string]fcmAnswer{}}
	e.token = httptest.NewServer(http.HandlerFunc(e.serveToken))
	t.Cleanup(e.token.Close)
	e.api = httptest.NewServer(http.HandlerFunc(e.serveAPI))
	t.Cleanup(e.api.Close)
	return e
}

// serveToken is the JWT bearer grant (RFC 7523) as Google's token
// endpoint does it: the assertion must be signed with the account's key
// and name the account, the scope and this endpoint.
func (e *fcmEnv) serveToken(w http.ResponseWriter, r *http.Request) {
	n := e.tokenHits.Add(1)
	if r.Method != http.MethodPost {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	if err := e.checkAssertion(r.PostForm.Get("assertion")); err != nil {
		e.t.Errorf("token endpoint: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		return
	}
	if a := e.tokenAnswer; a != nil {
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"ya29.test-%d","token_type":"Bearer","expires_in":3599}`, n)
}

func (e *fcmEnv) checkAssertion(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion %q is not a JWS", jwt)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&rsaKey().PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("assertion signature: %v", err)
	}
	var header struct{ Alg, Kid string }
	if err := decodeSegment(parts[0], &header); err != nil {
		return err
	}
	if header.Alg != "RS256" || header.Kid != fcmKeyID {
		return fmt.Errorf("assertion header %+v", header)
	}
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	if claims.Iss != fcmClientEmail || claims.Scope != push.FCMScope || claims.Aud != e.token.URL+"/token" {
		return fmt.Errorf("assertion claims %+v", claims)
	}
	if now := time.Now().Unix(); claims.Iat > now+60 || claims.Exp <= now || claims.Exp-claims.Iat > 3600 {
		return fmt.Errorf("assertion times iat %d exp %d", claims.Iat, claims.Exp)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (e *fcmEnv) serveAPI(w http.ResponseWriter, r *http.Request) {
	var req fcmRequest
	req.Path = r.URL.Path
	req.Authorization = r.Header.Get("Authorization")
	req.ContentType = r.Header.Get("Content-Type")
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.requests = append(e.requests, req)
	a, ok := e.answers[req.Message.Token]
	e.mu.Unlock()
	if r.Method != http.MethodPost || req.Path != "/v1/projects/"+fcmProject+"/messages:send" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if !strings.HasPrefix(req.Authorization, "Bearer ya29.test-") {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
		return
	}
	if ok {
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"name":"projects/%s/messages/0:1500415314455276%%31bd1c96"}`, fcmProject)
}

// reqs returns the requests the API got so far.
func (e *fcmEnv) reqs() []fcmRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]fcmRequest(nil), e.requests...)
}

func (e *fcmEnv) sender(t testing.TB, change func(*push.FCMConfig)) *push.Sender {
	t.Helper()
	cfg := push.FCMConfig{
		CredentialsJSON: serviceAccountJSON(t, e.token.URL+"/token"),
		BaseURL:         e.api.URL,
	}
	if change != nil {
		change(&cfg)
	}
	s, err := push.New(push.Config{FCM: &cfg, Timeout: 5 * time.Second, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fcmMessage(token string) *notify.Message {
	return &notify.Message{
		ID:      "n-1",
		Channel: "push",
		Push:    []byte(`{"fcm_token":"` + token + `"}`),
		Subject: "Order shipped",
		Text:    "Your parcel is on its way.",
		Data:    map[string]any{"order": "A-17", "count": 3, "gift": true, "tags": []any{"x"}},
		Attempt: 1,
	}
}

func TestFCMSend(t *testing.T) {
	e := newFCMEnv(t)
	s := e.sender(t, nil)
	res, err := s.Send(context.Background(), fcmMessage(fcmToken))
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != "fcm" || res.ProviderID != "projects/demo-project/messages/0:1500415314455276%31bd1c96" {
		t.Errorf("result %+v", res)
	}
	reqs := e.reqs()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Authorization != "Bearer ya29.test-1" {
		t.Errorf("Authorization %q", r.Authorization)
	}
	if !strings.HasPrefix(r.ContentType, "application/json") {
		t.Errorf("Content-Type %q", r.ContentType)
	}
	m := r.Message
	if m.Token != fcmToken {
		t.Errorf("token %q", m.Token)
	}
	if m.Notification["title"] != "Order shipped" || m.Notification["body"] != "Your parcel is on its way." {
		t.Errorf("notification %v", m.Notification)
	}
	want := map[string]string{"order": "A-17", "count": "3", "gift": "true", "tags": `["x"]`}
	if fmt.Sprint(m.Data) != fmt.Sprint(want) {
		t.Errorf("data %v, want %v", m.Data, want)
	}
}

// The access token is fetched once and reused until it expires.
func TestFCMTokenCached(t *testing.T) {
	e := newFCMEnv(t)
	s := e.sender(t, nil)
	for i := 0; i < 3; i++ {
		if _, err := s.Send(context.Background(), fcmMessage(fcmToken)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.tokenHits.Load(); n != 1 {
		t.Fatalf("token endpoint called %d times for 3 sends, want 1", n)
	}
	for _, r := range e.reqs() {
		if r.Authorization != "Bearer ya29.test-1" {
			t.Errorf("Authorization %q", r.Authorization)
		}
	}
}

// A token about to expire is not reused: the next send fetches a new one.
func TestFCMTokenRenewedWhenExpiring(t *testing.T) {
	e := newFCMEnv(t)
	e.tokenAnswer = &fcmAnswer{status: 200, header: map[string]string{"Content-Type": "application/json"},
		body: `{"access_token":"ya29.test-short","token_type":"Bearer","expires_in":5}`}
	s := e.sender(t, nil)
	for i := 0; i < 2; i++ {
		if _, err := s.Send(context.Background(), fcmMessage(fcmToken)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.tokenHits.Load(); n != 2 {
		t.Fatalf("token endpoint called %d times for 2 sends with a token expiring in 5s, want 2", n)
	}
}

// A data-only message carries no notification object.
func TestFCMDataOnly(t *testing.T) {
	e := newFCMEnv(t)
	s := e.sender(t, nil)
	m := fcmMessage(fcmToken)
	m.Subject, m.Text = "", ""
	if _, err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := e.reqs()[0].Message.Notification; n != nil {
		t.Errorf("notification %v in a data-only message", n)
	}
}

func fcmError(code int, status, message, errorCode string) string {
	details := "[]"
	if errorCode != "" {
		details = `[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"` + errorCode + `"}]`
	}
	return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q,"details":%s}}`, code, message, status, details)
}

func TestFCMErrors(t *testing.T) {
	cases := []struct {
		token        string
		answer       fcmAnswer
		permanent    bool
		unregistered bool
		retryAfter   time.Duration
		say          string
	}{
		{token: "unregistered", answer: fcmAnswer{status: 404, body: fcmError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")},
			permanent: true, unregistered: true, say: "UNREGISTERED (404 Not Found): Requested entity was not found."},
		{token: "invalid", answer: fcmAnswer{status: 400, body: fcmError(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")},
			permanent: true, say: "INVALID_ARGUMENT (400 Bad Request): The registration token is not a valid"},
		{token: "mismatch", answer: fcmAnswer{status: 403, body: fcmError(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")},
			permanent: true, say: "SENDER_ID_MISMATCH"},
		{token: "quota", answer: fcmAnswer{status: 429, header: map[string]string{"Retry-After": "60"}, body: fcmError(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")},
			retryAfter: time.Minute, say: "QUOTA_EXCEEDED"},
		{token: "unavailable", answer: fcmAnswer{status: 503, header: map[string]string{"Retry-After": clock.Add(90 * time.Second).UTC().Format(http.TimeFormat)}, body: fcmError(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")},
			retryAfter: 90 * time.Second, say: "UNAVAILABLE"},
		{token: "internal", answer: fcmAnswer{status: 500, body: fcmError(500, "INTERNAL", "Internal error encountered.", "INTERNAL")},
			say: "INTERNAL (500 Internal Server Error)"},
		{token: "bare429", answer: fcmAnswer{status: 429, header: map[string]string{"Retry-After": "5"}, body: `rate limited`},
			retryAfter: 5 * time.Second, say: "answered 429 Too Many Requests: rate limited"},
		{token: "bare502", answer: fcmAnswer{status: 502, body: `<html>bad gateway</html>`},
			say: "502 Bad Gateway"},
		{token: "denied", answer: fcmAnswer{status: 403, body: fcmError(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", "")},
			permanent: true, say: "PERMISSION_DENIED (403 Forbidden)"},
		{token: "noname", answer: fcmAnswer{status: 200, body: `{}`},
			say: "without a message name"},
	}
	e := newFCMEnv(t)
	for _, c := range cases {
		e.answers[c.token] = c.answer
	}
	s := e.sender(t, nil)
	for _, c := range cases {
		_, err := s.Send(context.Background(), fcmMessage(c.token))
		if err == nil {
			t.Errorf("%s: no error", c.token)
			continue
		}
		ne := classified(t, err)
		if ne.Permanent != c.permanent || ne.Code != c.answer.status || ne.RetryAfter != c.retryAfter {
			t.Errorf("%s: permanent=%v code=%d retryAfter=%v, want %v %d %v (%v)",
				c.token, ne.Permanent, ne.Code, ne.RetryAfter, c.permanent, c.answer.status, c.retryAfter, err)
		}
		if errors.Is(err, push.ErrUnregistered) != c.unregistered {
			t.Errorf("%s: errors.Is(ErrUnregistered) = %v", c.token, !c.unregistered)
		}
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.token, err, c.say)
		}
	}
}

func TestFCMTokenEndpointErrors(t *testing.T) {
	cases := []struct {
		answer     fcmAnswer
		permanent  bool
		retryAfter time.Duration
		say        string
	}{
		{answer: fcmAnswer{status: 400, body: `{"error":"invalid_grant","error_description":"Invalid grant: account not found"}`},
			permanent: true, say: "account not found"},
		{answer: fcmAnswer{status: 503, header: map[string]string{"Retry-After": "12"}, body: `{"error":"temporarily_unavailable"}`},
			retryAfter: 12 * time.Second, say: "temporarily_unavailable"},
	}
	for _, c := range cases {
		e := newFCMEnv(t)
		e.tokenAnswer = &c.answer
		s := e.sender(t, nil)
		_, err := s.Send(context.Background(), fcmMessage(fcmToken))
		if err == nil {
			t.Errorf("%d: no error", c.answer.status)
			continue
		}
		ne := classified(t, err)
		if ne.Permanent != c.permanent || ne.Code != c.answer.status || ne.RetryAfter != c.retryAfter {
			t.Errorf("%d: permanent=%v code=%d retryAfter=%v (%v)", c.answer.status, ne.Permanent, ne.Code, ne.RetryAfter, err)
		}
		if !strings.Contains(err.Error(), "access token") || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%d: error %q", c.answer.status, err)
		}
		if len(e.reqs()) != 0 {
			t.Errorf("%d: FCM called without a token", c.answer.status)
		}
	}
}

func TestFCMConfig(t *testing.T) {
	e := newFCMEnv(t)
	key := serviceAccountJSON(t, e.token.URL+"/token")

	// From a file, with the project named in the config.
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.sender(t, func(c *push.FCMConfig) {
		c.CredentialsJSON = nil
		c.CredentialsFile = path
		c.ProjectID = "other-project"
	})
	if _, err := s.Send(context.Background(), fcmMessage(fcmToken)); err == nil {
		t.Error("the test API accepted another project")
	}
	if p := e.reqs()[0].Path; p != "/v1/projects/other-project/messages:send" {
		t.Errorf("path %q", p)
	}

	var withoutProject map[string]any
	json.Unmarshal(key, &withoutProject)
	delete(withoutProject, "project_id")
	noProject, _ := json.Marshal(withoutProject)
	var wrongType map[string]any
	json.Unmarshal(key, &wrongType)
	wrongType["type"] = "authorized_user"
	userKey, _ := json.Marshal(wrongType)

	bad := []struct {
		cfg push.FCMConfig
		say string
	}{
		{push.FCMConfig{}, "credentials are required"},
		{push.FCMConfig{CredentialsFile: path, CredentialsJSON: key}, "not both"},
		{push.FCMConfig{CredentialsFile: filepath.Join(t.TempDir(), "missing.json")}, "no such file"},
		{push.FCMConfig{CredentialsJSON: []byte(`not json`)}, "not a service account JSON key"},
		{push.FCMConfig{CredentialsJSON: userKey}, `type "authorized_user"`},
		{push.FCMConfig{CredentialsJSON: noProject}, "no project id"},
		{push.FCMConfig{CredentialsJSON: []byte(`{"type":"service_account","client_email":"a@b","private_key":"x"}`)}, "private_key: not PEM"},
		{push.FCMConfig{CredentialsJSON: key, BaseURL: "ftp://x"}, "invalid base URL"},
		{push.FCMConfig{CredentialsJSON: key, ProjectID: "a/b"}, "invalid project id"},
	}
	for _, b := range bad {
		_, err := push.New(push.Config{FCM: &b.cfg})
		if err == nil || !strings.Contains(err.Error(), b.say) {
			t.Errorf("New = %v, want an error saying %q", err, b.say)
		}
	}
}

// An unreachable FCM is a transient failure; so is an unreachable token
// endpoint.
func TestFCMConnectionRefused(t *testing.T) {
	e := newFCMEnv(t)
	s := e.sender(t, nil)
	e.api.Close()
	_, err := s.Send(context.Background(), fcmMessage(fcmToken))
	if err == nil || notify.IsPermanent(err) || !strings.HasPrefix(err.Error(), "transient failure: fcm: ") {
		t.Errorf("FCM down: want a transient failure, got %v", err)
	}

	e2 := newFCMEnv(t)
	s2 := e2.sender(t, nil)
	e2.token.Close()
	_, err = s2.Send(context.Background(), fcmMessage(fcmToken))
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "fcm: access token") {
		t.Errorf("token endpoint down: want a transient failure, got %v", err)
	}
}

// Send stops waiting for a token endpoint that does not answer when its
// context ends.
func TestFCMTokenFetchHonoursContext(t *testing.T) {
	e := newFCMEnv(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	s := e.sender(t, func(c *push.FCMConfig) { c.CredentialsJSON = serviceAccountJSON(t, slow.URL+"/token") })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Send(ctx, fcmMessage(fcmToken))
	if err == nil || notify.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a transient deadline failure, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Send took %v with a 100ms deadline", d)
	}
}
