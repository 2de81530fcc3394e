package notify

import (
	"encoding/json"
	"math/rand/v2"
	"time"

	"github.com/unifiedms/ums/internal/jsonenc"
)

// Statuses of a notification, published as events and kept in its history.
const (
	StatusQueued       = "queued"
	StatusScheduled    = "scheduled"
	StatusSending      = "sending"
	StatusSent         = "sent"
	StatusDelivered    = "delivered"
	StatusRetrying     = "retrying"
	StatusRateLimited  = "rate_limited"
	StatusFailed       = "failed"
	StatusExpired      = "expired"
	StatusDeadLettered = "dead_lettered"
	StatusDeduplicated = "deduplicated"
)

// Exchanges and queues of notification delivery, in every vhost.
const (
	SubmitExchange = "ums.notify" // topic: publish a notification with the channel as routing key
	EventsExchange = "ums.events" // topic: status events
	InvalidQueue   = "ums.notify.invalid"
	DeadQueue      = "ums.notify.dlq"
	// HeaderError carries the reason an invalid notification was
	// dead-lettered.
	HeaderError = "x-ums-error"
)

// ChannelQueue is the durable priority queue of a channel's work.
func ChannelQueue(channel string) string {
	switch channel { // the known ones without building the name each time
	case ChannelWebhook:
		return "ums.notify.webhook"
	case ChannelEmail:
		return "ums.notify.email"
	case ChannelSMS:
		return "ums.notify.sms"
	case ChannelPush:
		return "ums.notify.push"
	}
	return "ums.notify." + channel
}

// Event is a status change, published to EventsExchange with routing key
// EventKey and the notification id as correlation-id.
type Event struct {
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Channel string    `json:"channel,omitempty"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
	Tenant  string    `json:"tenant,omitempty"`
	Tags    []string  `json:"tags,omitempty"`
}

// EventKey is the routing key of an event: notification.<status>.<channel>
// ("none" when the event concerns no channel yet).
func EventKey(status, channel string) string {
	if channel == "" {
		channel = "none"
	}
	return "notification." + status + "." + channel
}

// Body encodes the event as its message body: what json.Marshal writes,
// written directly (an event is encoded at every step of every
// notification).
func (e *Event) Body() []byte {
	b := make([]byte, 0, 128+len(e.ID)+len(e.Error)+len(e.Tenant))
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, e.ID)
	b = append(b, `,"status":`...)
	b = jsonenc.String(b, e.Status)
	if e.Channel != "" {
		b = append(b, `,"channel":`...)
		b = jsonenc.String(b, e.Channel)
	}
	b = append(b, `,"attempt":`...)
	b = jsonenc.Int(b, e.Attempt)
	if e.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.String(b, e.Error)
	}
	b = append(b, `,"at":`...)
	b, ok := jsonenc.Time(b, e.At)
	if !ok {
		// A time JSON cannot hold: json.Marshal's answer (an error, so no
		// body) stands. A copy, so that e itself does not escape.
		ev := *e
		b, _ = json.Marshal(&ev)
		return b
	}
	if e.Tenant != "" {
		b = append(b, `,"tenant":`...)
		b = jsonenc.String(b, e.Tenant)
	}
	if len(e.Tags) > 0 {
		b = append(b, `,"tags":`...)
		b = jsonenc.Strings(b, e.Tags)
	}
	return append(b, '}')
}

// Backoff computes retry delays: exponential from Base, capped at Max,
// with full jitter (a uniformly random delay up to the exponential value),
// so that many notifications failing together do not retry together. A
// provider's Retry-After, when longer, wins.
type Backoff struct {
	Base time.Duration // default 1s
	Max  time.Duration // default 5m
	// Rand returns a float in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// Delay returns the wait before retry number attempt (1 for the first
// retry) after err.
func (b Backoff) Delay(attempt int, err error) time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = 5 * time.Minute
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	d := time.Duration(r() * float64(ceil))
	if ra, ok := RetryAfterOf(err); ok && ra > d {
		d = ra
	}
	return d
}
