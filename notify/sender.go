// Package notify is notification delivery: the notification model and its
// validation, templates, per-channel queues consumed from the core, workers,
// deduplication, rate limits, retries with backoff, fallbacks, dead-letters
// and status events.
//
// This file holds the small types channel senders (channels/*) implement
// and return: a Sender sends one Message on one channel and classifies its
// failures as permanent (never retried: an invalid address; most HTTP 4xx
// and SMTP 5xx answers) or transient (retried with backoff: timeouts,
// refused connections, HTTP 5xx and 429 with Retry-After, SMTP 4xx).
package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Message is one notification rendered for one channel.
type Message struct {
	ID      string // the notification's id
	Channel string // "email", "webhook", "sms", "push"
	To      string // the address on this channel: e-mail address, E.164 number, URL, device token
	Subject string
	Text    string
	HTML    string
	// Media lists HTTPS URLs of attachments (MMS pictures), from
	// content.media.
	Media []string
	// Push is the raw to.push object of a push notification
	// ({"fcm_token": ...}, {"web_push": ...} or {"apns_token": ...}).
	Push []byte
	// Data is the notification's template data (push payload data).
	Data map[string]any
	// Body is the JSON document a webhook posts (the notification).
	Body []byte
	// Class is "transactional", "advertising" or "critical".
	Class   string
	Tenant  string
	Tags    []string
	Attempt int // 1 for the first try
	// Unsubscribe is the List-Unsubscribe target of advertising e-mail.
	Unsubscribe string
}

// Result is what the provider answered to a successful send.
type Result struct {
	ProviderID string // the provider's id of the message (Message-ID, SID...)
	Answer     string // a short summary of the provider's answer
	// Provider names the provider that took it ("twilio", "fcm", a
	// gateway's name), when a channel has several.
	Provider string
	// Segments is the number of SMS segments billed (0 elsewhere).
	Segments int
}

// Sender sends messages on one channel. Send must be safe for concurrent
// use, honour ctx's deadline, and return an *Error (see Permanent and
// Transient) for failures it can classify; an unclassified error counts
// as transient.
type Sender interface {
	Send(ctx context.Context, m *Message) (Result, error)
}

// Error is a classified send failure.
type Error struct {
	// Permanent failures are not retried (the next channel of a fallback
	// list is tried, then the notification is dead-lettered).
	Permanent bool
	// RetryAfter, when set, is the provider's requested wait (HTTP 429 or
	// 503 Retry-After) before a transient failure is retried.
	RetryAfter time.Duration
	// Code is the provider's code (HTTP status, SMTP reply code), if any.
	Code int
	Err  error
}

func (e *Error) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Code != 0 {
		return fmt.Sprintf("%s failure (%d): %v", kind, e.Code, e.Err)
	}
	return fmt.Sprintf("%s failure: %v", kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(code int, err error) error { return &Error{Permanent: true, Code: code, Err: err} }

// Transient marks err as a failure worth retrying, after retryAfter when
// the provider asked for a wait (0: the backoff decides).
func Transient(code int, retryAfter time.Duration, err error) error {
	return &Error{Code: code, RetryAfter: retryAfter, Err: err}
}

// IsPermanent reports whether err is a permanent failure.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfterOf returns the wait a transient failure asked for.
func RetryAfterOf(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && !e.Permanent && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// MaxRetryAfter bounds the wait a provider may ask for.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter parses an HTTP Retry-After value (delay seconds or an HTTP
// date, relative to now) into a wait of at most MaxRetryAfter. It returns 0
// for a missing, invalid or past value.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// HTTPTransport returns a new transport with the settings provider APIs
// want: proxies from the environment, a 10 s connect and TLS handshake
// timeout, HTTP/2 when offered, kept-alive connections (16 per host) and
// answers' headers bounded to 64 KiB.
func HTTPTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}
