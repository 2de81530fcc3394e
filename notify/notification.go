package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Notification is what clients submit, over HTTP or as a message to the
// ums.notify exchange in any protocol; the JSON field names are the
// contract documented in the README.
type Notification struct {
	Channel        string         `json:"channel,omitempty"`
	Channels       []string       `json:"channels,omitempty"`
	To             Recipient      `json:"to"`
	Template       string         `json:"template,omitempty"`
	Locale         string         `json:"locale,omitempty"`
	Data           map[string]any `json:"data,omitempty"`
	Content        *Content       `json:"content,omitempty"`
	Priority       *int           `json:"priority,omitempty"`
	Class          string         `json:"class,omitempty"`
	SendAt         string         `json:"send_at,omitempty"`
	ExpiresAt      string         `json:"expires_at,omitempty"`
	Tenant         string         `json:"tenant,omitempty"`
	Tags           []string       `json:"tags,omitempty"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
}

// Recipient holds one address per channel.
type Recipient struct {
	Email   string          `json:"email,omitempty"`
	Phone   string          `json:"phone,omitempty"`
	Push    json.RawMessage `json:"push,omitempty"`
	Webhook string          `json:"webhook,omitempty"`
}

// Content is inline content, instead of a template.
type Content struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Media lists HTTPS URLs sent as MMS attachments on the sms channel.
	Media []string `json:"media,omitempty"`
}

// Classes of notifications.
const (
	ClassTransactional = "transactional" // the default
	ClassAdvertising   = "advertising"   // quiet hours and opt-outs apply
	ClassCritical      = "critical"      // bypasses quiet hours
)

// Channel names.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
	ChannelSMS     = "sms"
	ChannelPush    = "push"
)

// DefaultPriority is the priority of a notification that gives none.
const DefaultPriority = 5

// Limits of a notification's fields.
const (
	MaxChannels     = 4
	MaxSubjectBytes = 998 // RFC 5322's line limit
	MaxTextBytes    = 256 << 10
	MaxHTMLBytes    = 512 << 10
	MaxTags         = 32
	MaxTagBytes     = 128
	MaxTenantBytes  = 256
	MaxKeyBytes     = 256
	MaxNameBytes    = 256 // template ids and locales
	MaxMedia        = 10  // Twilio's limit of MediaUrl per message
	MaxURLBytes     = 2048
)

// InvalidError says which field of a notification is wrong and why; the
// HTTP API answers it with 422 {"error", "field", "reason"}, and a
// notification published as a message is dead-lettered with it.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrMalformed wraps JSON that cannot be parsed at all (HTTP 400).
var ErrMalformed = errors.New("malformed JSON")

// Decode parses one notification. Syntax errors wrap ErrMalformed; a value
// of the wrong type or an unknown field is an *InvalidError naming it.
func Decode(data []byte) (*Notification, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var n Notification
	if err := dec.Decode(&n); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return &n, nil
}

// BatchItem is one notification of a batch: decoded (N), or refused
// (Err, an *InvalidError naming the field), with the bytes it took.
type BatchItem struct {
	N    *Notification
	Err  error
	Size int64
}

// DecodeBatch parses {"notifications": [...]} in one pass, each
// notification straight into its Notification. A notification of the wrong
// shape (a value of the wrong type, an unknown field) is refused on its
// own; anything that is not JSON, an unknown field beside
// "notifications", or data after the object fails the whole batch with an
// error wrapping ErrMalformed. null or a missing "notifications" is an
// empty batch.
func DecodeBatch(data []byte) ([]BatchItem, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	malformed := func(err error) error { return fmt.Errorf("%w: %v", ErrMalformed, err) }
	t, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	var items []BatchItem
	switch t {
	case nil: // null: an empty batch, as decoding it into a struct has it
		return items, trailing(dec)
	case json.Delim('{'):
	default:
		return nil, malformed(errors.New(`the batch: expected "{"`))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		// Field names match as encoding/json matches them: ignoring case.
		if key, _ := t.(string); !strings.EqualFold(key, "notifications") {
			return nil, malformed(fmt.Errorf("json: unknown field %q", key))
		}
		items = items[:0] // a repeated key replaces the list, as it would a field
		t, err = dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		if t == nil {
			continue // null
		}
		if t != json.Delim('[') {
			return nil, malformed(errors.New("notifications: expected an array"))
		}
		for dec.More() {
			start := dec.InputOffset()
			var n Notification
			err := dec.Decode(&n)
			item := BatchItem{N: &n, Size: dec.InputOffset() - start}
			if err != nil {
				if !valueError(err) {
					return nil, malformed(err)
				}
				item = BatchItem{Err: decodeError(err), Size: item.Size}
			}
			items = append(items, item)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, malformed(err)
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, malformed(err)
	}
	if err := trailing(dec); err != nil {
		return nil, err
	}
	return items, nil
}

// trailing fails when anything but white space follows the value dec read.
func trailing(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrMalformed)
	}
	return nil
}

// valueError reports whether err, from a Decoder's Decode, concerns only
// the value decoded (a wrong type, an unknown field): the decoder is then
// past that value and may go on.
func valueError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te) || strings.HasPrefix(err.Error(), "json: unknown field ")
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(document)"
		}
		return invalid(field, "expected %s, got %s", te.Type.String(), te.Value)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return invalid(strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), "unknown field")
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// Rules are what validation needs to know of the server: which channels
// are configured, how each checks its addresses, and which templates exist.
type Rules struct {
	// Configured lists the channels this server can send on; any other
	// known channel is refused with "channel not configured".
	Configured map[string]bool
	// Address checks an address of a channel (e-mail syntax, E.164, a
	// webhook URL and its SSRF rules); nil functions accept anything.
	Address map[string]func(string) error
	// Template returns the variables a stored template uses for locale
	// (its default locale when locale is empty), or ok false when there is
	// no such template or locale.
	Template func(id, locale string) (vars []string, ok bool)
	// Now is the current time (send_at and expires_at are checked
	// against it).
	Now time.Time
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// ValidatePhone checks an E.164 number such as +821012345678.
func ValidatePhone(s string) error {
	if !e164.MatchString(s) {
		return errors.New("not an E.164 number (+ and 2 to 15 digits)")
	}
	return nil
}

// ValidateEmail checks a single RFC 5322 address (a bare addr-spec or a
// name-addr).
func ValidateEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("not an RFC 5322 address: %v", err)
	}
	if !strings.Contains(a.Address, "@") {
		return errors.New("not an RFC 5322 address: no domain")
	}
	return nil
}

// Times of a validated notification.
type Times struct {
	SendAt, ExpiresAt time.Time // zero when not given
}

// Validate checks every field against r and returns the channels to try in
// order and the parsed times. The first problem found is returned as an
// *InvalidError naming its field.
func (n *Notification) Validate(r Rules) ([]string, Times, error) {
	var t Times
	channels := n.Channels
	switch {
	case n.Channel != "" && len(n.Channels) > 0:
		return nil, t, invalid("channels", "give channel or channels, not both")
	case n.Channel != "":
		channels = []string{n.Channel}
	case len(channels) == 0:
		return nil, t, invalid("channel", "required")
	case len(channels) > MaxChannels:
		return nil, t, invalid("channels", "at most %d channels", MaxChannels)
	}
	seen := map[string]bool{}
	for i, c := range channels {
		field := "channel"
		if len(n.Channels) > 0 {
			field = fmt.Sprintf("channels[%d]", i)
		}
		switch c {
		case ChannelEmail, ChannelWebhook, ChannelSMS, ChannelPush:
		default:
			// Gateways (configured HTTP providers) are channels by their
			// own names and address phone numbers.
			if !r.Configured[c] {
				return nil, t, invalid(field, "unknown channel %q (email, webhook, sms, push or a configured gateway)", c)
			}
		}
		if seen[c] {
			return nil, t, invalid(field, "channel %q listed twice", c)
		}
		seen[c] = true
		if !r.Configured[c] {
			return nil, t, invalid(field, "channel not configured")
		}
		addr, afield := n.To.address(c)
		if addr == "" {
			return nil, t, invalid(afield, "required for channel %s", c)
		}
		if check := r.Address[c]; check != nil {
			if err := check(addr); err != nil {
				return nil, t, invalid(afield, "%v", err)
			}
		}
	}
	if err := n.validateContent(r); err != nil {
		return nil, t, err
	}
	if n.Priority != nil && (*n.Priority < 0 || *n.Priority > 9) {
		return nil, t, invalid("priority", "must be 0 to 9")
	}
	switch n.Class {
	case "", ClassTransactional, ClassAdvertising, ClassCritical:
	default:
		return nil, t, invalid("class", "must be transactional, advertising or critical")
	}
	var err error
	if t.SendAt, err = parseTime("send_at", n.SendAt); err != nil {
		return nil, t, err
	}
	if t.ExpiresAt, err = parseTime("expires_at", n.ExpiresAt); err != nil {
		return nil, t, err
	}
	if !t.ExpiresAt.IsZero() {
		if !t.ExpiresAt.After(r.Now) {
			return nil, t, invalid("expires_at", "already past")
		}
		if !t.SendAt.IsZero() && !t.ExpiresAt.After(t.SendAt) {
			return nil, t, invalid("expires_at", "not after send_at")
		}
	}
	if err := checkString("tenant", n.Tenant, MaxTenantBytes); err != nil {
		return nil, t, err
	}
	if err := checkString("idempotency_key", n.IdempotencyKey, MaxKeyBytes); err != nil {
		return nil, t, err
	}
	if len(n.Tags) > MaxTags {
		return nil, t, invalid("tags", "at most %d tags", MaxTags)
	}
	for i, tag := range n.Tags {
		if tag == "" {
			return nil, t, invalid(fmt.Sprintf("tags[%d]", i), "empty")
		}
		if err := checkString(fmt.Sprintf("tags[%d]", i), tag, MaxTagBytes); err != nil {
			return nil, t, err
		}
	}
	return channels, t, nil
}

// address returns the recipient's address on channel c and its field name.
func (r *Recipient) address(c string) (string, string) {
	switch c {
	case ChannelEmail:
		return r.Email, "to.email"
	case ChannelSMS:
		return r.Phone, "to.phone"
	case ChannelWebhook:
		return r.Webhook, "to.webhook"
	case ChannelPush:
		if len(r.Push) == 0 || string(r.Push) == "null" {
			return "", "to.push"
		}
		return string(r.Push), "to.push"
	}
	return r.Phone, "to.phone" // a gateway
}

func (n *Notification) validateContent(r Rules) error {
	switch {
	case n.Template != "" && n.Content != nil:
		return invalid("content", "give template or content, not both")
	case n.Template != "":
		if err := checkString("template", n.Template, MaxNameBytes); err != nil {
			return err
		}
		if err := checkString("locale", n.Locale, MaxNameBytes); err != nil {
			return err
		}
		if r.Template == nil {
			return invalid("template", "no template %q", n.Template)
		}
		vars, ok := r.Template(n.Template, n.Locale)
		if !ok {
			if n.Locale != "" {
				return invalid("locale", "template %q has no locale %q", n.Template, n.Locale)
			}
			return invalid("template", "no template %q", n.Template)
		}
		for _, v := range vars {
			if _, ok := n.Data[v]; !ok {
				return invalid("data."+v, "required by template %q", n.Template)
			}
		}
		return nil
	case n.Content != nil:
		c := n.Content
		if c.Text == "" && c.HTML == "" {
			return invalid("content", "text or html required")
		}
		for _, f := range []struct {
			name, v string
			max     int
		}{{"content.subject", c.Subject, MaxSubjectBytes}, {"content.text", c.Text, MaxTextBytes}, {"content.html", c.HTML, MaxHTMLBytes}} {
			if err := checkString(f.name, f.v, f.max); err != nil {
				return err
			}
		}
		if strings.ContainsAny(c.Subject, "\r\n") {
			return invalid("content.subject", "line breaks are not allowed")
		}
		if len(c.Media) > MaxMedia {
			return invalid("content.media", "at most %d URLs", MaxMedia)
		}
		for i, m := range c.Media {
			u, err := url.Parse(m)
			if err != nil || u.Scheme != "https" || u.Host == "" || len(m) > MaxURLBytes {
				return invalid(fmt.Sprintf("content.media[%d]", i), "not an absolute https URL")
			}
		}
		return nil
	}
	return invalid("content", "template or content required")
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid(field, "not an RFC 3339 time (2026-01-02T15:04:05Z)")
	}
	return t, nil
}

func checkString(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	return nil
}

// PriorityOf returns the notification's priority (DefaultPriority when unset).
func (n *Notification) PriorityOf() int {
	if n.Priority == nil {
		return DefaultPriority
	}
	return *n.Priority
}
