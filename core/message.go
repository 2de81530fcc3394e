package core

import "time"

// Table is a field table: header values and declaration arguments. Values are
// bool, int8, uint8, int16, uint16, int32, uint32, int64, float32, float64,
// string, []byte, []any, time.Time, nested tables, nil, or a protocol's
// decimal type.
type Table = map[string]any

// Delivery modes.
const (
	Transient  uint8 = 1
	Persistent uint8 = 2
)

// Properties are the message properties every protocol maps onto. A zero
// value means the property is absent.
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
	Timestamp       time.Time
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
	// Present marks properties given explicitly even when zero (a priority
	// of 0, an empty string), one bit per property in the field order above,
	// most significant bit first (ContentType = 1<<15 … ClusterID = 1<<2).
	Present uint16
}

// PresentExpiration is the Present bit of Expiration.
const PresentExpiration uint16 = 1 << 8

// Message is a published message. It is immutable once published: the same
// *Message (and its Body) is shared by every queue it was routed to.
type Message struct {
	// Exchange and RoutingKey are those the message was published with.
	Exchange   string
	RoutingKey string
	Props      Properties
	Body       []byte
}

// Persistent reports whether the publisher asked for the message to survive a restart.
func (m *Message) Persistent() bool { return m.Props.DeliveryMode == Persistent }
