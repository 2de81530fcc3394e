package wire

import "encoding/binary"

// Method is an AMQP method: the arguments of a method frame (section 4.2.4).
// Every method struct of spec_gen.go implements it with a pointer receiver.
type Method interface {
	// ClassID returns the id of the method's class, such as ClassBasic.
	ClassID() uint16
	// MethodID returns the method's id within its class, such as
	// MethodBasicPublish.
	MethodID() uint16
	// Name returns the method's name in the specification, such as
	// "basic.publish".
	Name() string
	// HasContent reports whether a content header and body frames follow the
	// method: true for basic.publish, basic.return, basic.deliver and
	// basic.get-ok.
	HasContent() bool
	// Sync reports whether the method is a synchronous request, one the
	// receiver answers with a reply method (such as queue.declare, answered
	// by queue.declare-ok). Replies themselves report false.
	Sync() bool
	// Decode decodes the arguments that follow the class and method ids in a
	// method frame payload, overwriting the receiver. A string field keeps
	// its previous value, without allocating, when the new bytes are equal.
	// Errors are *Error values.
	Decode(args []byte) error
	// Append appends the encoded arguments to b and returns the extended
	// slice.
	Append(b []byte) []byte
}

// NewMethod returns a new, zero instance of the method with the given ids, or
// false if the specification defines no such method.
func NewMethod(classID, methodID uint16) (Method, bool) {
	m := newMethod(classID, methodID)
	return m, m != nil
}

// MethodDecoder decodes method frame payloads into instances it owns, one per
// method, so that a steady stream of methods decodes without allocating. The
// Method returned by Decode stays valid until the next Decode of the same
// method overwrites it; a caller that keeps it longer must copy it. The zero
// value is ready to use. A MethodDecoder is not safe for concurrent use.
type MethodDecoder struct {
	set methodSet
}

// Decode decodes a whole method frame payload: class id, method id and
// arguments. It returns the decoder's instance of that method. Errors are
// *Error values: CommandInvalid for an unknown class or method id,
// SyntaxError for malformed arguments, FrameError for a payload too short to
// hold the ids.
func (d *MethodDecoder) Decode(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, errShortMethodFrame
	}
	classID := binary.BigEndian.Uint16(payload)
	methodID := binary.BigEndian.Uint16(payload[2:])
	m := d.set.get(classID, methodID)
	if m == nil {
		return nil, unknownMethod(classID, methodID)
	}
	if err := m.Decode(payload[4:]); err != nil {
		return nil, err
	}
	return m, nil
}

// AppendMethod appends the payload of a method frame, class id, method id and
// arguments, to b.
func AppendMethod(b []byte, m Method) []byte {
	b = binary.BigEndian.AppendUint16(b, m.ClassID())
	b = binary.BigEndian.AppendUint16(b, m.MethodID())
	return m.Append(b)
}
