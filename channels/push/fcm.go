package push

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/unifiedms/ums/notify"
)

// FCM defaults.
const (
	// FCMBaseURL is the FCM HTTP v1 API.
	FCMBaseURL = "https://fcm.googleapis.com"
	// FCMScope is the OAuth 2 scope of messages:send.
	FCMScope = "https://www.googleapis.com/auth/firebase.messaging"
	// tokenTimeout bounds an access token fetch.
	tokenTimeout = 10 * time.Second
)

// FCMConfig configures Firebase Cloud Messaging.
type FCMConfig struct {
	// CredentialsFile is the path of a service account's JSON key, as the
	// Firebase console downloads it. Give it or CredentialsJSON.
	CredentialsFile string
	// CredentialsJSON is the service account's JSON key itself.
	CredentialsJSON []byte
	// ProjectID is the Firebase project; default: the key's project_id.
	ProjectID string
	// BaseURL replaces FCMBaseURL (tests, proxies).
	BaseURL string
	// Transport, if set, is used (cloned) instead of the default one for
	// the API and the token endpoint, e.g. for its TLS or proxy settings.
	Transport *http.Transport
}

// serviceAccount is the part of a service account key New checks.
type serviceAccount struct {
	Type        string `json:"type"`
	ProjectID   string `json:"project_id"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

type fcmSender struct {
	url    string // .../v1/projects/<id>/messages:send
	tokens oauth2.TokenSource
	client *http.Client
	now    func() time.Time
}

func newFCM(cfg FCMConfig, now func() time.Time) (*fcmSender, error) {
	key := cfg.CredentialsJSON
	switch {
	case cfg.CredentialsFile != "" && len(key) > 0:
		return nil, errors.New("push: FCM: give a credentials file or credentials JSON, not both")
	case cfg.CredentialsFile != "":
		b, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("push: FCM credentials: %w", err)
		}
		key = b
	case len(key) == 0:
		return nil, errors.New("push: FCM: service account credentials are required")
	}
	var sa serviceAccount
	if err := json.Unmarshal(key, &sa); err != nil {
		return nil, fmt.Errorf("push: FCM credentials: not a service account JSON key: %v", err)
	}
	if sa.Type != "service_account" {
		return nil, fmt.Errorf("push: FCM credentials: type %q, want service_account", sa.Type)
	}
	if sa.ClientEmail == "" {
		return nil, errors.New("push: FCM credentials: client_email is missing")
	}
	if err := checkRSAKey(sa.PrivateKey); err != nil {
		return nil, fmt.Errorf("push: FCM credentials: private_key: %v", err)
	}
	project := cfg.ProjectID
	if project == "" {
		project = sa.ProjectID
	}
	if project == "" {
		return nil, errors.New("push: FCM: no project id (set it or use a key with project_id)")
	}
	if strings.ContainsAny(project, "/?#% ") {
		return nil, fmt.Errorf("push: FCM: invalid project id %q", project)
	}
	base := cfg.BaseURL
	if base == "" {
		base = FCMBaseURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("push: FCM: invalid base URL %q", base)
	}
	jwtConfig, err := google.JWTConfigFromJSON(key, FCMScope)
	if err != nil {
		return nil, fmt.Errorf("push: FCM credentials: %w", err)
	}
	var transport *http.Transport
	if cfg.Transport != nil {
		transport = cfg.Transport.Clone()
	} else {
		transport = defaultTransport()
	}
	// The token source fetches with the client in its context, and
	// caches the token until shortly before it expires.
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient,
		&http.Client{Transport: transport, Timeout: tokenTimeout})
	return &fcmSender{
		url:    strings.TrimRight(base, "/") + "/v1/projects/" + project + "/messages:send",
		tokens: jwtConfig.TokenSource(tokenCtx),
		client: &http.Client{Transport: transport, CheckRedirect: noRedirect},
		now:    now,
	}, nil
}

// checkRSAKey checks that a service account's private_key is an RSA key
// in PEM, so that a broken key fails at start and not at the first send.
func checkRSAKey(p string) error {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return errors.New("not an RSA key")
		}
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return errors.New("not a PKCS #8 or PKCS #1 RSA key")
	}
	return nil
}

func defaultTransport() *http.Transport {
	return notify.HTTPTransport()
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (f *fcmSender) close() {
	f.client.CloseIdleConnections()
}

// fcmMessage is the v1 API's Message, the fields UMS sets.
type fcmMessage struct {
	Token        string            `json:"token"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
}

type fcmNotification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

// fcmErrorBody is a Google API error with FCM's details.
type fcmErrorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

func (f *fcmSender) send(ctx context.Context, token string, m *notify.Message) (notify.Result, error) {
	msg := fcmMessage{Token: token, Data: stringData(m.Data)}
	if m.Subject != "" || m.Text != "" {
		msg.Notification = &fcmNotification{Title: m.Subject, Body: m.Text}
	}
	body, err := json.Marshal(map[string]any{"message": msg})
	if err != nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("fcm: %w", err))
	}
	tok, err := f.token(ctx)
	if err != nil {
		return notify.Result{}, f.tokenError(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return notify.Result{}, notify.Permanent(0, fmt.Errorf("fcm: %w", err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	tok.SetAuthHeader(req)
	resp, err := f.client.Do(req)
	if err != nil {
		return notify.Result{}, roundTripError(ctx, ProviderFCM, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(answer, &ok); err != nil || ok.Name == "" {
			return notify.Result{}, notify.Transient(resp.StatusCode, 0, fmt.Errorf("fcm: answered %s without a message name: %s", status(resp), printable(answer)))
		}
		return notify.Result{ProviderID: ok.Name, Answer: status(resp)}, nil
	}
	return notify.Result{}, f.classify(resp, answer)
}

// token returns the cached access token, or fetches one. The token source
// keeps the context it was made with, so a fetch runs in its own goroutine
// and Send stops waiting when ctx ends; the fetch itself ends within
// tokenTimeout and its token is cached for the next send.
func (f *fcmSender) token(ctx context.Context) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := f.tokens.Token()
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// classify turns an FCM error answer into a notify error. FCM's own
// errorCode decides when present, then the HTTP status.
func (f *fcmSender) classify(resp *http.Response, answer []byte) error {
	code := resp.StatusCode
	var e fcmErrorBody
	_ = json.Unmarshal(answer, &e)
	reason := ""
	for _, d := range e.Error.Details {
		if d.Type == fcmErrorType && d.ErrorCode != "" {
			reason = d.ErrorCode
		}
	}
	var text string
	switch {
	case reason != "":
		text = fmt.Sprintf("fcm: %s (%s): %s", reason, status(resp), printable([]byte(e.Error.Message)))
	case e.Error.Status != "":
		text = fmt.Sprintf("fcm: %s (%s): %s", e.Error.Status, status(resp), printable([]byte(e.Error.Message)))
	default:
		text = fmt.Sprintf("fcm: answered %s: %s", status(resp), printable(answer))
	}
	wait := notify.RetryAfter(resp.Header.Get("Retry-After"), f.now())
	switch reason {
	case "UNREGISTERED":
		return notify.Permanent(code, fmt.Errorf("%s: %w", text, ErrUnregistered))
	case "INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR":
		return notify.Permanent(code, errors.New(text))
	case "QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL":
		return notify.Transient(code, wait, errors.New(text))
	}
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		return notify.Transient(code, wait, errors.New(text))
	case code >= 400:
		// 401 and 403 are the service account's access being refused:
		// retrying the same token or key cannot fix them.
		return notify.Permanent(code, errors.New(text))
	default:
		return notify.Transient(code, wait, errors.New(text))
	}
}

// tokenError classifies a failed access token fetch: the token endpoint
// refusing the key (4xx other than 429) is permanent, anything else
// transient.
func (f *fcmSender) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		text := fmt.Errorf("fcm: access token: %s %s", re.Response.Status, printable(re.Body))
		if code >= 400 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout {
			return notify.Permanent(code, text)
		}
		return notify.Transient(code, notify.RetryAfter(re.Response.Header.Get("Retry-After"), f.now()), text)
	}
	return notify.Transient(0, 0, fmt.Errorf("fcm: access token: %w", err))
}

// stringData turns a notification's data into FCM's string map: strings
// as they are, other values as JSON.
func stringData(data map[string]any) map[string]string {
	if len(data) == 0 {
		return nil
	}
	out := make(map[string]string, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case string:
			out[k] = v
		case nil:
			out[k] = ""
		default:
			b, err := json.Marshal(v)
			if err != nil {
				out[k] = fmt.Sprint(v)
			} else {
				out[k] = string(b)
			}
		}
	}
	return out
}
