package pipeline

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/unifiedms/ums/notify"
)

// A job body, as job.appendJSON writes it, is parsed here without
// reflection. The parser takes only a plain form of JSON: every key of
// job, Notification, Recipient and Content spelled as their tags spell it
// and given at most once, no null, integers without fraction or exponent;
// "data" and "push" are measured here and decoded by encoding/json. Anything
// else (another key, a duplicate, a null, a value of the wrong kind,
// malformed JSON) makes it give up, and the body goes to json.Unmarshal,
// whose answer stands. What it does take, it decodes exactly as
// json.Unmarshal would (FuzzJobDecoder compares the two).

// jobParser reads one body.
type jobParser struct {
	b []byte
	i int
}

// parseJob fills j (the zero job) from body and reports whether it could;
// when it could not, j is left partly filled.
func parseJob(body []byte, j *job) bool {
	p := jobParser{b: body}
	if !p.job(j) {
		return false
	}
	p.ws()
	return p.i == len(p.b)
}

func (p *jobParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether c is next, taking it.
func (p *jobParser) next(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// begin reads the start of an object and reports whether a field follows.
func (p *jobParser) begin() (more, ok bool) {
	if !p.next('{') {
		return false, false
	}
	return !p.next('}'), true
}

// field reads a field's key, one of keys not seen before, and the colon;
// it returns the key's index in keys, or -1.
func (p *jobParser) field(keys []string, seen *uint32) int {
	key, ok := p.key()
	if !ok {
		return -1
	}
	for k, s := range keys {
		if string(key) == s {
			if *seen&(1<<k) != 0 || !p.next(':') {
				return -1
			}
			*seen |= 1 << k
			p.ws()
			return k
		}
	}
	return -1
}

// end reads what follows a field's value: a comma (more fields) or the
// end of the object.
func (p *jobParser) end() (more, ok bool) {
	if p.next('}') {
		return false, true
	}
	return true, p.next(',')
}

// key reads a key of plain characters (no escapes), without copying it.
func (p *jobParser) key() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// token reads a string token and reports whether it is plain: no
// escapes, and valid UTF-8.
func (p *jobParser) token() (tok []byte, plain, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false, false
	}
	start := p.i
	p.i++
	plain = true
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			tok = p.b[start:p.i]
			return tok, plain && (ascii || utf8.Valid(tok)), true
		case c == '\\':
			plain = false
			p.i++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false, false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return nil, false, false
}

// str reads a string value.
func (p *jobParser) str(dst *string) bool {
	tok, plain, ok := p.token()
	switch {
	case !ok:
		return false
	case plain:
		*dst = string(tok[1 : len(tok)-1])
		return true
	}
	// Escapes or invalid UTF-8: encoding/json's rules.
	var v string
	if json.Unmarshal(tok, &v) != nil {
		return false
	}
	*dst = v
	return true
}

// strs reads an array of strings.
func (p *jobParser) strs(dst *[]string) bool {
	if !p.next('[') {
		return false
	}
	out := make([]string, 0, 2)
	if !p.next(']') {
		for {
			p.ws()
			out = append(out, "")
			if !p.str(&out[len(out)-1]) {
				return false
			}
			if p.next(']') {
				break
			}
			if !p.next(',') {
				return false
			}
		}
	}
	*dst = out
	return true
}

// int reads an integer: -?(0|[1-9][0-9]*), at most 18 digits.
func (p *jobParser) int(dst *int) bool {
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	start := p.i
	v := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int(p.b[p.i]-'0')
		p.i++
	}
	n := p.i - start
	if n == 0 || n > 18 || (n > 1 && p.b[start] == '0') {
		return false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	if neg {
		v = -v
	}
	*dst = v
	return true
}

// raw returns the next value, whole, checked by encoding/json.
func (p *jobParser) raw() ([]byte, bool) {
	start := p.i
	if !p.skip(0) {
		return nil, false
	}
	v := p.b[start:p.i]
	return v, json.Valid(v)
}

// skip moves past one value (not a null one), without checking all of it:
// raw's caller checks the value it spans.
func (p *jobParser) skip(depth int) bool {
	if depth > 64 || p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		for p.i++; p.i < len(p.b); p.i++ {
			switch p.b[p.i] {
			case '\\':
				p.i++
			case '"':
				p.i++
				return true
			}
		}
		return false
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		if p.next(end) {
			return true
		}
		for {
			p.ws()
			if c == '{' {
				if !p.skip(depth+1) || !p.next(':') {
					return false
				}
				p.ws()
			}
			if !p.skip(depth + 1) {
				return false
			}
			if p.next(end) {
				return true
			}
			if !p.next(',') {
				return false
			}
		}
	case c == 'n' && depth == 0:
		return false // a null field: json.Unmarshal's rules
	default: // a number, true, false or (inside) null: up to the next delimiter
		start := p.i
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return p.i > start
			}
			p.i++
		}
		return p.i > start
	}
}

// time reads a time as json.Unmarshal does: time.Time.UnmarshalJSON on
// the token as it is (one with escapes never parses, so is left to
// json.Unmarshal's error).
func (p *jobParser) time(dst interface{ UnmarshalJSON([]byte) error }) bool {
	tok, plain, ok := p.token()
	return ok && plain && dst.UnmarshalJSON(tok) == nil
}

var jobKeys = []string{"id", "notification", "channels", "channel_index", "attempt", "accepted_at",
	"hops", "expires_at", "last_error", "step"}

func (p *jobParser) job(j *job) bool {
	more, ok := p.begin()
	var seen uint32
	for ok && more {
		switch p.field(jobKeys, &seen) {
		case 0:
			ok = p.str(&j.ID)
		case 1:
			j.N = new(notify.Notification)
			ok = p.notification(j.N)
		case 2:
			ok = p.strs(&j.Channels)
		case 3:
			ok = p.int(&j.CI)
		case 4:
			ok = p.int(&j.Attempt)
		case 5:
			ok = p.time(&j.Accepted)
		case 6:
			ok = p.int(&j.Hops)
		case 7:
			ok = p.time(&j.ExpiresAt)
		case 8:
			ok = p.str(&j.LastError)
		case 9:
			ok = p.int(&j.Step)
		default:
			ok = false
		}
		if ok {
			more, ok = p.end()
		}
	}
	return ok
}

var notificationKeys = []string{"channel", "channels", "to", "template", "locale", "data", "content",
	"priority", "class", "send_at", "expires_at", "tenant", "tags", "idempotency_key"}

func (p *jobParser) notification(n *notify.Notification) bool {
	more, ok := p.begin()
	var seen uint32
	for ok && more {
		switch p.field(notificationKeys, &seen) {
		case 0:
			ok = p.str(&n.Channel)
		case 1:
			ok = p.strs(&n.Channels)
		case 2:
			ok = p.recipient(&n.To)
		case 3:
			ok = p.str(&n.Template)
		case 4:
			ok = p.str(&n.Locale)
		case 5:
			var v []byte
			v, ok = p.raw()
			ok = ok && v[0] == '{' && json.Unmarshal(v, &n.Data) == nil
		case 6:
			n.Content = new(notify.Content)
			ok = p.content(n.Content)
		case 7:
			n.Priority = new(int)
			ok = p.int(n.Priority)
		case 8:
			ok = p.str(&n.Class)
		case 9:
			ok = p.str(&n.SendAt)
		case 10:
			ok = p.str(&n.ExpiresAt)
		case 11:
			ok = p.str(&n.Tenant)
		case 12:
			ok = p.strs(&n.Tags)
		case 13:
			ok = p.str(&n.IdempotencyKey)
		default:
			ok = false
		}
		if ok {
			more, ok = p.end()
		}
	}
	return ok
}

var recipientKeys = []string{"email", "phone", "push", "webhook"}

func (p *jobParser) recipient(r *notify.Recipient) bool {
	more, ok := p.begin()
	var seen uint32
	for ok && more {
		switch p.field(recipientKeys, &seen) {
		case 0:
			ok = p.str(&r.Email)
		case 1:
			ok = p.str(&r.Phone)
		case 2:
			var v []byte
			if v, ok = p.raw(); ok {
				r.Push = append(json.RawMessage(nil), v...)
			}
		case 3:
			ok = p.str(&r.Webhook)
		default:
			ok = false
		}
		if ok {
			more, ok = p.end()
		}
	}
	return ok
}

var contentKeys = []string{"subject", "text", "html", "media"}

func (p *jobParser) content(c *notify.Content) bool {
	more, ok := p.begin()
	var seen uint32
	for ok && more {
		switch p.field(contentKeys, &seen) {
		case 0:
			ok = p.str(&c.Subject)
		case 1:
			ok = p.str(&c.Text)
		case 2:
			ok = p.str(&c.HTML)
		case 3:
			ok = p.strs(&c.Media)
		default:
			ok = false
		}
		if ok {
			more, ok = p.end()
		}
	}
	return ok
}
