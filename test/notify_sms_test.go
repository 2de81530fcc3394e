package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/unifiedms/ums/channels/sms"
	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "0123456789abcdef0123456789abcdef"
)

// An SMS goes to Twilio's Messages API with the status callback; a forged
// callback is refused and changes nothing, a signed one marks the
// notification delivered and publishes the event.
func TestNotifySMSTwilio(t *testing.T) {
	var mu sync.Mutex
	var forms []url.Values
	tw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/"+twilioSID+"/Messages.json" {
			http.NotFound(w, r)
			return
		}
		if u, p, _ := r.BasicAuth(); u != twilioSID || p != twilioToken {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"sid": "SM00000000000000000000000000000001", "status": "queued",
			"to": r.PostForm.Get("To"), "num_segments": "1"})
	}))
	defer tw.Close()
	var b *testutil.Broker
	b = testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.WithConfig(func(c *config.Config) {
		c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom, c.TwilioBaseURL = twilioSID, twilioToken, "+15005550006", tw.URL
		c.PublicURL = "https://ums.example.com"
		c.SMSMaxSegments = 2
	}))
	events := eventQueue(t, b.AMQPURL)
	a := submit(t, b, map[string]any{"channel": "sms", "to": map[string]any{"phone": "+821012345678"},
		"content": map[string]any{"text": "인증번호 123456"}}, http.StatusAccepted, nil)
	waitStatus(t, b, a.ID, "sent")
	mu.Lock()
	f := forms[0]
	mu.Unlock()
	if f.Get("To") != "+821012345678" || f.Get("From") != "+15005550006" || f.Get("Body") != "인증번호 123456" ||
		f.Get("StatusCallback") != "https://ums.example.com/api/v1/callbacks/twilio" {
		t.Fatalf("Twilio got %v", f)
	}
	// Three UCS-2 segments (over 134 characters) are refused at submission.
	long := submit(t, b, map[string]any{"channel": "sms", "to": map[string]any{"phone": "+821012345678"},
		"content": map[string]any{"text": strings.Repeat("가", 135)}}, http.StatusUnprocessableEntity, nil)
	if long.Field != "content.text" {
		t.Fatalf("long text refused on %q", long.Field)
	}

	form := url.Values{"MessageSid": {"SM00000000000000000000000000000001"}, "MessageStatus": {"delivered"},
		"AccountSid": {twilioSID}}
	callback := func(sig string) int {
		req, _ := http.NewRequest("POST", b.HTTPURL+"/api/v1/callbacks/twilio", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := callback(sms.Signature("wrong-token", "https://ums.example.com/api/v1/callbacks/twilio", form)); got != http.StatusForbidden {
		t.Fatalf("forged callback: %d", got)
	}
	if r := waitStatus(t, b, a.ID, "sent"); r.Status != "sent" {
		t.Fatal("a forged callback changed the status")
	}
	if got := callback(sms.Signature(twilioToken, "https://ums.example.com/api/v1/callbacks/twilio", form)); got/100 != 2 {
		t.Fatalf("signed callback: %d", got)
	}
	waitStatus(t, b, a.ID, "delivered")
	if got := strings.Join(eventsOf(t, events, a.ID, "delivered"), ","); got != "queued,sending,sent,delivered" {
		t.Fatalf("events %s", got)
	}
}
