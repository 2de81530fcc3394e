package notify

import (
	"encoding/json"

	"github.com/unifiedms/ums/internal/jsonenc"
)

// AppendJSON appends n as json.Marshal encodes it, byte for byte, without
// reflection: a notification is encoded twice on its way (the queued job,
// the webhook body), and encoding/json's reflection was a tenth of the
// broker's CPU per notification. Only data and to.push, free-form values,
// go through encoding/json. The error is json.Marshal's for those.
func (n *Notification) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	sep := false
	if n.Channel != "" {
		b, sep = key(b, sep, "channel")
		b = jsonenc.String(b, n.Channel)
	}
	if len(n.Channels) > 0 {
		b, sep = key(b, sep, "channels")
		b = jsonenc.Strings(b, n.Channels)
	}
	b, sep = key(b, sep, "to")
	b = append(b, '{')
	inner := false
	if n.To.Email != "" {
		b, inner = key(b, inner, "email")
		b = jsonenc.String(b, n.To.Email)
	}
	if n.To.Phone != "" {
		b, inner = key(b, inner, "phone")
		b = jsonenc.String(b, n.To.Phone)
	}
	if len(n.To.Push) > 0 {
		v, err := json.Marshal(n.To.Push) // compacted and checked
		if err != nil {
			return b, err
		}
		b, inner = key(b, inner, "push")
		b = append(b, v...)
	}
	if n.To.Webhook != "" {
		b, inner = key(b, inner, "webhook")
		b = jsonenc.String(b, n.To.Webhook)
	}
	b = append(b, '}')
	if n.Template != "" {
		b, sep = key(b, sep, "template")
		b = jsonenc.String(b, n.Template)
	}
	if n.Locale != "" {
		b, sep = key(b, sep, "locale")
		b = jsonenc.String(b, n.Locale)
	}
	if len(n.Data) > 0 {
		v, err := json.Marshal(n.Data)
		if err != nil {
			return b, err
		}
		b, sep = key(b, sep, "data")
		b = append(b, v...)
	}
	if n.Content != nil {
		b, sep = key(b, sep, "content")
		b = n.Content.AppendJSON(b)
	}
	if n.Priority != nil {
		b, sep = key(b, sep, "priority")
		b = jsonenc.Int(b, *n.Priority)
	}
	for _, f := range [...]struct{ name, v string }{
		{"class", n.Class}, {"send_at", n.SendAt}, {"expires_at", n.ExpiresAt}, {"tenant", n.Tenant},
	} {
		if f.v != "" {
			b, sep = key(b, sep, f.name)
			b = jsonenc.String(b, f.v)
		}
	}
	if len(n.Tags) > 0 {
		b, sep = key(b, sep, "tags")
		b = jsonenc.Strings(b, n.Tags)
	}
	if n.IdempotencyKey != "" {
		b, sep = key(b, sep, "idempotency_key")
		b = jsonenc.String(b, n.IdempotencyKey)
	}
	return append(b, '}'), nil
}

// AppendJSON appends c as json.Marshal encodes it.
func (c *Content) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	sep := false
	for _, f := range [...]struct{ name, v string }{{"subject", c.Subject}, {"text", c.Text}, {"html", c.HTML}} {
		if f.v == "" {
			continue
		}
		b, sep = key(b, sep, f.name)
		b = jsonenc.String(b, f.v)
	}
	if len(c.Media) > 0 {
		b, _ = key(b, sep, "media")
		b = jsonenc.Strings(b, c.Media)
	}
	return append(b, '}')
}

// key appends a member's name, after a comma when sep (a member came
// before), and reports that one did.
func key(b []byte, sep bool, name string) ([]byte, bool) {
	if sep {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':'), true
}
