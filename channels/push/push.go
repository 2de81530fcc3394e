// Package push is the push channel: one notify.Sender that delivers to a
// mobile or browser device through the provider its target names.
//
// A notification's to.push (notify.Message.Push) is a JSON object with
// exactly one of
//
//	{"fcm_token": "<FCM registration token>"}
//	{"web_push": {"endpoint": "https://...", "keys": {"p256dh": "...", "auth": "..."}}}
//	{"apns_token": "<hex APNs device token>"}
//
// and is sent through
//   - Firebase Cloud Messaging HTTP v1 (POST /v1/projects/<id>/messages:send)
//     with an OAuth 2 access token obtained for a service account and
//     cached until it expires;
//   - Web Push (RFC 8030) to the browser's push service, the payload
//     encrypted for the subscription (RFC 8291, aes128gcm) and the request
//     signed with the server's VAPID key (RFC 8292);
//   - Apple Push Notification service over HTTP/2 with token (JWT)
//     authentication.
//
// Each provider is optional (Config.FCM, Config.WebPush, Config.APNs);
// ValidateTarget refuses a target whose provider is not configured, so the
// problem is reported when the notification is submitted, not when it is
// sent.
//
// Failures are classified for notify's retry logic: a target the provider
// no longer knows (FCM UNREGISTERED, Web Push 404/410, APNs 410) is
// permanent and wraps ErrUnregistered so applications can drop the token;
// bad requests and refused credentials are permanent; 429, 5xx, network
// errors and timeouts are transient, with the provider's Retry-After.
package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unifiedms/ums/notify"
)

// Provider names, as in notify.Result.Provider.
const (
	ProviderFCM     = "fcm"
	ProviderWebPush = "webpush"
	ProviderAPNs    = "apns"
)

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 15 * time.Second

const (
	// maxAnswer is how much of a response body is read.
	maxAnswer = 16 << 10
	// maxErrorBody is how much of a response body an error quotes.
	maxErrorBody = 256
)

// ErrUnregistered is wrapped by the permanent failure of a target that the
// provider says is no longer valid: FCM UNREGISTERED, Web Push 404 and 410,
// APNs 410 Unregistered. The application should forget the token or
// subscription.
var ErrUnregistered = errors.New("push target unregistered")

// Config configures a Sender. At least one provider must be configured.
type Config struct {
	// FCM configures Firebase Cloud Messaging (fcm_token targets).
	FCM *FCMConfig
	// WebPush configures Web Push (web_push targets).
	WebPush *WebPushConfig
	// APNs configures Apple Push Notification service (apns_token
	// targets).
	APNs *APNsConfig
	// Timeout bounds one Send, including an access token fetch. 0 means
	// DefaultTimeout. A ctx deadline that comes sooner wins.
	Timeout time.Duration
	// Now is the clock of Retry-After dates; nil means time.Now.
	Now func() time.Time
}

// Sender sends push notifications. It is safe for concurrent use.
type Sender struct {
	fcm     *fcmSender
	webpush *webPushSender
	apns    *apnsSender
	timeout time.Duration
	now     func() time.Time
}

var _ notify.Sender = (*Sender)(nil)

// New returns a Sender for cfg. It loads and checks every configured
// provider's credentials, so a bad key fails here rather than on the first
// send.
func New(cfg Config) (*Sender, error) {
	if cfg.FCM == nil && cfg.WebPush == nil && cfg.APNs == nil {
		return nil, errors.New("push: no provider configured (FCM, Web Push or APNs)")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("push: negative timeout %v", cfg.Timeout)
	}
	s := &Sender{timeout: cfg.Timeout, now: cfg.Now}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if cfg.FCM != nil {
		if s.fcm, err = newFCM(*cfg.FCM, s.now); err != nil {
			return nil, err
		}
	}
	if cfg.WebPush != nil {
		if s.webpush, err = newWebPush(*cfg.WebPush, s.now); err != nil {
			return nil, err
		}
	}
	if cfg.APNs != nil {
		if s.apns, err = newAPNs(*cfg.APNs); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Providers returns the names of the configured providers, in the order
// fcm, webpush, apns.
func (s *Sender) Providers() []string {
	var p []string
	if s.fcm != nil {
		p = append(p, ProviderFCM)
	}
	if s.webpush != nil {
		p = append(p, ProviderWebPush)
	}
	if s.apns != nil {
		p = append(p, ProviderAPNs)
	}
	return p
}

func (s *Sender) configured(provider string) bool {
	switch provider {
	case ProviderFCM:
		return s.fcm != nil
	case ProviderWebPush:
		return s.webpush != nil
	case ProviderAPNs:
		return s.apns != nil
	}
	return false
}

// ValidateTarget checks a to.push object when a notification is
// submitted: it must be well formed (see ParseTarget) and name a
// configured provider. A Web Push endpoint that is "localhost" or a
// literal non-public IP address is refused here unless
// WebPushConfig.AllowPrivate; names that resolve to such addresses are
// refused when sending.
func (s *Sender) ValidateTarget(raw []byte) error {
	t, err := ParseTarget(raw)
	if err != nil {
		return err
	}
	if !s.configured(t.Provider) {
		return fmt.Errorf("%s: push provider %s is not configured (configured: %s)",
			t.key(), t.Provider, strings.Join(s.Providers(), ", "))
	}
	if t.Provider == ProviderWebPush && !s.webpush.allowPrivate {
		return checkEndpointHost(t.Subscription.Endpoint)
	}
	return nil
}

// Close closes idle connections. The Sender stays usable.
func (s *Sender) Close() error {
	if s.fcm != nil {
		s.fcm.close()
	}
	if s.webpush != nil {
		s.webpush.close()
	}
	if s.apns != nil {
		s.apns.close()
	}
	return nil
}

// Send delivers m to the device m.Push (or, when empty, m.To) names. The title is m.Subject, the
// body m.Text, and m.Data travels as the provider's custom data. Failures
// are *notify.Error values; see the package doc for their classes.
func (s *Sender) Send(ctx context.Context, m *notify.Message) (notify.Result, error) {
	if m == nil {
		return notify.Result{}, notify.Permanent(0, errors.New("push: no message"))
	}
	raw := m.Push
	if len(raw) == 0 {
		raw = []byte(m.To)
	}
	t, err := ParseTarget(raw)
	if err != nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("push: %w", err))
	}
	if !s.configured(t.Provider) {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("push: provider %s is not configured", t.Provider))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var res notify.Result
	switch t.Provider {
	case ProviderFCM:
		res, err = s.fcm.send(ctx, t.Token, m)
	case ProviderWebPush:
		res, err = s.webpush.send(ctx, t.Subscription, m)
	case ProviderAPNs:
		res, err = s.apns.send(ctx, t.Token, m)
	}
	if err != nil {
		return notify.Result{}, err
	}
	res.Provider = t.Provider
	return res, nil
}

// roundTripError classifies a failed request to provider.
func roundTripError(ctx context.Context, provider string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return notify.Transient(0, 0, fmt.Errorf("%s: timed out: %w", provider, err))
	}
	return notify.Transient(0, 0, fmt.Errorf("%s: %w", provider, err))
}

// printable makes a provider's text safe and short for an error message.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// status is resp's status line, or its code when the line is empty.
func status(resp *http.Response) string {
	if resp.Status != "" {
		return resp.Status
	}
	return strconv.Itoa(resp.StatusCode)
}
