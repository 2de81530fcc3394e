package push

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"

	"github.com/unifiedms/ums/notify"
)

// APNsConfig configures Apple Push Notification service with token-based
// authentication (a .p8 signing key from the Apple developer account).
type APNsConfig struct {
	// KeyFile is the path of the .p8 key. Give it or Key.
	KeyFile string
	// Key is the .p8 key itself (PEM, PKCS #8, P-256).
	Key []byte
	// KeyID is the key's 10-character id. Required.
	KeyID string
	// TeamID is the developer team's 10-character id. Required.
	TeamID string
	// Topic is the app's bundle id (apns-topic). Required.
	Topic string
	// Production selects api.push.apple.com; the default is the
	// development (sandbox) environment.
	Production bool
	// Host replaces the environment's host (tests, proxies), as
	// "https://host[:port]".
	Host string
	// Transport, if set, is used (cloned, HTTP/2 only) instead of the
	// default one, e.g. for its TLS settings.
	Transport *http.Transport
}

type apnsSender struct {
	client *apns2.Client
	topic  string
}

func newAPNs(cfg APNsConfig) (*apnsSender, error) {
	key := cfg.Key
	switch {
	case cfg.KeyFile != "" && len(key) > 0:
		return nil, errors.New("push: APNs: give a key file or a key, not both")
	case cfg.KeyFile == "" && len(key) == 0:
		return nil, errors.New("push: APNs: a .p8 signing key is required")
	}
	authKey, err := loadAPNsKey(cfg.KeyFile, key)
	if err != nil {
		return nil, err
	}
	if cfg.KeyID == "" || cfg.TeamID == "" {
		return nil, errors.New("push: APNs: key id and team id are required")
	}
	if cfg.Topic == "" {
		return nil, errors.New("push: APNs: topic (the app's bundle id) is required")
	}
	tok := &token.Token{AuthKey: authKey, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	if _, err := tok.Generate(); err != nil {
		return nil, fmt.Errorf("push: APNs: signing a provider token: %w", err)
	}
	host := apns2.HostDevelopment
	if cfg.Production {
		host = apns2.HostProduction
	}
	if cfg.Host != "" {
		u, err := url.Parse(cfg.Host)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("push: APNs: host %q must be https://host[:port]", cfg.Host)
		}
		host = strings.TrimSuffix(cfg.Host, "/")
	}
	var tr *http.Transport
	if cfg.Transport != nil {
		tr = cfg.Transport.Clone()
	} else {
		tr = defaultTransport()
	}
	// APNs speaks HTTP/2 only; pings find dead connections between sends.
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	tr.Protocols = &protocols
	if tr.HTTP2 == nil {
		tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second}
	}
	c := apns2.NewTokenClient(tok)
	c.Host = host
	c.HTTPClient = &http.Client{Transport: tr, CheckRedirect: noRedirect}
	return &apnsSender{client: c, topic: cfg.Topic}, nil
}

func loadAPNsKey(file string, key []byte) (*ecdsa.PrivateKey, error) {
	if file != "" {
		k, err := token.AuthKeyFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("push: APNs key file: %w", err)
		}
		return k, nil
	}
	k, err := token.AuthKeyFromBytes(key)
	if err != nil {
		return nil, fmt.Errorf("push: APNs key: %w", err)
	}
	return k, nil
}

func (a *apnsSender) close() {
	a.client.CloseIdleConnections()
}

// uuidPattern is the canonical form apns-id must have.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (a *apnsSender) send(ctx context.Context, deviceToken string, m *notify.Message) (notify.Result, error) {
	p := payload.NewPayload()
	if m.Subject != "" {
		p.AlertTitle(m.Subject)
	}
	if m.Text != "" {
		p.AlertBody(m.Text)
	}
	for k, v := range m.Data {
		if k != "aps" { // the dictionary Apple reads; data cannot replace it
			p.Custom(k, v)
		}
	}
	n := &apns2.Notification{
		DeviceToken: deviceToken,
		Topic:       a.topic,
		Payload:     p,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityHigh,
	}
	if m.Class == notify.ClassAdvertising {
		n.Priority = apns2.PriorityLow
	}
	if uuidPattern.MatchString(m.ID) {
		n.ApnsID = m.ID
	}
	resp, err := a.client.PushWithContext(ctx, n)
	if err != nil {
		return notify.Result{}, roundTripError(ctx, ProviderAPNs, err)
	}
	if resp.StatusCode == http.StatusOK {
		return notify.Result{ProviderID: resp.ApnsID, Answer: "200 OK"}, nil
	}
	return notify.Result{}, apnsError(resp)
}

// apnsError classifies an APNs error answer by its status and reason.
func apnsError(resp *apns2.Response) error {
	code := resp.StatusCode
	reason := resp.Reason
	if reason == "" {
		reason = "no reason"
	}
	text := fmt.Sprintf("apns: %s (%d %s)", printable([]byte(reason)), code, http.StatusText(code))
	if resp.ApnsID != "" {
		text += ", apns-id " + resp.ApnsID
	}
	switch {
	case code == http.StatusGone:
		// Unregistered or ExpiredToken: the app is gone from the device.
		return notify.Permanent(code, fmt.Errorf("%s: %w", text, ErrUnregistered))
	case resp.Reason == apns2.ReasonExpiredProviderToken,
		resp.Reason == apns2.ReasonTooManyProviderTokenUpdates,
		resp.Reason == apns2.ReasonIdleTimeout:
		return notify.Transient(code, 0, errors.New(text))
	case code == http.StatusTooManyRequests, code >= 500:
		return notify.Transient(code, 0, errors.New(text))
	default:
		// 400 (BadDeviceToken, which also means a token of the other
		// environment; BadTopic; PayloadEmpty...), 403 (the key refused),
		// 405, 413 PayloadTooLarge.
		return notify.Permanent(code, errors.New(text))
	}
}
