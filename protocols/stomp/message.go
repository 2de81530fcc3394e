package stomp

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
)

// STOMP headers <-> core message properties and headers, and x- headers
// as queue arguments, as RabbitMQ's STOMP plugin maps them.

// Headers with a meaning of their own: not copied into message headers.
const (
	hdrPersistent    = "persistent"
	hdrPriority      = "priority"
	hdrCorrelationID = "correlation-id"
	hdrReplyTo       = "reply-to"
	hdrExpiration    = "expiration"
	hdrAMQPMessageID = "amqp-message-id"
	hdrType          = "type"
	hdrTimestamp     = "timestamp"
	hdrAppID         = "app-id"
	hdrContentEnc    = "content-encoding"
	hdrRedelivered   = "redelivered"
	hdrPrefetch      = "prefetch-count"
	hdrDurable       = "durable"
	hdrExclusive     = "exclusive"
	hdrRequeue       = "requeue"
	hdrQueueName     = "x-queue-name"
)

var reservedSend = map[string]bool{
	frame.Destination: true, frame.Receipt: true, frame.Transaction: true, frame.ContentLength: true,
	frame.ContentType: true, hdrContentEnc: true, hdrPersistent: true, hdrPriority: true,
	hdrCorrelationID: true, hdrReplyTo: true, hdrExpiration: true, hdrAMQPMessageID: true,
	hdrType: true, hdrTimestamp: true, hdrAppID: true, hdrQueueName: true,
}

// reservedMessage are the headers of MESSAGE frames the adapter writes
// itself: message headers of those names are not copied over them.
var reservedMessage = map[string]bool{
	frame.Destination: true, frame.MessageId: true, frame.Subscription: true, frame.Ack: true,
	frame.ContentLength: true, frame.ContentType: true, hdrContentEnc: true, hdrPersistent: true,
	hdrPriority: true, hdrCorrelationID: true, hdrReplyTo: true, hdrExpiration: true,
	hdrAMQPMessageID: true, hdrType: true, hdrTimestamp: true, hdrAppID: true, hdrRedelivered: true,
	frame.Receipt: true, frame.Transaction: true,
}

// queueArgTypes are the x- headers that declare queues, with the type of
// their values (RabbitMQ's STOMP plugin reads the same ones).
var queueArgTypes = map[string]byte{
	"x-message-ttl": 'i', "x-expires": 'i', "x-max-length": 'i', "x-max-length-bytes": 'i',
	"x-max-priority": 'i', "x-delivery-limit": 'i', "x-overflow": 's',
	"x-dead-letter-exchange": 's', "x-dead-letter-routing-key": 's',
	"x-queue-type": 's', "x-queue-mode": 's', "x-single-active-consumer": 'b',
}

// queueArgs reads queue arguments from x- headers.
func queueArgs(h *frame.Header) (core.Table, error) {
	var args core.Table
	for i := range h.Len() {
		k, v := h.GetAt(i)
		typ, ok := queueArgTypes[k]
		if !ok {
			continue
		}
		if _, dup := args[k]; dup {
			continue // the first of a repeated header counts
		}
		if args == nil {
			args = core.Table{}
		}
		switch typ {
		case 'i':
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, protoErr("Invalid header", "%s must be an integer, not %q", k, v)
			}
			args[k] = n
		case 'b':
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, protoErr("Invalid header", "%s must be true or false, not %q", k, v)
			}
			args[k] = b
		default:
			args[k] = v
		}
	}
	return args, nil
}

// toMessage maps a SEND frame onto a core message for exchange and key.
// The body is the frame's, not copied.
func toMessage(f *frame.Frame, exchange, key string) (*core.Message, error) {
	msg := &core.Message{Exchange: exchange, RoutingKey: key, Body: f.Body}
	p := &msg.Props
	h := f.Header
	p.DeliveryMode = core.Transient
	var headers core.Table
	for i := range h.Len() {
		k, v := h.GetAt(i)
		if reservedSend[k] || queueArgTypes[k] != 0 {
			continue
		}
		if _, dup := headers[k]; dup {
			continue
		}
		if headers == nil {
			headers = core.Table{}
		}
		headers[k] = v
	}
	p.Headers = headers
	p.ContentType = h.Get(frame.ContentType)
	p.ContentEncoding = h.Get(hdrContentEnc)
	if h.Get(hdrPersistent) == "true" {
		p.DeliveryMode = core.Persistent
	}
	if v, ok := h.Contains(hdrPriority); ok {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return nil, protoErr("Invalid header", "priority must be an integer from 0 to 255, not %q", v)
		}
		p.Priority = uint8(n)
		p.Present |= 1 << 11 // Priority's bit (see core.Properties.Present)
	}
	p.CorrelationID = h.Get(hdrCorrelationID)
	p.ReplyTo = h.Get(hdrReplyTo)
	if v, ok := h.Contains(hdrExpiration); ok {
		if n, err := strconv.ParseUint(v, 10, 63); err != nil || n > 1<<32 {
			return nil, protoErr("Invalid header", "expiration must be a number of milliseconds, not %q", v)
		}
		p.Expiration = v
		p.Present |= core.PresentExpiration
	}
	p.MessageID = h.Get(hdrAMQPMessageID)
	p.Type = h.Get(hdrType)
	p.AppID = h.Get(hdrAppID)
	if v, ok := h.Contains(hdrTimestamp); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, protoErr("Invalid header", "timestamp must be seconds since 1970, not %q", v)
		}
		p.Timestamp = time.Unix(n, 0)
	}
	for _, s := range []string{p.ContentType, p.ContentEncoding, p.CorrelationID, p.ReplyTo, p.MessageID, p.Type, p.AppID} {
		if len(s) > 255 {
			return nil, protoErr("Invalid header", "a property header longer than 255 bytes: %.40q...", s)
		}
	}
	return msg, nil
}

// appendMessageHeaders adds a message's properties and headers to a
// MESSAGE frame's header.
func appendMessageHeaders(h *frame.Header, m *core.Message) {
	p := &m.Props
	if p.ContentType != "" {
		h.Add(frame.ContentType, p.ContentType)
	}
	if p.ContentEncoding != "" {
		h.Add(hdrContentEnc, p.ContentEncoding)
	}
	if p.DeliveryMode == core.Persistent {
		h.Add(hdrPersistent, "true")
	}
	if p.Priority != 0 || p.Present&(1<<11) != 0 {
		h.Add(hdrPriority, strconv.Itoa(int(p.Priority)))
	}
	if p.CorrelationID != "" {
		h.Add(hdrCorrelationID, p.CorrelationID)
	}
	if p.ReplyTo != "" {
		h.Add(hdrReplyTo, p.ReplyTo)
	}
	if p.Expiration != "" {
		h.Add(hdrExpiration, p.Expiration)
	}
	if p.MessageID != "" {
		h.Add(hdrAMQPMessageID, p.MessageID)
	}
	if p.Type != "" {
		h.Add(hdrType, p.Type)
	}
	if !p.Timestamp.IsZero() {
		h.Add(hdrTimestamp, strconv.FormatInt(p.Timestamp.Unix(), 10))
	}
	if p.AppID != "" {
		h.Add(hdrAppID, p.AppID)
	}
	if len(p.Headers) == 0 {
		return
	}
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		if !reservedMessage[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // a table has no order; keep it stable
	for _, k := range keys {
		h.Add(k, headerString(p.Headers[k]))
	}
}

// headerString renders a header value as STOMP header text.
func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return strconv.FormatInt(x.Unix(), 10)
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = headerString(e)
		}
		return strings.Join(parts, ",")
	}
	if n, ok := core.IntValue(v); ok {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprint(v)
}
