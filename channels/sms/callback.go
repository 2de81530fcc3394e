package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// CallbackPath is the path of UMS's status callback route.
const CallbackPath = "/api/v1/callbacks/twilio"

// SignatureHeader carries the signature of a request from Twilio.
const SignatureHeader = "X-Twilio-Signature"

// maxCallbackBody bounds a status callback's form.
const maxCallbackBody = 64 << 10

// Message statuses a status callback reports.
const (
	StatusAccepted    = "accepted" // a messaging service took it
	StatusScheduled   = "scheduled"
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent" // the carrier took it
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered" // the carrier could not deliver it
	StatusFailed      = "failed"      // Twilio could not send it
	StatusCanceled    = "canceled"
	StatusRead        = "read" // channels with read receipts
)

// Errors of ParseCallback.
var (
	// ErrSignature is a missing or wrong X-Twilio-Signature: the request
	// does not come from Twilio (answer 403).
	ErrSignature = errors.New("sms: missing or bad " + SignatureHeader)
	// ErrBadCallback is a signed request that is not a status callback
	// (answer 400).
	ErrBadCallback = errors.New("sms: not a status callback")
)

// Callback is a status callback: a message's status changed.
type Callback struct {
	MessageSid    string // the Result.ProviderID of the message
	MessageStatus string // one of the Status constants
	// ErrorCode is Twilio's error code of an undelivered or failed
	// message (30003: unreachable handset...), 0 if none.
	ErrorCode  int
	AccountSid string
	From, To   string
	// Form holds every parameter of the request, as signed.
	Form url.Values
}

// Final reports whether no more status changes are expected, apart from
// a read receipt after delivered.
func (c Callback) Final() bool {
	switch c.MessageStatus {
	case StatusDelivered, StatusUndelivered, StatusFailed, StatusCanceled, StatusRead:
		return true
	}
	return false
}

// Failed reports whether the message was not delivered.
func (c Callback) Failed() bool {
	return c.MessageStatus == StatusUndelivered || c.MessageStatus == StatusFailed
}

// CallbackURL is the StatusCallback URL of a server reachable at
// publicURL (e.g. https://ums.example.com).
func CallbackURL(publicURL string) string {
	return strings.TrimSuffix(publicURL, "/") + CallbackPath
}

// VerifySignature reports whether signature is Twilio's X-Twilio-Signature
// of a POST of form to fullURL: the base64 HMAC-SHA1, keyed with the auth
// token, of the URL followed by every parameter's name and value with no
// separators, names sorted (a repeated name's values sorted too). Because
// Twilio may sign a URL with or without its scheme's default port, both
// forms are accepted. The comparison takes constant time.
func VerifySignature(authToken, fullURL string, form url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	got := []byte(signature)
	for _, u := range urlForms(fullURL) {
		want := []byte(Signature(authToken, u, form))
		if subtle.ConstantTimeCompare(got, want) == 1 {
			return true
		}
	}
	return false
}

// Signature computes the X-Twilio-Signature of a POST of form to fullURL
// (see VerifySignature).
func Signature(authToken, fullURL string, form url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	io.WriteString(mac, fullURL)
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			io.WriteString(mac, k)
			io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// urlForms returns raw, and raw with its default port added or removed.
func urlForms(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return []string{raw}
	}
	def := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if def == "" {
		return []string{raw}
	}
	other := *u
	switch u.Port() {
	case "":
		other.Host = u.Host + ":" + def
	case def:
		other.Host = u.Hostname()
		if strings.Contains(other.Host, ":") {
			other.Host = "[" + other.Host + "]"
		}
	default:
		return []string{raw}
	}
	return []string{raw, other.String()}
}

// ParseCallback reads a status callback: a form POSTed by Twilio to the
// server reachable at publicURL (the URL given to New's StatusCallback is
// publicURL followed by this request's path and query). The signature is
// checked before anything else of the form is used: a missing or forged
// one returns an error wrapping ErrSignature; a signed request that is
// not a status callback, ErrBadCallback. ParseCallback reads r.Body.
func ParseCallback(r *http.Request, authToken, publicURL string) (Callback, error) {
	if publicURL == "" || authToken == "" {
		return Callback{}, errors.New("sms: a public URL and an auth token are needed to verify callbacks")
	}
	if r.Method != http.MethodPost {
		return Callback{}, fmt.Errorf("%w: method %s", ErrBadCallback, r.Method)
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		return Callback{}, fmt.Errorf("%w: content type %q", ErrBadCallback, r.Header.Get("Content-Type"))
	}
	signature := r.Header.Get(SignatureHeader)
	if signature == "" {
		return Callback{}, fmt.Errorf("%w: no signature", ErrSignature)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallbackBody+1))
	if err != nil {
		return Callback{}, fmt.Errorf("sms: reading callback: %w", err)
	}
	if len(body) > maxCallbackBody {
		return Callback{}, fmt.Errorf("%w: body over %d bytes", ErrBadCallback, maxCallbackBody)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Callback{}, fmt.Errorf("%w: %v", ErrBadCallback, err)
	}
	fullURL, err := signedURL(publicURL, r)
	if err != nil {
		return Callback{}, err
	}
	if !VerifySignature(authToken, fullURL, form, signature) {
		return Callback{}, fmt.Errorf("%w: does not match for %s", ErrSignature, fullURL)
	}
	c := Callback{
		MessageSid:    form.Get("MessageSid"),
		MessageStatus: form.Get("MessageStatus"),
		AccountSid:    form.Get("AccountSid"),
		From:          form.Get("From"),
		To:            form.Get("To"),
		Form:          form,
	}
	if c.MessageSid == "" {
		c.MessageSid = form.Get("SmsSid")
	}
	if c.MessageStatus == "" {
		c.MessageStatus = form.Get("SmsStatus")
	}
	if c.MessageSid == "" || c.MessageStatus == "" {
		return Callback{}, fmt.Errorf("%w: no MessageSid or MessageStatus", ErrBadCallback)
	}
	if v := form.Get("ErrorCode"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Callback{}, fmt.Errorf("%w: ErrorCode %q", ErrBadCallback, v)
		}
		c.ErrorCode = n
	}
	return c, nil
}

// signedURL is the URL Twilio requested (and signed): publicURL followed
// by r's path and query. A path publicURL has (a server behind a prefix)
// is not repeated when r's path already starts with it.
func signedURL(publicURL string, r *http.Request) (string, error) {
	base := strings.TrimSuffix(publicURL, "/")
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("sms: public URL %q is not an absolute http(s) URL", publicURL)
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	if p := u.EscapedPath(); p != "" && (uri == p || strings.HasPrefix(uri, p+"/") || strings.HasPrefix(uri, p+"?")) {
		uri = uri[len(p):]
	}
	return base + uri, nil
}
