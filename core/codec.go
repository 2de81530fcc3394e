package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"time"
)

// The persistent form of a message: what the message store holds for it.
//
//	version   uint8 (1)
//	vhost     string
//	queues    uvarint count, then each queue name as a string
//	exchange  string
//	key       string
//	props     uvarint flags (bit per non-zero property, in Properties field order),
//	          uvarint Properties.Present, then the non-zero fields
//	body      uvarint length, bytes
//
// Strings are uvarint length + bytes. Tables are uvarint count, then key
// (string) + tagged value; tags are one byte as in AMQP field tables.
//
// Version 2 is a scheduled message (delay.go). After the version byte it
// has
//
//	due       uvarint, unix nanoseconds of the time it falls due
//	target    string, the exchange it is routed through then
//
// followed by the fields of version 1, with no queues: the record's one
// part belongs to the target exchange's scheduler until the message is
// routed. Version 1 records are still written for every other message and
// still decode.
const (
	recordVersion        = 1
	recordVersionDelayed = 2
)

var errCorruptRecord = errors.New("corrupt message record")

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, 'V')
	case bool:
		e.b = append(e.b, 't')
		if x {
			e.b = append(e.b, 1)
		} else {
			e.b = append(e.b, 0)
		}
	case int8:
		e.b = append(e.b, 'b', byte(x))
	case uint8:
		e.b = append(e.b, 'B', x)
	case int16:
		e.b = append(e.b, 's')
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(x))
	case uint16:
		e.b = append(e.b, 'u')
		e.b = binary.BigEndian.AppendUint16(e.b, x)
	case int32:
		e.b = append(e.b, 'I')
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(x))
	case uint32:
		e.b = append(e.b, 'i')
		e.b = binary.BigEndian.AppendUint32(e.b, x)
	case int64:
		e.b = append(e.b, 'l')
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(x))
	case int:
		e.b = append(e.b, 'l')
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(x))
	case float32:
		e.b = append(e.b, 'f')
		e.b = binary.BigEndian.AppendUint32(e.b, math.Float32bits(x))
	case float64:
		e.b = append(e.b, 'd')
		e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(x))
	case string:
		e.b = append(e.b, 'S')
		e.str(x)
	case []byte:
		e.b = append(e.b, 'x')
		e.bytes(x)
	case time.Time:
		e.b = append(e.b, 'T')
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(x.Unix()))
	case []any:
		e.b = append(e.b, 'A')
		e.uvarint(uint64(len(x)))
		for _, el := range x {
			e.value(el)
		}
	default:
		if t, ok := tableOf(v); ok {
			e.b = append(e.b, 'F')
			e.table(t)
			return
		}
		if d, ok := decimalOf(v); ok {
			e.b = append(e.b, 'D', d.scale)
			e.b = binary.BigEndian.AppendUint32(e.b, uint32(d.value))
			return
		}
		// Not representable: keep its text rather than lose the key.
		e.b = append(e.b, 'S')
		e.str(fmt.Sprint(v))
	}
}

func (e *encoder) table(t Table) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.value(t[k])
	}
}

// Decimal is how a protocol's decimal value comes back from the store.
type Decimal struct {
	Scale uint8
	Value int32
}

type decimal struct {
	scale uint8
	value int32
}

// decimalOf recognises any struct with fields Scale uint8 and Value int32.
func decimalOf(v any) (decimal, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Struct {
		return decimal{}, false
	}
	s, val := rv.FieldByName("Scale"), rv.FieldByName("Value")
	if !s.IsValid() || !val.IsValid() || s.Kind() != reflect.Uint8 || val.Kind() != reflect.Int32 {
		return decimal{}, false
	}
	return decimal{uint8(s.Uint()), int32(val.Int())}, true
}

const (
	pContentType = 1 << iota
	pContentEncoding
	pHeaders
	pDeliveryMode
	pPriority
	pCorrelationID
	pReplyTo
	pExpiration
	pMessageID
	pTimestamp
	pType
	pUserID
	pAppID
	pClusterID
)

// encodeRecord returns the persistent form of msg held by queues.
func encodeRecord(vhost string, msg *Message, queues []string) []byte {
	e := encoder{b: make([]byte, 0, 1+recordCap(vhost, msg, queues))}
	e.b = append(e.b, recordVersion)
	e.message(vhost, msg, queues)
	return e.b
}

// encodeDelayedRecord returns the persistent form of msg scheduled to be
// routed through exchange target at due (unix nanoseconds).
func encodeDelayedRecord(vhost, target string, due int64, msg *Message) []byte {
	e := encoder{b: make([]byte, 0, 16+len(target)+recordCap(vhost, msg, nil))}
	e.b = append(e.b, recordVersionDelayed)
	e.uvarint(uint64(due))
	e.str(target)
	e.message(vhost, msg, nil)
	return e.b
}

// recordCap is about the size message encodes, a little more unless the
// headers are large: enough that encoding a record allocates its buffer
// once (the body alone plus 64 bytes was short of a notification job's
// properties, and the copy to a buffer twice the size was a tenth of the
// cost of queueing one).
func recordCap(vhost string, msg *Message, queues []string) int {
	p := &msg.Props
	n := 40 + len(vhost) + len(msg.Exchange) + len(msg.RoutingKey) + len(msg.Body) +
		len(p.ContentType) + len(p.ContentEncoding) + len(p.CorrelationID) + len(p.ReplyTo) + len(p.Expiration) +
		len(p.MessageID) + len(p.Type) + len(p.UserID) + len(p.AppID) + len(p.ClusterID) + 10*3
	for _, q := range queues {
		n += 3 + len(q)
	}
	return n + 48*len(p.Headers)
}

// message appends the fields every record version shares.
func (e *encoder) message(vhost string, msg *Message, queues []string) {
	e.str(vhost)
	e.uvarint(uint64(len(queues)))
	for _, q := range queues {
		e.str(q)
	}
	e.str(msg.Exchange)
	e.str(msg.RoutingKey)
	p := &msg.Props
	var flags uint64
	strs := []struct {
		bit uint64
		s   string
	}{{pContentType, p.ContentType}, {pContentEncoding, p.ContentEncoding}, {pCorrelationID, p.CorrelationID},
		{pReplyTo, p.ReplyTo}, {pExpiration, p.Expiration}, {pMessageID, p.MessageID}, {pType, p.Type},
		{pUserID, p.UserID}, {pAppID, p.AppID}, {pClusterID, p.ClusterID}}
	for _, s := range strs {
		if s.s != "" {
			flags |= s.bit
		}
	}
	if len(p.Headers) > 0 {
		flags |= pHeaders
	}
	if p.DeliveryMode != 0 {
		flags |= pDeliveryMode
	}
	if p.Priority != 0 {
		flags |= pPriority
	}
	if !p.Timestamp.IsZero() {
		flags |= pTimestamp
	}
	e.uvarint(flags)
	e.uvarint(uint64(p.Present))
	for _, s := range strs {
		if s.s != "" {
			e.str(s.s)
		}
	}
	if flags&pHeaders != 0 {
		e.table(p.Headers)
	}
	if flags&pDeliveryMode != 0 {
		e.b = append(e.b, p.DeliveryMode)
	}
	if flags&pPriority != 0 {
		e.b = append(e.b, p.Priority)
	}
	if flags&pTimestamp != 0 {
		e.uvarint(uint64(p.Timestamp.Unix()))
	}
	e.bytes(msg.Body)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorruptRecord
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) raw(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.raw(d.uvarint())) }

func (d *decoder) fixed(n int) []byte { return d.raw(uint64(n)) }

func (d *decoder) value(depth int) any {
	if depth > 64 {
		d.fail()
		return nil
	}
	tag := d.fixed(1)
	if d.err != nil {
		return nil
	}
	switch tag[0] {
	case 'V':
		return nil
	case 't':
		b := d.fixed(1)
		return d.err == nil && b[0] != 0
	case 'b':
		if b := d.fixed(1); d.err == nil {
			return int8(b[0])
		}
	case 'B':
		if b := d.fixed(1); d.err == nil {
			return b[0]
		}
	case 's':
		if b := d.fixed(2); d.err == nil {
			return int16(binary.BigEndian.Uint16(b))
		}
	case 'u':
		if b := d.fixed(2); d.err == nil {
			return binary.BigEndian.Uint16(b)
		}
	case 'I':
		if b := d.fixed(4); d.err == nil {
			return int32(binary.BigEndian.Uint32(b))
		}
	case 'i':
		if b := d.fixed(4); d.err == nil {
			return binary.BigEndian.Uint32(b)
		}
	case 'l':
		if b := d.fixed(8); d.err == nil {
			return int64(binary.BigEndian.Uint64(b))
		}
	case 'f':
		if b := d.fixed(4); d.err == nil {
			return math.Float32frombits(binary.BigEndian.Uint32(b))
		}
	case 'd':
		if b := d.fixed(8); d.err == nil {
			return math.Float64frombits(binary.BigEndian.Uint64(b))
		}
	case 'D':
		if b := d.fixed(5); d.err == nil {
			return Decimal{Scale: b[0], Value: int32(binary.BigEndian.Uint32(b[1:]))}
		}
	case 'S':
		return d.str()
	case 'x':
		return append([]byte(nil), d.raw(d.uvarint())...)
	case 'T':
		if b := d.fixed(8); d.err == nil {
			return time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC()
		}
	case 'A':
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail()
			return nil
		}
		out := make([]any, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			out = append(out, d.value(depth+1))
		}
		return out
	case 'F':
		return d.table(depth + 1)
	default:
		d.fail()
	}
	return nil
}

func (d *decoder) table(depth int) Table {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	t := make(Table, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		t[k] = d.value(depth)
	}
	return t
}

// storedRecord is a decoded record of either version.
type storedRecord struct {
	vhost  string
	msg    *Message
	queues []string
	due    int64  // unix nanoseconds; 0: not a scheduled message
	target string // the exchange a scheduled message is routed through
}

// decodeRecord reverses encodeRecord (and reads a scheduled message's
// record as its message).
func decodeRecord(data []byte) (string, *Message, []string, error) {
	r, err := decodeStored(data)
	return r.vhost, r.msg, r.queues, err
}

// decodeStored decodes a record of any version.
func decodeStored(data []byte) (storedRecord, error) {
	var r storedRecord
	d := decoder{b: data}
	v := d.fixed(1)
	if d.err != nil || (v[0] != recordVersion && v[0] != recordVersionDelayed) {
		return r, errCorruptRecord
	}
	if v[0] == recordVersionDelayed {
		due := d.uvarint()
		r.target = d.str()
		if d.err != nil || due == 0 || due > math.MaxInt64 {
			return r, errCorruptRecord
		}
		r.due = int64(due)
	}
	vhost := d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return r, errCorruptRecord
	}
	queues := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		queues = append(queues, d.str())
	}
	m := &Message{Exchange: d.str(), RoutingKey: d.str()}
	flags := d.uvarint()
	p := &m.Props
	p.Present = uint16(d.uvarint())
	for _, f := range []struct {
		bit uint64
		s   *string
	}{{pContentType, &p.ContentType}, {pContentEncoding, &p.ContentEncoding}, {pCorrelationID, &p.CorrelationID},
		{pReplyTo, &p.ReplyTo}, {pExpiration, &p.Expiration}, {pMessageID, &p.MessageID}, {pType, &p.Type},
		{pUserID, &p.UserID}, {pAppID, &p.AppID}, {pClusterID, &p.ClusterID}} {
		if flags&f.bit != 0 {
			*f.s = d.str()
		}
	}
	if flags&pHeaders != 0 {
		if p.Headers = d.table(0); len(p.Headers) == 0 {
			p.Headers = nil // an empty table is no headers, as encodeRecord writes it
		}
	}
	if flags&pDeliveryMode != 0 {
		if b := d.fixed(1); d.err == nil {
			p.DeliveryMode = b[0]
		}
	}
	if flags&pPriority != 0 {
		if b := d.fixed(1); d.err == nil {
			p.Priority = b[0]
		}
	}
	if flags&pTimestamp != 0 {
		p.Timestamp = time.Unix(int64(d.uvarint()), 0).UTC()
	}
	m.Body = append([]byte(nil), d.raw(d.uvarint())...)
	if d.err != nil {
		return r, d.err
	}
	r.vhost, r.msg, r.queues = vhost, m, queues
	return r, nil
}

// encodeTable and decodeTable serve definitions (arguments) in the meta store.
func encodeTable(t Table) []byte {
	e := encoder{}
	e.table(t)
	return e.b
}

func decodeTable(b []byte) (Table, error) {
	d := decoder{b: b}
	t := d.table(0)
	return t, d.err
}
