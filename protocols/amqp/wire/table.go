package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Table is a field table (section 4.2.5.5): method arguments such as
// queue.declare's, the headers content property, and peer properties.
//
// Decoded values have the Go types amqp091-go uses, so that re-encoding
// keeps each value's type tag:
//
//	't' bool       'b' int8      'B' uint8     's' int16     'u' uint16
//	'I' int32      'i' uint32    'l' int64     'f' float32   'd' float64
//	'D' Decimal    'S' string    'x' []byte    'A' []any     'T' time.Time
//	'F' Table      'V' nil
//
// This is the set RabbitMQ itself parses (its 's' is a signed 16-bit integer,
// not the specification's short string). Timestamps are whole seconds and
// decode as UTC times. Nested empty tables decode as empty, non-nil Tables,
// and empty arrays as empty, non-nil slices.
//
// When encoding, int, and uint and uint64 up to math.MaxInt64, are also
// accepted and encoded as 'l'; map[string]any as 'F'; []string and []Table as
// arrays of 'S' and 'F' values. Keys are written in sorted order, so equal
// tables encode to equal bytes.
type Table map[string]any

// Decimal is a decimal field value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// MaxTableDepth is how deeply tables and arrays may nest, counting the
// outermost table as one level. Deeper input is rejected with SyntaxError,
// so hostile input cannot exhaust the stack.
const MaxTableDepth = 64

// DecodeTable decodes a field table as it appears on the wire, a 4-byte
// length followed by that many bytes of name-value pairs, from the start of
// b. It returns the table (nil when empty; values never alias b), the number
// of bytes consumed, and an *Error with code SyntaxError if b is malformed.
// A name that appears twice keeps its last value.
func DecodeTable(b []byte) (Table, int, error) {
	t, n, err := decodeTable(b, 0)
	if err != nil {
		return nil, 0, err
	}
	return t, n, nil
}

// AppendTable appends t to b in wire form, a 4-byte length followed by the
// name-value pairs. It returns an error, and b unchanged, if t holds a value
// of an unsupported Go type, a name longer than 255 bytes, or nests deeper
// than MaxTableDepth.
func AppendTable(b []byte, t Table) ([]byte, error) {
	out, err := appendTable(b, t, 0, false)
	if err != nil {
		return b, err
	}
	return out, nil
}

// Validate reports whether AppendTable can encode t.
func (t Table) Validate() error {
	var scratch [256]byte
	_, err := appendTable(scratch[:0], t, 0, false)
	return err
}

// appendTableLossy appends t, encoding values it cannot represent as void
// and truncating long names. The method and header encoders use it, since
// they cannot fail.
func appendTableLossy(b []byte, t Table) []byte {
	b, _ = appendTable(b, t, 0, true)
	return b
}

// decodeTable decodes a table at nesting level depth (0 for the outermost).
func decodeTable(b []byte, depth int) (Table, int, *Error) {
	if depth >= MaxTableDepth {
		return nil, 0, errTableTooDeep
	}
	if len(b) < 4 {
		return nil, 0, errTruncatedTableLen
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) > uint64(len(b)-4) {
		return nil, 0, errTruncatedTable
	}
	body := b[4 : 4+int(size)]
	if len(body) == 0 {
		if depth > 0 {
			return Table{}, 4, nil
		}
		return nil, 4, nil
	}
	t := make(Table)
	for off := 0; off < len(body); {
		klen := int(body[off])
		off++
		if klen >= len(body)-off {
			// The name and at least a type tag must follow.
			return nil, 0, errTruncatedTable
		}
		key := body[off : off+klen]
		off += klen
		v, n, err := decodeValue(body[off:], depth)
		if err != nil {
			return nil, 0, err
		}
		off += n
		t[string(key)] = v
	}
	return t, 4 + int(size), nil
}

// decodeArray decodes a field array at nesting level depth.
func decodeArray(b []byte, depth int) ([]any, int, *Error) {
	if depth >= MaxTableDepth {
		return nil, 0, errTableTooDeep
	}
	if len(b) < 4 {
		return nil, 0, errTruncatedArray
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) > uint64(len(b)-4) {
		return nil, 0, errTruncatedArray
	}
	body := b[4 : 4+int(size)]
	a := []any{}
	for off := 0; off < len(body); {
		v, n, err := decodeValue(body[off:], depth)
		if err != nil {
			return nil, 0, err
		}
		off += n
		a = append(a, v)
	}
	return a, 4 + int(size), nil
}

// decodeValue decodes one field value, type tag first, found in a container
// at nesting level depth. It returns the value and the bytes consumed.
func decodeValue(b []byte, depth int) (any, int, *Error) {
	if len(b) == 0 {
		return nil, 0, errTruncatedTable
	}
	tag := b[0]
	// width is the size of fixed-width values, checked in one place below.
	var width int
	switch tag {
	case 'V':
		return nil, 1, nil
	case 't', 'b', 'B':
		width = 1
	case 's', 'u':
		width = 2
	case 'I', 'i', 'f':
		width = 4
	case 'D':
		width = 5
	case 'l', 'd', 'T':
		width = 8
	case 'S', 'x':
		if len(b) < 5 {
			return nil, 0, errTruncatedTable
		}
		n := binary.BigEndian.Uint32(b[1:])
		if uint64(n) > uint64(len(b)-5) {
			return nil, 0, errTruncatedTable
		}
		s := b[5 : 5+int(n)]
		if tag == 'S' {
			return string(s), 5 + int(n), nil
		}
		return append([]byte{}, s...), 5 + int(n), nil
	case 'A':
		a, n, err := decodeArray(b[1:], depth+1)
		return a, 1 + n, err
	case 'F':
		t, n, err := decodeTable(b[1:], depth+1)
		return t, 1 + n, err
	default:
		return nil, 0, badFieldType(tag)
	}
	if len(b) < 1+width {
		return nil, 0, errTruncatedTable
	}
	v := b[1 : 1+width]
	n := 1 + width
	switch tag {
	case 't':
		return v[0] != 0, n, nil
	case 'b':
		return int8(v[0]), n, nil
	case 'B':
		return v[0], n, nil
	case 's':
		return int16(binary.BigEndian.Uint16(v)), n, nil
	case 'u':
		return binary.BigEndian.Uint16(v), n, nil
	case 'I':
		return int32(binary.BigEndian.Uint32(v)), n, nil
	case 'i':
		return binary.BigEndian.Uint32(v), n, nil
	case 'f':
		return math.Float32frombits(binary.BigEndian.Uint32(v)), n, nil
	case 'D':
		return Decimal{Scale: v[0], Value: int32(binary.BigEndian.Uint32(v[1:]))}, n, nil
	case 'l':
		return int64(binary.BigEndian.Uint64(v)), n, nil
	case 'd':
		return math.Float64frombits(binary.BigEndian.Uint64(v)), n, nil
	default: // 'T'
		return decodeTime(binary.BigEndian.Uint64(v)), n, nil
	}
}

// appendTable appends a table at nesting level depth. In lossy mode it never
// fails: see appendTableLossy.
func appendTable(b []byte, t map[string]any, depth int, lossy bool) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	// Sort the names for deterministic output; small tables sort on the stack.
	var small [16]string
	keys := small[:0]
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := t[k]
		if len(k) > 255 {
			if !lossy {
				return b, fmt.Errorf("wire: table field name longer than 255 bytes: %.32q...", k)
			}
			k = k[:255]
		}
		b = append(b, byte(len(k)))
		b = append(b, k...)
		var err error
		if b, err = appendValue(b, v, depth, lossy); err != nil {
			return b, fmt.Errorf("wire: table field %q: %w", k, err)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// appendArray appends the elements of an array at nesting level depth,
// calling elem for each index.
func appendArray(b []byte, n int, elem func(b []byte, i int) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	for i := 0; i < n; i++ {
		var err error
		if b, err = elem(b, i); err != nil {
			return b, fmt.Errorf("array element %d: %w", i, err)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

var errTooDeepEncode = fmt.Errorf("tables nested deeper than %d levels", MaxTableDepth)

// appendValue appends one field value, type tag first, found in a container
// at nesting level depth.
func appendValue(b []byte, v any, depth int, lossy bool) ([]byte, error) {
	be := binary.BigEndian
	switch v := v.(type) {
	case nil:
		return append(b, 'V'), nil
	case bool:
		return append(b, 't', bit(v)), nil
	case int8:
		return append(b, 'b', byte(v)), nil
	case uint8:
		return append(b, 'B', v), nil
	case int16:
		return be.AppendUint16(append(b, 's'), uint16(v)), nil
	case uint16:
		return be.AppendUint16(append(b, 'u'), v), nil
	case int32:
		return be.AppendUint32(append(b, 'I'), uint32(v)), nil
	case uint32:
		return be.AppendUint32(append(b, 'i'), v), nil
	case int64:
		return be.AppendUint64(append(b, 'l'), uint64(v)), nil
	case int:
		return be.AppendUint64(append(b, 'l'), uint64(v)), nil
	case uint:
		if uint64(v) <= math.MaxInt64 {
			return be.AppendUint64(append(b, 'l'), uint64(v)), nil
		}
	case uint64:
		if v <= math.MaxInt64 {
			return be.AppendUint64(append(b, 'l'), v), nil
		}
	case float32:
		return be.AppendUint32(append(b, 'f'), math.Float32bits(v)), nil
	case float64:
		return be.AppendUint64(append(b, 'd'), math.Float64bits(v)), nil
	case Decimal:
		return be.AppendUint32(append(b, 'D', v.Scale), uint32(v.Value)), nil
	case string:
		return appendLongstr(append(b, 'S'), v), nil
	case []byte:
		return appendLongstr(append(b, 'x'), v), nil
	case time.Time:
		return appendTimestamp(append(b, 'T'), v), nil
	case Table:
		return appendNested(b, v, depth, lossy)
	case map[string]any:
		return appendNested(b, v, depth, lossy)
	case []any:
		if depth+1 >= MaxTableDepth {
			break
		}
		return appendArray(append(b, 'A'), len(v), func(b []byte, i int) ([]byte, error) {
			return appendValue(b, v[i], depth+1, lossy)
		})
	case []string:
		return appendArray(append(b, 'A'), len(v), func(b []byte, i int) ([]byte, error) {
			return appendLongstr(append(b, 'S'), v[i]), nil
		})
	case []Table:
		if depth+2 >= MaxTableDepth {
			break
		}
		return appendArray(append(b, 'A'), len(v), func(b []byte, i int) ([]byte, error) {
			return appendNested(b, v[i], depth+1, lossy)
		})
	}
	if lossy {
		return append(b, 'V'), nil
	}
	switch v.(type) {
	case uint, uint64:
		return b, fmt.Errorf("unsigned value %v exceeds int64", v)
	case []any, []Table, Table, map[string]any:
		return b, errTooDeepEncode
	}
	return b, fmt.Errorf("unsupported value type %T", v)
}

// appendNested appends a nested table value found in a container at nesting
// level depth.
func appendNested(b []byte, t map[string]any, depth int, lossy bool) ([]byte, error) {
	if depth+1 >= MaxTableDepth {
		if lossy {
			return append(b, 'V'), nil
		}
		return b, errTooDeepEncode
	}
	return appendTable(append(b, 'F'), t, depth+1, lossy)
}
