package sms_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/unifiedms/ums/channels/sms"
)

// sign computes X-Twilio-Signature as Twilio's documentation describes it,
// written out for the test: HMAC-SHA1 keyed with the auth token over the
// URL and the parameters' names and values in name order, base64.
func sign(token, fullURL string, pairs ...[2]string) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(fullURL))
	for _, p := range pairs { // the caller lists them sorted
		mac.Write([]byte(p[0] + p[1]))
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// statusForm is a delivered status callback, its pairs sorted by name.
var statusPairs = [][2]string{
	{"AccountSid", accountSID},
	{"ApiVersion", "2010-04-01"},
	{"ErrorCode", "30003"},
	{"From", fromNumber},
	{"MessageSid", "SM0123456789abcdef0123456789abcdef"},
	{"MessageStatus", "undelivered"},
	{"SmsSid", "SM0123456789abcdef0123456789abcdef"},
	{"SmsStatus", "undelivered"},
	{"To", toNumber},
}

func form(pairs [][2]string) url.Values {
	v := url.Values{}
	for _, p := range pairs {
		v.Add(p[0], p[1])
	}
	return v
}

func TestVerifySignature(t *testing.T) {
	u := "https://ums.example.com/api/v1/callbacks/twilio"
	good := sign(authToken, u, statusPairs...)
	f := form(statusPairs)
	if !sms.VerifySignature(authToken, u, f, good) {
		t.Fatal("a good signature does not verify")
	}
	if got := sms.Signature(authToken, u, f); got != good {
		t.Errorf("Signature = %q, want %q", got, good)
	}
	// Twilio may sign with or without the default port.
	if !sms.VerifySignature(authToken, "https://ums.example.com:443/api/v1/callbacks/twilio", f, good) {
		t.Error("the URL with :443 does not verify")
	}
	withPort := sign(authToken, "https://ums.example.com:443/api/v1/callbacks/twilio", statusPairs...)
	if !sms.VerifySignature(authToken, u, f, withPort) {
		t.Error("a signature of the URL with :443 does not verify")
	}

	tampered := form(statusPairs)
	tampered.Set("MessageStatus", "delivered")
	extra := form(statusPairs)
	extra.Add("Price", "-0.0075")
	for name, c := range map[string]struct {
		token, url string
		form       url.Values
		sig        string
	}{
		"forged with another token": {authToken, u, f, sign("0000feedf00dfeedf00dfeedf00d0000", u, statusPairs...)},
		"tampered value":            {authToken, u, tampered, good},
		"added parameter":           {authToken, u, extra, good},
		"other URL":                 {authToken, "https://evil.example.com/api/v1/callbacks/twilio", f, good},
		"other port":                {authToken, "https://ums.example.com:8443/api/v1/callbacks/twilio", f, good},
		"query changed":             {authToken, u + "?n=1", f, good},
		"empty signature":           {authToken, u, f, ""},
		"empty token":               {"", u, f, sign("", u, statusPairs...)},
		"truncated":                 {authToken, u, f, good[:len(good)-2]},
	} {
		if sms.VerifySignature(c.token, c.url, c.form, c.sig) {
			t.Errorf("%s: verified", name)
		}
	}
}

// Repeated names (MediaUrl0... are distinct, but a form may repeat one)
// sign each value, sorted.
func TestVerifySignatureRepeatedNames(t *testing.T) {
	u := "https://ums.example.com/cb"
	f := url.Values{"B": {"2"}, "A": {"z", "y"}}
	sig := sign(authToken, u, [2]string{"A", "y"}, [2]string{"A", "z"}, [2]string{"B", "2"})
	if !sms.VerifySignature(authToken, u, f, sig) {
		t.Error("does not verify")
	}
}

type parsed struct {
	cb  sms.Callback
	err error
}

// callbackServer is the HTTP layer's route in miniature: 403 for a bad
// signature, 400 for a bad callback, 200 with the parsed callback.
func callbackServer(t *testing.T, publicPath string) (*httptest.Server, chan parsed) {
	got := make(chan parsed, 1)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb, err := sms.ParseCallback(r, authToken, srv.URL+publicPath)
		got <- parsed{cb, err}
		switch {
		case errors.Is(err, sms.ErrSignature):
			w.WriteHeader(http.StatusForbidden)
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func post(t *testing.T, target, signature string, f url.Values) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestParseCallback(t *testing.T) {
	srv, got := callbackServer(t, "")
	target := sms.CallbackURL(srv.URL + "/")
	if want := srv.URL + "/api/v1/callbacks/twilio"; target != want {
		t.Fatalf("CallbackURL = %q, want %q", target, want)
	}
	if code := post(t, target, sign(authToken, target, statusPairs...), form(statusPairs)); code != 200 {
		t.Fatalf("status %d", code)
	}
	p := <-got
	if p.err != nil {
		t.Fatal(p.err)
	}
	cb := p.cb
	if cb.MessageSid != "SM0123456789abcdef0123456789abcdef" || cb.MessageStatus != sms.StatusUndelivered ||
		cb.ErrorCode != 30003 || cb.AccountSid != accountSID || cb.From != fromNumber || cb.To != toNumber {
		t.Errorf("Callback = %+v", cb)
	}
	if !cb.Final() || !cb.Failed() {
		t.Errorf("undelivered: Final %v Failed %v", cb.Final(), cb.Failed())
	}
	if cb.Form.Get("ApiVersion") != "2010-04-01" {
		t.Errorf("Form = %v", cb.Form)
	}

	// A query string is part of what is signed.
	withQuery := target + "?n=n-42"
	if code := post(t, withQuery, sign(authToken, withQuery, statusPairs...), form(statusPairs)); code != 200 {
		t.Errorf("with a query: status %d (%v)", code, (<-got).err)
	} else {
		<-got
	}
}

func TestParseCallbackRefusesForgeries(t *testing.T) {
	srv, got := callbackServer(t, "")
	target := sms.CallbackURL(srv.URL)
	tampered := form(statusPairs)
	tampered.Set("MessageStatus", "delivered")
	cases := []struct {
		name string
		sig  string
		form url.Values
	}{
		{"no signature", "", form(statusPairs)},
		{"forged", sign("0000feedf00dfeedf00dfeedf00d0000", target, statusPairs...), form(statusPairs)},
		{"tampered", sign(authToken, target, statusPairs...), tampered},
		{"signed for another URL", sign(authToken, "https://ums.example.com/api/v1/callbacks/twilio", statusPairs...), form(statusPairs)},
		{"garbage", "not base64 at all", form(statusPairs)},
	}
	for _, c := range cases {
		if code := post(t, target, c.sig, c.form); code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, code)
		}
		if p := <-got; !errors.Is(p.err, sms.ErrSignature) || p.cb.MessageSid != "" {
			t.Errorf("%s: ParseCallback = %+v, %v", c.name, p.cb, p.err)
		}
	}
}

func TestParseCallbackBadRequests(t *testing.T) {
	srv, got := callbackServer(t, "")
	target := sms.CallbackURL(srv.URL)
	noSid := [][2]string{{"AccountSid", accountSID}, {"MessageStatus", "sent"}}
	badCode := [][2]string{{"ErrorCode", "3000x"}, {"MessageSid", "SM1"}, {"MessageStatus", "failed"}}
	for name, pairs := range map[string][][2]string{"no MessageSid": noSid, "bad ErrorCode": badCode} {
		if code := post(t, target, sign(authToken, target, pairs...), form(pairs)); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, code)
		}
		if p := <-got; !errors.Is(p.err, sms.ErrBadCallback) {
			t.Errorf("%s: %v", name, p.err)
		}
	}

	// The older Sms* names alone are enough.
	old := [][2]string{{"SmsSid", "SM9"}, {"SmsStatus", "delivered"}}
	if code := post(t, target, sign(authToken, target, old...), form(old)); code != 200 {
		t.Errorf("Sms* names: status %d", code)
	}
	if p := <-got; p.err != nil || p.cb.MessageSid != "SM9" || p.cb.MessageStatus != "delivered" || p.cb.Failed() || !p.cb.Final() {
		t.Errorf("Sms* names: %+v, %v", p.cb, p.err)
	}

	// Not a POST, not a form.
	req := httptest.NewRequest(http.MethodGet, "/api/v1/callbacks/twilio", nil)
	if _, err := sms.ParseCallback(req, authToken, "https://ums.example.com"); !errors.Is(err, sms.ErrBadCallback) {
		t.Errorf("GET: %v", err)
	}
	req = httptest.NewRequest(http.MethodPost, "/api/v1/callbacks/twilio", strings.NewReader(`{"MessageSid":"SM1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Twilio-Signature", "x")
	if _, err := sms.ParseCallback(req, authToken, "https://ums.example.com"); !errors.Is(err, sms.ErrBadCallback) {
		t.Errorf("JSON: %v", err)
	}
	// Without a public URL or token nothing can be verified.
	if _, err := sms.ParseCallback(req, authToken, ""); err == nil || errors.Is(err, sms.ErrBadCallback) {
		t.Errorf("no public URL: %v", err)
	}
	if _, err := sms.ParseCallback(req, "", "https://ums.example.com"); err == nil {
		t.Error("no auth token: accepted")
	}
}

// Behind a reverse proxy at https://example.com/ums, Twilio signs the
// public URL, whether or not the proxy strips the prefix.
func TestParseCallbackPublicURLWithPath(t *testing.T) {
	public := "https://example.com/ums"
	signedFor := sms.CallbackURL(public) + "?t=acme"
	pairs := [][2]string{{"MessageSid", "SM7"}, {"MessageStatus", "delivered"}}
	sig := sign(authToken, signedFor, pairs...)
	for _, path := range []string{"/ums/api/v1/callbacks/twilio?t=acme", "/api/v1/callbacks/twilio?t=acme"} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form(pairs).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Header.Set("X-Twilio-Signature", sig)
		cb, err := sms.ParseCallback(req, authToken, public+"/")
		if err != nil || cb.MessageSid != "SM7" {
			t.Errorf("%s: %+v, %v", path, cb, err)
		}
	}
}
