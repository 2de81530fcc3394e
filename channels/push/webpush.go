package push

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/SherClockHolmes/webpush-go"

	"github.com/unifiedms/ums/notify"
)

// DefaultWebPushTTL is how long a push service keeps a message for an
// offline browser when WebPushConfig.TTL is zero (four weeks, the usual
// maximum of push services).
const DefaultWebPushTTL = 28 * 24 * time.Hour

// WebPushConfig configures Web Push.
type WebPushConfig struct {
	// VAPIDPublicKey is the application server's P-256 public key,
	// uncompressed and base64url encoded: the applicationServerKey the
	// web page subscribed with.
	VAPIDPublicKey string
	// VAPIDPrivateKey is the matching private key (32 bytes, base64url).
	VAPIDPrivateKey string
	// Subject is the contact push services see in the VAPID token:
	// "mailto:ops@example.com" or an https URL. Required.
	Subject string
	// TTL is how long the push service keeps a message for an offline
	// browser; 0 means DefaultWebPushTTL.
	TTL time.Duration
	// AllowPrivate permits endpoints on loopback, private and other
	// non-public addresses (tests, push services on an internal network).
	// Endpoints come from browsers, that is from users, so leave it off.
	AllowPrivate bool
	// Transport, if set, is used (cloned) instead of the default one, e.g.
	// for its TLS settings. Unless AllowPrivate is set, its proxy and dial
	// functions are replaced by the guarded dialer.
	Transport *http.Transport
}

type webPushSender struct {
	publicKey  string // base64url without padding
	privateKey string
	subscriber string // for webpush-go: a bare address or an https URL
	ttl        int    // seconds
	// allowPrivate permits non-public endpoints.
	allowPrivate bool
	client       *http.Client
	now          func() time.Time
}

func newWebPush(cfg WebPushConfig, now func() time.Time) (*webPushSender, error) {
	pub, err := decodeKey(cfg.VAPIDPublicKey)
	if err != nil {
		return nil, fmt.Errorf("push: Web Push VAPID public key: %v", err)
	}
	priv, err := decodeKey(cfg.VAPIDPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("push: Web Push VAPID private key: %v", err)
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, errors.New("push: Web Push VAPID private key: not a P-256 private key")
	}
	if !bytes.Equal(key.PublicKey().Bytes(), pub) {
		return nil, errors.New("push: Web Push VAPID public key does not match the private key")
	}
	var subscriber string
	switch {
	case strings.HasPrefix(cfg.Subject, "mailto:") && len(cfg.Subject) > len("mailto:"):
		// webpush-go adds "mailto:" to anything that is not an https URL.
		subscriber = strings.TrimPrefix(cfg.Subject, "mailto:")
	case strings.HasPrefix(cfg.Subject, "https://"):
		if u, err := url.Parse(cfg.Subject); err != nil || u.Host == "" {
			return nil, fmt.Errorf("push: Web Push subject %q is not a valid URL", cfg.Subject)
		}
		subscriber = cfg.Subject
	default:
		return nil, fmt.Errorf("push: Web Push subject %q must be a mailto: or https: URL", cfg.Subject)
	}
	ttl := cfg.TTL
	if ttl < 0 {
		return nil, fmt.Errorf("push: Web Push: negative TTL %v", ttl)
	}
	if ttl == 0 {
		ttl = DefaultWebPushTTL
	}
	var tr *http.Transport
	if cfg.Transport != nil {
		tr = cfg.Transport.Clone()
	} else {
		tr = defaultTransport()
	}
	if !cfg.AllowPrivate {
		guard(tr)
	}
	return &webPushSender{
		publicKey:    base64.RawURLEncoding.EncodeToString(pub),
		privateKey:   base64.RawURLEncoding.EncodeToString(priv),
		subscriber:   subscriber,
		ttl:          int(ttl / time.Second),
		allowPrivate: cfg.AllowPrivate,
		client:       &http.Client{Transport: tr, CheckRedirect: noRedirect},
		now:          now,
	}, nil
}

func (w *webPushSender) close() {
	w.client.CloseIdleConnections()
}

// webPushPayload is the JSON document the service worker receives in its
// push event (event.data.json()).
type webPushPayload struct {
	ID    string         `json:"id,omitempty"`
	Title string         `json:"title,omitempty"`
	Body  string         `json:"body,omitempty"`
	Data  map[string]any `json:"data,omitempty"`
}

// urgency maps a notification's class to the Urgency header (RFC 8030
// section 5.3).
func urgency(class string) webpush.Urgency {
	switch class {
	case notify.ClassCritical:
		return webpush.UrgencyHigh
	case notify.ClassAdvertising:
		return webpush.UrgencyLow
	}
	return webpush.UrgencyNormal
}

func (w *webPushSender) send(ctx context.Context, sub *Subscription, m *notify.Message) (notify.Result, error) {
	payload, err := json.Marshal(webPushPayload{ID: m.ID, Title: m.Subject, Body: m.Text, Data: m.Data})
	if err != nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("webpush: %w", err))
	}
	resp, err := webpush.SendNotificationWithContext(ctx, payload, &webpush.Subscription{
		Endpoint: sub.Endpoint,
		Keys:     webpush.Keys{Auth: sub.Keys.Auth, P256dh: sub.Keys.P256dh},
	}, &webpush.Options{
		HTTPClient:      w.client,
		Subscriber:      w.subscriber,
		TTL:             w.ttl,
		Urgency:         urgency(m.Class),
		VAPIDPublicKey:  w.publicKey,
		VAPIDPrivateKey: w.privateKey,
	})
	if err != nil {
		if errors.Is(err, webpush.ErrMaxPadExceeded) {
			return notify.Result{}, notify.Permanent(0, fmt.Errorf("webpush: payload of %d bytes is too large for one push message", len(payload)))
		}
		var refused *refusedDialError
		if errors.As(err, &refused) {
			return notify.Result{}, notify.Permanent(0, fmt.Errorf("webpush: endpoint %s: %w", hostOf(sub.Endpoint), refused))
		}
		if ctx.Err() == nil && !isNetError(err) {
			// Encryption or VAPID signing failed: the keys are wrong.
			return notify.Result{}, notify.Permanent(0, fmt.Errorf("webpush: %w", err))
		}
		return notify.Result{}, roundTripError(ctx, ProviderWebPush, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return notify.Result{ProviderID: resp.Header.Get("Location"), Answer: status(resp)}, nil
	}
	text := fmt.Sprintf("webpush: push service %s answered %s", hostOf(sub.Endpoint), status(resp))
	if a := printable(answer); a != "" {
		text += ": " + a
	}
	switch {
	case code == http.StatusNotFound, code == http.StatusGone:
		return notify.Result{}, notify.Permanent(code, fmt.Errorf("%s: %w", text, ErrUnregistered))
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		return notify.Result{}, notify.Transient(code, notify.RetryAfter(resp.Header.Get("Retry-After"), w.now()), errors.New(text))
	default:
		// 400 malformed, 401/403 VAPID refused, 413 payload too large,
		// and 3xx (redirects are not followed).
		return notify.Result{}, notify.Permanent(code, errors.New(text))
	}
}

func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil {
		return u.Host
	}
	return "?"
}
