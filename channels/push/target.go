package push

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Keys of a to.push object.
const (
	KeyFCMToken  = "fcm_token"
	KeyWebPush   = "web_push"
	KeyAPNsToken = "apns_token"
)

// Limits of target values.
const (
	// MaxFCMTokenBytes bounds an FCM registration token (they are about
	// 160 characters today).
	MaxFCMTokenBytes = 4096
	// MinAPNsTokenBytes and MaxAPNsTokenBytes bound an APNs device token
	// once hex-decoded (32 bytes today; Apple says the length may change).
	MinAPNsTokenBytes = 32
	MaxAPNsTokenBytes = 100
	// MaxEndpointBytes bounds a Web Push endpoint URL.
	MaxEndpointBytes = 4096
)

// Target is a parsed to.push object.
type Target struct {
	// Provider is ProviderFCM, ProviderWebPush or ProviderAPNs.
	Provider string
	// Token is the FCM registration token or the hex APNs device token.
	Token string
	// Subscription is the browser's PushSubscription (Web Push only).
	Subscription *Subscription
}

// Subscription is a browser's PushSubscription, as its toJSON() gives it.
type Subscription struct {
	Endpoint string           `json:"endpoint"`
	Keys     SubscriptionKeys `json:"keys"`
}

// SubscriptionKeys are the subscription's keys, base64url encoded: the
// user agent's P-256 public key (65 bytes, uncompressed) and its 16-byte
// authentication secret.
type SubscriptionKeys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

func (t Target) key() string {
	switch t.Provider {
	case ProviderFCM:
		return KeyFCMToken
	case ProviderWebPush:
		return KeyWebPush
	case ProviderAPNs:
		return KeyAPNsToken
	}
	return "push"
}

// ParseTarget parses and checks a to.push object without regard to which
// providers are configured: exactly one of fcm_token (a non-empty string
// of visible ASCII), web_push (an https endpoint and valid p256dh and auth
// keys) or apns_token (hex, 32 to 100 bytes).
func ParseTarget(raw []byte) (Target, error) {
	var t Target
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return t, errors.New("push target must be a JSON object with one of fcm_token, web_push, apns_token")
	}
	var key string
	var value json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return t, fmt.Errorf("push target: %v", err)
		}
		k, _ := tok.(string)
		switch k {
		case KeyFCMToken, KeyWebPush, KeyAPNsToken:
		default:
			return t, fmt.Errorf("push target: unknown key %q (want one of fcm_token, web_push, apns_token)", k)
		}
		if key != "" {
			return t, fmt.Errorf("push target: give one of fcm_token, web_push, apns_token, not %s and %s", key, k)
		}
		key = k
		if err := dec.Decode(&value); err != nil {
			return t, fmt.Errorf("push target: %s: %v", k, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return t, fmt.Errorf("push target: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return t, errors.New("push target: data after the JSON object")
	}
	switch key {
	case "":
		return t, errors.New("push target: one of fcm_token, web_push, apns_token is required")
	case KeyFCMToken:
		t.Provider = ProviderFCM
		tok, err := stringValue(key, value)
		if err != nil {
			return t, err
		}
		if err := checkFCMToken(tok); err != nil {
			return t, err
		}
		t.Token = tok
	case KeyAPNsToken:
		t.Provider = ProviderAPNs
		tok, err := stringValue(key, value)
		if err != nil {
			return t, err
		}
		if err := checkAPNsToken(tok); err != nil {
			return t, err
		}
		t.Token = tok
	case KeyWebPush:
		t.Provider = ProviderWebPush
		sub, err := parseSubscription(value)
		if err != nil {
			return t, err
		}
		t.Subscription = sub
	}
	return t, nil
}

func stringValue(key string, v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%s: must be a string", key)
	}
	return s, nil
}

func checkFCMToken(tok string) error {
	if tok == "" {
		return errors.New("fcm_token: empty")
	}
	if len(tok) > MaxFCMTokenBytes {
		return fmt.Errorf("fcm_token: longer than %d bytes", MaxFCMTokenBytes)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("fcm_token: character %q at %d is not visible ASCII", c, i)
		}
	}
	return nil
}

func checkAPNsToken(tok string) error {
	if tok == "" {
		return errors.New("apns_token: empty")
	}
	b, err := hex.DecodeString(tok)
	if err != nil {
		return fmt.Errorf("apns_token: not hexadecimal: %v", err)
	}
	if len(b) < MinAPNsTokenBytes || len(b) > MaxAPNsTokenBytes {
		return fmt.Errorf("apns_token: %d bytes, want %d to %d", len(b), MinAPNsTokenBytes, MaxAPNsTokenBytes)
	}
	return nil
}

func parseSubscription(v json.RawMessage) (*Subscription, error) {
	var sub Subscription
	if err := json.Unmarshal(v, &sub); err != nil {
		return nil, fmt.Errorf("web_push: must be a PushSubscription object {endpoint, keys: {p256dh, auth}}: %v", err)
	}
	if sub.Endpoint == "" {
		return nil, errors.New("web_push.endpoint: required")
	}
	if len(sub.Endpoint) > MaxEndpointBytes {
		return nil, fmt.Errorf("web_push.endpoint: longer than %d bytes", MaxEndpointBytes)
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("web_push.endpoint: %v", err)
	}
	if !strings.EqualFold(u.Scheme, "https") || u.Opaque != "" || u.Hostname() == "" || u.User != nil {
		return nil, fmt.Errorf("web_push.endpoint: %q is not an https URL with a host", sub.Endpoint)
	}
	p256dh, err := decodeKey(sub.Keys.P256dh)
	if err != nil {
		return nil, fmt.Errorf("web_push.keys.p256dh: %v", err)
	}
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil {
		return nil, fmt.Errorf("web_push.keys.p256dh: not an uncompressed P-256 public key")
	}
	auth, err := decodeKey(sub.Keys.Auth)
	if err != nil {
		return nil, fmt.Errorf("web_push.keys.auth: %v", err)
	}
	if len(auth) != 16 {
		return nil, fmt.Errorf("web_push.keys.auth: %d bytes, want 16", len(auth))
	}
	return &sub, nil
}

// decodeKey decodes a subscription or VAPID key: base64url as browsers
// give it, with or without padding (standard base64 is accepted too).
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("required")
	}
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	return b, nil
}
