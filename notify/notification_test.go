package notify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func testRules() Rules {
	return Rules{
		Configured: map[string]bool{ChannelEmail: true, ChannelWebhook: true, ChannelSMS: true},
		Address: map[string]func(string) error{
			ChannelEmail: ValidateEmail,
			ChannelSMS:   ValidatePhone,
			ChannelWebhook: func(s string) error {
				if !strings.HasPrefix(s, "https://") {
					return errors.New("not an https URL")
				}
				return nil
			},
		},
		Template: func(id, locale string) ([]string, bool) {
			if id != "otp" || (locale != "" && locale != "en" && locale != "ko") {
				return nil, false
			}
			return []string{"code"}, true
		},
		Now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC),
	}
}

func TestValidateAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"inline email":   `{"channel":"email","to":{"email":"a@example.com"},"content":{"subject":"Hi","text":"hello"}}`,
		"template":       `{"channel":"sms","to":{"phone":"+821012345678"},"template":"otp","locale":"ko","data":{"code":"123456"},"priority":9}`,
		"fallback":       `{"channels":["webhook","email"],"to":{"webhook":"https://hooks.example.com/x","email":"Ann <ann@example.com>"},"content":{"html":"<b>x</b>"},"class":"advertising","tags":["a","b"],"tenant":"acme"}`,
		"scheduled":      `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"send_at":"2026-12-06T09:00:00+09:00","expires_at":"2026-12-07T00:00:00Z"}`,
		"idempotent":     `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"idempotency_key":"k-1","class":"critical"}`,
		"priority zero":  `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"priority":0}`,
		"template deflt": `{"channel":"email","to":{"email":"a@example.com"},"template":"otp","data":{"code":1}}`,
	} {
		n, err := Decode([]byte(doc))
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if _, _, err := n.Validate(testRules()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// Each invalid field is refused with its name, and nothing else passes.
func TestValidateRefuses(t *testing.T) {
	long := strings.Repeat("x", MaxSubjectBytes+1)
	for _, c := range []struct {
		doc, field string
	}{
		{`{"to":{"email":"a@example.com"},"content":{"text":"x"}}`, "channel"},
		{`{"channel":"fax","to":{},"content":{"text":"x"}}`, "channel"},
		{`{"channel":"push","to":{"push":{"token":"t"}},"content":{"text":"x"}}`, "channel"},
		{`{"channel":"email","channels":["sms"],"to":{"email":"a@example.com"},"content":{"text":"x"}}`, "channels"},
		{`{"channels":["email","email"],"to":{"email":"a@example.com"},"content":{"text":"x"}}`, "channels[1]"},
		{`{"channels":["email","sms"],"to":{"email":"a@example.com"},"content":{"text":"x"}}`, "to.phone"},
		{`{"channel":"email","to":{},"content":{"text":"x"}}`, "to.email"},
		{`{"channel":"email","to":{"email":"not an address"},"content":{"text":"x"}}`, "to.email"},
		{`{"channel":"sms","to":{"phone":"01012345678"},"content":{"text":"x"}}`, "to.phone"},
		{`{"channel":"webhook","to":{"webhook":"http://10.0.0.1/"},"content":{"text":"x"}}`, "to.webhook"},
		{`{"channel":"email","to":{"email":"a@example.com"}}`, "content"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"subject":"s"}}`, "content"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x","subject":"` + long + `"}}`, "content.subject"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x","subject":"a\r\nBcc: x@y"}}`, "content.subject"},
		{`{"channel":"email","to":{"email":"a@example.com"},"template":"otp","content":{"text":"x"}}`, "content"},
		{`{"channel":"email","to":{"email":"a@example.com"},"template":"nope","data":{}}`, "template"},
		{`{"channel":"email","to":{"email":"a@example.com"},"template":"otp","locale":"fr","data":{"code":1}}`, "locale"},
		{`{"channel":"email","to":{"email":"a@example.com"},"template":"otp","data":{}}`, "data.code"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"priority":10}`, "priority"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"priority":-1}`, "priority"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"class":"spam"}`, "class"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"send_at":"tomorrow"}`, "send_at"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"expires_at":"2026-12-05T11:00:00Z"}`, "expires_at"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"send_at":"2026-12-08T00:00:00Z","expires_at":"2026-12-07T00:00:00Z"}`, "expires_at"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"tags":[""]}`, "tags[0]"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"tenant":"` + strings.Repeat("t", MaxTenantBytes+1) + `"}`, "tenant"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"priority":"high"}`, "priority"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"chanel":"sms"}`, "chanel"},
		{`{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"tags":"a"}`, "tags"},
	} {
		n, err := Decode([]byte(c.doc))
		if err == nil {
			_, _, err = n.Validate(testRules())
		}
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s\n  got %v, want an invalid %s", c.doc, err, c.field)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, doc := range []string{`{"channel":`, `not json`, `{"channel":"email"} {}`, ``} {
		if _, err := Decode([]byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want ErrMalformed", doc, err)
		}
	}
}
