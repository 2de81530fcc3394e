package test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// twilioServer speaks Twilio's Messages API; answer decides each reply by
// call number (nil: 201 with a new SID).
type twilioServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	answer func(n int) (status int, body string)
}

func startTwilio(t testing.TB) *twilioServer {
	ts := &twilioServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/"+twilioSID+"/Messages.json" {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		ts.mu.Lock()
		ts.bodies = append(ts.bodies, r.PostForm.Get("Body"))
		n, answer := len(ts.bodies), ts.answer
		ts.mu.Unlock()
		status, body := http.StatusCreated, `{"sid":"SM`+strings.Repeat("0", 31)+string(rune('a'+n%26))+`","status":"queued"}`
		if answer != nil {
			if s, b := answer(n); s != 0 {
				status, body = s, b
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *twilioServer) calls() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.bodies)
}

// fcmServer is Google's OAuth token endpoint and FCM's messages:send: it
// answers UNREGISTERED for the token "dead".
type fcmServer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens int
	sends  []string // device tokens
}

func startFCM(t testing.TB) (*fcmServer, string) {
	f := &fcmServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/token":
			r.ParseForm()
			if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || strings.Count(r.PostForm.Get("assertion"), ".") != 2 {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"invalid_grant"}`)
				return
			}
			f.mu.Lock()
			f.tokens++
			f.mu.Unlock()
			io.WriteString(w, `{"access_token":"ya29.test","token_type":"Bearer","expires_in":3600}`)
		case r.URL.Path == "/v1/projects/ums-test/messages:send":
			if r.Header.Get("Authorization") != "Bearer ya29.test" {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"error":{"code":401,"status":"UNAUTHENTICATED","message":"bad token"}}`)
				return
			}
			var body struct {
				Message struct {
					Token string `json:"token"`
				} `json:"message"`
			}
			json.NewDecoder(r.Body).Decode(&body)
			f.mu.Lock()
			f.sends = append(f.sends, body.Message.Token)
			f.mu.Unlock()
			if body.Message.Token == "dead" {
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",`+
					`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
				return
			}
			io.WriteString(w, `{"name":"projects/ums-test/messages/0:1"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "ums-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "ums@ums-test.iam.gserviceaccount.com", "token_uri": f.URL + "/token"})
	file := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return f, file
}

// Provider behaviour through the pipeline: push falls back to SMS when the
// FCM token is unregistered; SMS is retried on a Twilio 5xx and fails at
// once on 21211; a gateway from the config file sends to its JSON API.
func TestNotifyProviders(t *testing.T) {
	tw := startTwilio(t)
	fcm, saFile := startFCM(t)
	var gwMu sync.Mutex
	var gwBodies []map[string]any
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		json.NewDecoder(r.Body).Decode(&b)
		gwMu.Lock()
		gwBodies = append(gwBodies, b)
		gwMu.Unlock()
		io.WriteString(w, `{"requestId":"r-1","statusCode":"202","statusName":"success"}`)
	}))
	defer gw.Close()
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.WithConfig(func(c *config.Config) {
		c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom, c.TwilioBaseURL = twilioSID, twilioToken, "+15005550006", tw.URL
		c.FCMCredentials, c.FCMEndpoint = saFile, fcm.URL
		c.NotifyBackoffBase, c.NotifyBackoffMax = 10e6, 50e6
		c.Gateways = []byte(`
- name: kakao
  url: ` + gw.URL + `/alimtalk
  body: '{"to": {{json .To}}, "text": {{json .Text}}}'
  success_path: statusCode
  success_values: ["202"]
  id_path: requestId
`)
		c.GatewaysAt = "test"
	}))

	// Push with a dead token falls back to SMS.
	a := submit(t, b, map[string]any{"channels": []string{"push", "sms"},
		"to":      map[string]any{"push": map[string]any{"fcm_token": "dead"}, "phone": "+821012345678"},
		"content": map[string]any{"subject": "Door", "text": "front door open"}}, http.StatusAccepted, nil)
	r := waitStatus(t, b, a.ID, "sent")
	if r.Channel != "sms" || len(r.Attempts) != 2 || !strings.Contains(r.Attempts[0].Error, "UNREGISTERED") {
		t.Fatalf("push→sms record %+v", r)
	}
	// A live token goes by FCM.
	live := submit(t, b, map[string]any{"channel": "push", "to": map[string]any{"push": map[string]any{"fcm_token": "tok-1"}},
		"content": map[string]any{"subject": "Hi", "text": "x"}}, http.StatusAccepted, nil)
	waitStatus(t, b, live.ID, "sent")
	fcm.mu.Lock()
	if fcm.tokens != 1 || len(fcm.sends) != 2 {
		t.Fatalf("FCM: %d token fetches, sends %v", fcm.tokens, fcm.sends)
	}
	fcm.mu.Unlock()

	// Twilio 5xx: retried, then sent.
	base := tw.calls()
	tw.mu.Lock()
	tw.answer = func(n int) (int, string) {
		if n == base+1 {
			return http.StatusServiceUnavailable, `{"code":20500,"message":"unavailable","status":503}`
		}
		return 0, ""
	}
	tw.mu.Unlock()
	s := submit(t, b, map[string]any{"channel": "sms", "to": map[string]any{"phone": "+821012345678"},
		"content": map[string]any{"text": "retry me"}}, http.StatusAccepted, nil)
	if r := waitStatus(t, b, s.ID, "sent"); len(r.Attempts) != 2 {
		t.Fatalf("5xx retry history %+v", r.Attempts)
	}
	// 21211: failed at once, not retried.
	tw.mu.Lock()
	tw.answer = func(int) (int, string) {
		return http.StatusBadRequest, `{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`
	}
	tw.mu.Unlock()
	before := tw.calls()
	bad := submit(t, b, map[string]any{"channel": "sms", "to": map[string]any{"phone": "+821000000000"},
		"content": map[string]any{"text": "x"}}, http.StatusAccepted, nil)
	if r := waitStatus(t, b, bad.ID, "dead_lettered"); len(r.Attempts) != 1 || !strings.Contains(r.Error, "21211") {
		t.Fatalf("21211 record %+v", r)
	}
	if n := tw.calls() - before; n != 1 {
		t.Fatalf("21211 tried %d times", n)
	}

	// The gateway is a channel by its name.
	k := submit(t, b, map[string]any{"channel": "kakao", "to": map[string]any{"phone": "+821012345678"},
		"content": map[string]any{"text": "주문이 접수되었습니다"}}, http.StatusAccepted, nil)
	waitStatus(t, b, k.ID, "sent")
	gwMu.Lock()
	defer gwMu.Unlock()
	if len(gwBodies) != 1 || gwBodies[0]["to"] != "+821012345678" || gwBodies[0]["text"] != "주문이 접수되었습니다" {
		t.Fatalf("gateway got %v", gwBodies)
	}
}
