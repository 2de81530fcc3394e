package mqtt

import (
	"encoding/binary"
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"
)

// errTooLarge: the packet exceeds the client's maximum packet size.
var errTooLarge = errors.New("mqtt: packet larger than the client accepts")

// appendPublish appends pk, a PUBLISH, encoded for protocol version to b.
// The adapter writes deliveries itself, a batch into one buffer, rather
// than through mochi's WritePacket, which allocates a buffer per packet and
// looks each property up in a table. maxSize is the client's maximum packet
// size (0: none); a larger packet is not appended.
func appendPublish(b []byte, pk *packets.Packet, version byte, maxSize uint32) ([]byte, error) {
	var props []byte
	var scratch [128]byte
	if version == 5 {
		props = appendPublishProperties(scratch[:0], &pk.Properties)
	}
	n := 2 + len(pk.TopicName) + len(pk.Payload)
	if pk.FixedHeader.Qos > 0 {
		n += 2
	}
	if version == 5 {
		n += varintLen(len(props)) + len(props)
	}
	total := 1 + varintLen(n) + n
	if n > 268435455 || (maxSize > 0 && total > int(maxSize)) {
		return b, errTooLarge
	}
	h := byte(packets.Publish<<4) | pk.FixedHeader.Qos<<1
	if pk.FixedHeader.Dup {
		h |= 1 << 3
	}
	if pk.FixedHeader.Retain {
		h |= 1
	}
	b = append(b, h)
	b = appendVarint(b, n)
	b = appendString(b, pk.TopicName)
	if pk.FixedHeader.Qos > 0 {
		b = binary.BigEndian.AppendUint16(b, pk.PacketID)
	}
	if version == 5 {
		b = appendVarint(b, len(props))
		b = append(b, props...)
	}
	return append(b, pk.Payload...), nil
}

// appendPublishProperties appends the MQTT 5 properties a PUBLISH from the
// server may carry.
func appendPublishProperties(b []byte, p *packets.Properties) []byte {
	if p.PayloadFormatFlag {
		b = append(b, packets.PropPayloadFormat, p.PayloadFormat)
	}
	if p.MessageExpiryInterval > 0 {
		b = append(b, packets.PropMessageExpiryInterval)
		b = binary.BigEndian.AppendUint32(b, p.MessageExpiryInterval)
	}
	if p.ContentType != "" {
		b = append(b, packets.PropContentType)
		b = appendString(b, p.ContentType)
	}
	if p.ResponseTopic != "" {
		b = append(b, packets.PropResponseTopic)
		b = appendString(b, p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 {
		b = append(b, packets.PropCorrelationData)
		b = appendString(b, string(p.CorrelationData))
	}
	for _, id := range p.SubscriptionIdentifier {
		if id > 0 {
			b = append(b, packets.PropSubscriptionIdentifier)
			b = appendVarint(b, id)
		}
	}
	if p.TopicAliasFlag && p.TopicAlias > 0 {
		b = append(b, packets.PropTopicAlias)
		b = binary.BigEndian.AppendUint16(b, p.TopicAlias)
	}
	for _, u := range p.User {
		b = append(b, packets.PropUser)
		b = appendString(b, u.Key)
		b = appendString(b, u.Val)
	}
	return b
}

// appendString appends an MQTT UTF-8 string or binary data: a two-byte
// length, then the bytes (at most 65535, as the decoder checked or the
// property mapping guarantees).
func appendString(b []byte, s string) []byte {
	if len(s) > 0xFFFF {
		s = s[:0xFFFF]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendVarint appends MQTT's variable byte integer.
func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}
