package push_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/unifiedms/ums/channels/push"
)

func TestParseTarget(t *testing.T) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256dh := base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	auth := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
	wp := func(endpoint, p256dh, auth string) string {
		return `{"web_push":{"endpoint":"` + endpoint + `","expirationTime":null,"keys":{"p256dh":"` + p256dh + `","auth":"` + auth + `"}}}`
	}
	notOnCurve := base64.RawURLEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...))

	cases := []struct {
		raw      string
		provider string
		want     string // "" for ok, else a part of the error
	}{
		{`{"fcm_token":"` + fcmToken + `"}`, "fcm", ""},
		{`{"apns_token":"` + apnsHex + `"}`, "apns", ""},
		{`{"apns_token":"` + strings.ToUpper(apnsHex) + `"}`, "apns", ""},
		{wp("https://fcm.googleapis.com/fcm/send/abc:def", p256dh, auth), "webpush", ""},
		{wp("https://updates.push.services.mozilla.com/wpush/v2/gAAAA", p256dh, auth+"=="), "webpush", ""},
		{` { "fcm_token" : "abc" } `, "fcm", ""},

		{``, "", "must be a JSON object"},
		{`null`, "", "must be a JSON object"},
		{`"abc"`, "", "must be a JSON object"},
		{`[]`, "", "must be a JSON object"},
		{`{}`, "", "one of fcm_token, web_push, apns_token is required"},
		{`{"gcm_token":"abc"}`, "", `unknown key "gcm_token"`},
		{`{"fcm_token":"abc","apns_token":"` + apnsHex + `"}`, "", "not fcm_token and apns_token"},
		{`{"fcm_token":"abc","fcm_token":"def"}`, "", "not fcm_token and fcm_token"},
		{`{"fcm_token":"abc"} {}`, "", "data after the JSON object"},
		{`{"fcm_token":"abc"`, "", "push target"},
		{`{"fcm_token":42}`, "", "fcm_token: must be a string"},
		{`{"fcm_token":""}`, "", "fcm_token: empty"},
		{`{"fcm_token":"a b"}`, "", "not visible ASCII"},
		{`{"fcm_token":"` + strings.Repeat("a", 4097) + `"}`, "", "longer than 4096"},
		{`{"apns_token":"xyz"}`, "", "apns_token: not hexadecimal"},
		{`{"apns_token":"abcd"}`, "", "apns_token: 2 bytes, want 32 to 100"},
		{`{"apns_token":"` + apnsHex + `/../x"}`, "", "not hexadecimal"},
		{`{"web_push":"https://x"}`, "", "must be a PushSubscription object"},
		{`{"web_push":{}}`, "", "web_push.endpoint: required"},
		{wp("http://push.example.com/x", p256dh, auth), "", "is not an https URL"},
		{wp("https:///x", p256dh, auth), "", "is not an https URL"},
		{wp("https://user@push.example.com/x", p256dh, auth), "", "is not an https URL"},
		{wp("https://push.example.com/%zz", p256dh, auth), "", "invalid URL escape"},
		{wp("https://push.example.com/x", "", auth), "", "web_push.keys.p256dh: required"},
		{wp("https://push.example.com/x", "!!!", auth), "", "web_push.keys.p256dh: not base64url"},
		{wp("https://push.example.com/x", notOnCurve, auth), "", "not an uncompressed P-256 public key"},
		{wp("https://push.example.com/x", p256dh[:20], auth), "", "not an uncompressed P-256 public key"},
		{wp("https://push.example.com/x", p256dh, ""), "", "web_push.keys.auth: required"},
		{wp("https://push.example.com/x", p256dh, "AAAA"), "", "web_push.keys.auth: 3 bytes, want 16"},
	}
	for _, c := range cases {
		tg, err := push.ParseTarget([]byte(c.raw))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("ParseTarget(%s) = %v", c.raw, err)
		case c.want == "" && tg.Provider != c.provider:
			t.Errorf("ParseTarget(%s): provider %q, want %q", c.raw, tg.Provider, c.provider)
		case c.want != "" && err == nil:
			t.Errorf("ParseTarget(%s) = ok, want %q", c.raw, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("ParseTarget(%s) = %v, want it to say %q", c.raw, err, c.want)
		}
	}

	tg, err := push.ParseTarget([]byte(wp("https://push.example.com/x", p256dh, auth)))
	if err != nil || tg.Subscription == nil || tg.Subscription.Endpoint != "https://push.example.com/x" ||
		tg.Subscription.Keys.P256dh != p256dh || tg.Subscription.Keys.Auth != auth {
		t.Errorf("web push target parsed as %+v (%v)", tg, err)
	}
	tg, err = push.ParseTarget([]byte(`{"apns_token":"` + apnsHex + `"}`))
	if err != nil || tg.Token != apnsHex {
		t.Errorf("apns target parsed as %+v (%v)", tg, err)
	}
}
