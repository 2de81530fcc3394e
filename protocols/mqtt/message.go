package mqtt

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// Headers the adapter adds to messages it publishes, so that MQTT
// subscribers get back what MQTT publishers sent. They are not turned into
// user properties on the way out.
const (
	// hdrPublishQoS is set on QoS 2 publishes (QoS 1 is implied by
	// delivery mode 2), so a QoS 2 subscription receives them at QoS 2.
	hdrPublishQoS = "x-mqtt-publish-qos"
	// hdrRetain marks a message published with the retain flag, for
	// subscriptions with retain-as-published.
	hdrRetain = "x-mqtt-retain"
	// hdrPublisher names the publishing client when that client has a
	// no-local subscription, so the message is not sent back to it.
	hdrPublisher = "x-mqtt-publisher"
	// hdrPayloadFormat carries the MQTT 5 payload format indicator (1:
	// UTF-8 text). RabbitMQ 3.13 keeps it only towards AMQP 1.0 (as an
	// amqp-value body); in AMQP 0-9-1 it is this header, so a message
	// that passes through an AMQP client (or is published by one with
	// the header) keeps it.
	hdrPayloadFormat = "x-mqtt-payload-format-indicator"
	// hdrCorrelation holds correlation data that does not fit in the
	// correlation-id property (longer than 255 bytes or not UTF-8).
	hdrCorrelation = "x-correlation-id"
)

// maxShortString is the longest value AMQP 0-9-1 can carry in a property
// such as correlation-id.
const maxShortString = 255

// toCoreMessage maps an MQTT PUBLISH onto a core message. publisher is the
// client id when the publishing session has no-local subscriptions.
func toCoreMessage(exchange string, pk *packets.Packet, publisher string, now time.Time) *core.Message {
	msg := &core.Message{Exchange: exchange, RoutingKey: topicToKey(pk.TopicName), Body: pk.Payload}
	p := &msg.Props
	if pk.FixedHeader.Qos > 0 {
		p.DeliveryMode = core.Persistent
	} else {
		p.DeliveryMode = core.Transient
	}
	var h core.Table
	header := func(k string, v any) {
		if h == nil {
			h = make(core.Table, len(pk.Properties.User)+1)
		}
		h[k] = v
	}
	if pk.FixedHeader.Qos == 2 {
		header(hdrPublishQoS, int32(2))
	}
	if pk.FixedHeader.Retain {
		header(hdrRetain, true)
	}
	if publisher != "" {
		header(hdrPublisher, publisher)
	}
	pp := &pk.Properties
	if pp.PayloadFormatFlag && pp.PayloadFormat != 0 {
		header(hdrPayloadFormat, int32(pp.PayloadFormat))
	}
	p.ContentType = pp.ContentType
	if pp.ResponseTopic != "" {
		p.ReplyTo = topicToKey(pp.ResponseTopic)
	}
	if cd := pp.CorrelationData; len(cd) > 0 {
		if len(cd) <= maxShortString && utf8.Valid(cd) {
			p.CorrelationID = string(cd)
		} else {
			header(hdrCorrelation, append([]byte(nil), cd...))
		}
	}
	if pp.MessageExpiryInterval > 0 {
		p.Expiration = strconv.FormatUint(uint64(pp.MessageExpiryInterval)*1000, 10)
		p.Timestamp = now.Truncate(time.Second)
	}
	for _, u := range pp.User {
		if old, dup := h[u.Key]; dup {
			// A key may repeat in MQTT; keep every value, in order.
			if list, ok := old.([]any); ok {
				h[u.Key] = append(list, u.Val)
			} else {
				h[u.Key] = []any{old, u.Val}
			}
			continue
		}
		header(u.Key, u.Val)
	}
	p.Headers = h
	return msg
}

// messageQoS is the highest QoS a message can be delivered with: what an
// MQTT publisher asked for, or 1 for a persistent message from another
// protocol and 0 for a transient one.
func messageQoS(m *core.Message) byte {
	if m.Props.DeliveryMode != core.Persistent {
		return 0
	}
	if v, ok := m.Props.Headers[hdrPublishQoS]; ok {
		if n, isInt := core.IntValue(v); isInt && n >= 2 {
			return 2
		}
	}
	return 1
}

func publishedRetained(m *core.Message) bool {
	v, _ := m.Props.Headers[hdrRetain].(bool)
	return v
}

func publisherOf(m *core.Message) string {
	v, _ := m.Props.Headers[hdrPublisher].(string)
	return v
}

// publishProperties maps a core message's properties onto MQTT 5 PUBLISH
// properties.
func publishProperties(m *core.Message, now time.Time) packets.Properties {
	var pp packets.Properties
	p := &m.Props
	pp.ContentType = p.ContentType
	if p.ReplyTo != "" {
		pp.ResponseTopic = keyToTopic(p.ReplyTo)
	}
	if p.CorrelationID != "" {
		pp.CorrelationData = []byte(p.CorrelationID)
	}
	if ms, err := strconv.ParseUint(p.Expiration, 10, 64); err == nil && p.Expiration != "" {
		left := time.Duration(ms) * time.Millisecond
		if !p.Timestamp.IsZero() {
			left -= now.Sub(p.Timestamp)
		}
		pp.MessageExpiryInterval = expirySeconds(left)
	}
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a table has no order; at least keep it stable
	for _, k := range keys {
		v := p.Headers[k]
		switch k {
		case hdrPublishQoS, hdrRetain, hdrPublisher:
			continue
		case hdrPayloadFormat:
			if n, ok := core.IntValue(v); ok && n == 1 {
				pp.PayloadFormat, pp.PayloadFormatFlag = 1, true
			}
			continue
		case hdrCorrelation:
			if b, ok := v.([]byte); ok && pp.CorrelationData == nil {
				pp.CorrelationData = b
				continue
			}
		}
		if list, ok := v.([]any); ok {
			for _, e := range list {
				pp.User = append(pp.User, packets.UserProperty{Key: k, Val: headerString(e)})
			}
			continue
		}
		pp.User = append(pp.User, packets.UserProperty{Key: k, Val: headerString(v)})
	}
	return pp
}

// expirySeconds rounds a remaining lifetime up to whole seconds, at least 1
// (a message still being delivered has not expired).
func expirySeconds(d time.Duration) uint32 {
	if d <= time.Second {
		return 1
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// headerString renders a header value as user property text.
func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case nil:
		return ""
	}
	if n, ok := core.IntValue(v); ok {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprint(v)
}

// retainedFromPacket captures a retained PUBLISH.
func retainedFromPacket(pk *packets.Packet, now time.Time) *retainedMsg {
	m := &retainedMsg{topic: pk.TopicName, qos: pk.FixedHeader.Qos, payload: pk.Payload, created: now}
	pp := &pk.Properties
	m.props = packets.Properties{
		ContentType:       pp.ContentType,
		ResponseTopic:     pp.ResponseTopic,
		CorrelationData:   pp.CorrelationData,
		PayloadFormat:     pp.PayloadFormat,
		PayloadFormatFlag: pp.PayloadFormatFlag,
		User:              pp.User,
	}
	if pp.MessageExpiryInterval > 0 {
		m.expires = now.Add(time.Duration(pp.MessageExpiryInterval) * time.Second)
	}
	return m
}
