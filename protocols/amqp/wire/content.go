package wire

import (
	"encoding/binary"
	"strconv"
	"time"
)

// Properties are the basic class content properties carried by a content
// header (section 4.2.6.1), in the specification's order. A zero value means
// the property is absent: an empty string, a zero delivery mode or priority,
// a zero Timestamp and an empty Headers table are not encoded. ClusterID is
// the property the 0-9-1 specification calls "reserved" (cluster-id in 0-9).
type Properties struct {
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	// Timestamp is encoded as whole seconds since the Unix epoch and decoded
	// as a UTC time.
	Timestamp time.Time
	Type      string
	UserID    string
	AppID     string
	ClusterID string
	// Present holds the property flags as received: a property whose bit is
	// set is encoded even when its value is zero (a priority of 0, an empty
	// string), so it travels on as the publisher sent it.
	Present uint16
}

// Property flag bits, most significant first, in the order of
// basicPropertyFields. Bit 1 is unused by the basic class and bit 0 is the
// continuation flag.
const (
	flagContentType     = 1 << 15
	flagContentEncoding = 1 << 14
	flagHeaders         = 1 << 13
	flagDeliveryMode    = 1 << 12
	flagPriority        = 1 << 11
	flagCorrelationID   = 1 << 10
	flagReplyTo         = 1 << 9
	flagExpiration      = 1 << 8
	flagMessageID       = 1 << 7
	flagTimestamp       = 1 << 6
	flagType            = 1 << 5
	flagUserID          = 1 << 4
	flagAppID           = 1 << 3
	flagClusterID       = 1 << 2
	flagContinuation    = 1 << 0
)

// ContentHeader is the payload of a content header frame (section 4.2.6.1):
//
//	0          2        4           12               14
//	+----------+--------+-----------+----------------+------------- - -
//	| class-id | weight | body size | property flags | property list...
//	+----------+--------+-----------+----------------+------------- - -
//	   short     short    long long       short        remainder...
type ContentHeader struct {
	ClassID    uint16
	Weight     uint16
	BodySize   uint64
	Properties Properties
}

// Decode decodes a content header frame payload into h. String properties
// keep their previous value, without allocating, when the new bytes are
// equal; Headers is nil when absent or empty and freshly allocated otherwise,
// so decoding a stream of headers without header tables allocates nothing.
//
// Errors are *Error values: FrameError when the payload is shorter than the
// fixed fields, UnexpectedFrame when the class is not basic (the only class
// with content), SyntaxError for the continuation flag (the basic class has
// no further properties) or malformed properties. Bytes after the last
// property are ignored.
func (h *ContentHeader) Decode(payload []byte) error {
	if len(payload) < 14 {
		return errShortHeaderFrame
	}
	h.ClassID = binary.BigEndian.Uint16(payload)
	h.Weight = binary.BigEndian.Uint16(payload[2:])
	h.BodySize = binary.BigEndian.Uint64(payload[4:])
	flags := binary.BigEndian.Uint16(payload[12:])
	if h.ClassID != ClassBasic {
		return newError(UnexpectedFrame, "content header for class "+strconv.Itoa(int(h.ClassID))+", only basic carries content")
	}
	if flags&flagContinuation != 0 {
		return errHeaderContinued
	}
	d := decoder{b: payload[14:]}
	p := &h.Properties
	p.Present = flags
	p.ContentType = optShortstr(&d, flags, flagContentType, p.ContentType)
	p.ContentEncoding = optShortstr(&d, flags, flagContentEncoding, p.ContentEncoding)
	p.Headers = nil
	if flags&flagHeaders != 0 {
		p.Headers = d.table()
	}
	p.DeliveryMode = 0
	if flags&flagDeliveryMode != 0 {
		p.DeliveryMode = d.octet()
	}
	p.Priority = 0
	if flags&flagPriority != 0 {
		p.Priority = d.octet()
	}
	p.CorrelationID = optShortstr(&d, flags, flagCorrelationID, p.CorrelationID)
	p.ReplyTo = optShortstr(&d, flags, flagReplyTo, p.ReplyTo)
	p.Expiration = optShortstr(&d, flags, flagExpiration, p.Expiration)
	p.MessageID = optShortstr(&d, flags, flagMessageID, p.MessageID)
	p.Timestamp = time.Time{}
	if flags&flagTimestamp != 0 {
		p.Timestamp = d.timestamp()
	}
	p.Type = optShortstr(&d, flags, flagType, p.Type)
	p.UserID = optShortstr(&d, flags, flagUserID, p.UserID)
	p.AppID = optShortstr(&d, flags, flagAppID, p.AppID)
	p.ClusterID = optShortstr(&d, flags, flagClusterID, p.ClusterID)
	if d.err != nil {
		if d.err == errTruncatedArgs {
			return errTruncatedProps
		}
		return newError(d.err.Code, "content header: "+d.err.Text)
	}
	return nil
}

func optShortstr(d *decoder, flags, flag uint16, old string) string {
	if flags&flag == 0 {
		return ""
	}
	return d.shortstr(old)
}

// Append appends h in wire form, as a content header frame payload, to b.
func (h *ContentHeader) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.ClassID)
	b = binary.BigEndian.AppendUint16(b, h.Weight)
	b = binary.BigEndian.AppendUint64(b, h.BodySize)
	return appendProperties(b, &h.Properties)
}

// appendProperties appends the property flags and the present properties.
func appendProperties(b []byte, p *Properties) []byte {
	if p == nil {
		return append(b, 0, 0)
	}
	var flags uint16
	if p.ContentType != "" {
		flags |= flagContentType
	}
	if p.ContentEncoding != "" {
		flags |= flagContentEncoding
	}
	if len(p.Headers) > 0 {
		flags |= flagHeaders
	}
	if p.DeliveryMode != 0 {
		flags |= flagDeliveryMode
	}
	if p.Priority != 0 {
		flags |= flagPriority
	}
	if p.CorrelationID != "" {
		flags |= flagCorrelationID
	}
	if p.ReplyTo != "" {
		flags |= flagReplyTo
	}
	if p.Expiration != "" {
		flags |= flagExpiration
	}
	if p.MessageID != "" {
		flags |= flagMessageID
	}
	if !p.Timestamp.IsZero() {
		flags |= flagTimestamp
	}
	if p.Type != "" {
		flags |= flagType
	}
	if p.UserID != "" {
		flags |= flagUserID
	}
	if p.AppID != "" {
		flags |= flagAppID
	}
	if p.ClusterID != "" {
		flags |= flagClusterID
	}
	flags |= p.Present &^ (flagContinuation | 1<<1)
	b = binary.BigEndian.AppendUint16(b, flags)
	if flags&flagContentType != 0 {
		b = appendShortstr(b, p.ContentType)
	}
	if flags&flagContentEncoding != 0 {
		b = appendShortstr(b, p.ContentEncoding)
	}
	if flags&flagHeaders != 0 {
		b = appendTableLossy(b, p.Headers)
	}
	if flags&flagDeliveryMode != 0 {
		b = append(b, p.DeliveryMode)
	}
	if flags&flagPriority != 0 {
		b = append(b, p.Priority)
	}
	if flags&flagCorrelationID != 0 {
		b = appendShortstr(b, p.CorrelationID)
	}
	if flags&flagReplyTo != 0 {
		b = appendShortstr(b, p.ReplyTo)
	}
	if flags&flagExpiration != 0 {
		b = appendShortstr(b, p.Expiration)
	}
	if flags&flagMessageID != 0 {
		b = appendShortstr(b, p.MessageID)
	}
	if flags&flagTimestamp != 0 {
		b = appendTimestamp(b, p.Timestamp)
	}
	if flags&flagType != 0 {
		b = appendShortstr(b, p.Type)
	}
	if flags&flagUserID != 0 {
		b = appendShortstr(b, p.UserID)
	}
	if flags&flagAppID != 0 {
		b = appendShortstr(b, p.AppID)
	}
	if flags&flagClusterID != 0 {
		b = appendShortstr(b, p.ClusterID)
	}
	return b
}
