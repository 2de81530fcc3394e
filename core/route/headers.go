package route

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrInvalidXMatch is wrapped by the errors of [ValidateHeadersArgs].
// Adapters map it to AMQP PRECONDITION_FAILED (406), as RabbitMQ does.
var ErrInvalidXMatch = errors.New("invalid x-match binding argument")

// XMatchError reports an x-match binding argument that is not one of "all",
// "any", "all-with-x" or "any-with-x", or is not a string. Its text is the
// one RabbitMQ puts in the channel.close reply. It unwraps to
// [ErrInvalidXMatch].
type XMatchError struct {
	// Value is the x-match argument as given.
	Value any
}

// Error returns the reply text.
func (e *XMatchError) Error() string {
	if s, ok := e.Value.(string); ok {
		return fmt.Sprintf("Invalid x-match field value %q; expected all, any, all-with-x, or any-with-x", s)
	}
	return fmt.Sprintf("Invalid x-match field type %T (value %v); expected longstr", e.Value, e.Value)
}

// Unwrap returns [ErrInvalidXMatch].
func (e *XMatchError) Unwrap() error { return ErrInvalidXMatch }

// ValidateHeadersArgs checks the arguments of a binding to a headers
// exchange. As in RabbitMQ only x-match is checked: it may be absent (which
// means "all") or a string naming a mode; anything else is an
// [*XMatchError].
func ValidateHeadersArgs(args map[string]any) error {
	v, ok := args["x-match"]
	if !ok {
		return nil
	}
	if s, ok := v.(string); ok {
		switch s {
		case "all", "any", "all-with-x", "any-with-x":
			return nil
		}
	}
	return &XMatchError{Value: v}
}

// headersMode is a parsed x-match argument.
type headersMode struct {
	any   bool // "any" or "any-with-x": one matching argument suffices
	withX bool // "all-with-x" or "any-with-x": x- arguments take part
}

// parseXMatch reads x-match. Like RabbitMQ it treats a missing or invalid
// value as "all".
func parseXMatch(args map[string]any) headersMode {
	s, _ := args["x-match"].(string)
	switch s {
	case "any":
		return headersMode{any: true}
	case "all-with-x":
		return headersMode{withX: true}
	case "any-with-x":
		return headersMode{any: true, withX: true}
	}
	return headersMode{}
}

// skip reports whether the binding argument k takes no part in matching.
func (m headersMode) skip(k string) bool {
	return k == "x-match" || (!m.withX && strings.HasPrefix(k, "x-"))
}

// HeadersMatch reports whether a message with headers hdrs matches a
// headers-exchange binding with arguments args, following RabbitMQ 3.13
// (rabbit_exchange_type_headers):
//
//   - x-match selects the mode: "all" (the default, also used for an invalid
//     value), "any", "all-with-x" or "any-with-x".
//   - The argument x-match itself never takes part. With "all" and "any",
//     every other argument whose key starts with "x-" is ignored too, so
//     x- headers cannot affect the result; the -with-x modes compare them
//     like any other key.
//   - An argument whose value is nil (AMQP void) matches when the header is
//     present, whatever its value. Any other argument matches when the
//     header is present and its value equals the argument's.
//   - "all" matches when every remaining argument matches, so a binding with
//     no remaining arguments matches every message; "any" matches when at
//     least one does, so such a binding matches nothing.
//
// Values compare the way RabbitMQ compares decoded AMQP values (Erlang
// =:=, which ignores the wire type of a top-level field):
//
//   - Integers of any width and signedness compare by numeric value (int8(1)
//     equals int64(1) and uint16(1)).
//   - float32 and float64 compare by value after widening float32 to
//     float64, as the AMQP decoder does. A float never equals an integer
//     (1.0 does not match 1).
//   - string and []byte compare by their bytes, in any combination (AMQP
//     long strings and byte arrays both decode to Erlang binaries).
//   - bool compares with bool, time.Time with time.Time at whole seconds
//     (the AMQP timestamp resolution). RabbitMQ differs here between
//     releases (3.13.x scales header timestamps to milliseconds before
//     comparing, so a timestamp header never equals a timestamp argument);
//     this package keeps the type-consistent rule.
//   - A nil header value equals only a nil argument, which is the presence
//     test above.
//   - Arrays ([]any or another slice of interface values) and tables
//     (map[string]any or another map type with string keys and interface
//     values) compare element by element and key by key, and inside them the
//     types must match exactly (int32(1) does not equal int64(1)), because
//     nested AMQP values keep their type tags in RabbitMQ. Table key order is
//     not significant here (RabbitMQ compares nested tables as received).
//   - Values of any other type, such as a protocol's decimal type, compare
//     with reflect.DeepEqual.
func HeadersMatch(args, hdrs map[string]any) bool {
	m := parseXMatch(args)
	for k, v := range args {
		if m.skip(k) {
			continue
		}
		ok := argMatches(k, v, hdrs)
		if m.any && ok {
			return true
		}
		if !m.any && !ok {
			return false
		}
	}
	return !m.any
}

// argMatches reports whether the binding argument (k, v) matches hdrs.
func argMatches(k string, v any, hdrs map[string]any) bool {
	h, present := hdrs[k]
	if v == nil {
		return present
	}
	return present && valueEqual(v, h)
}

// integer classes returned by intValue.
const (
	notInt = iota
	signedInt
	unsignedInt // only for values above math.MaxInt64
)

// intValue classifies v as an integer: a signed value in i, or an unsigned
// value too large for int64 in u.
func intValue(v any) (i int64, u uint64, class int) {
	switch x := v.(type) {
	case int8:
		return int64(x), 0, signedInt
	case int16:
		return int64(x), 0, signedInt
	case int32:
		return int64(x), 0, signedInt
	case int64:
		return x, 0, signedInt
	case int:
		return int64(x), 0, signedInt
	case uint8:
		return int64(x), 0, signedInt
	case uint16:
		return int64(x), 0, signedInt
	case uint32:
		return int64(x), 0, signedInt
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), 0, signedInt
		}
		return 0, x, unsignedInt
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), 0, signedInt
		}
		return 0, uint64(x), unsignedInt
	}
	return 0, 0, notInt
}

// floatValue widens a float32 or float64.
func floatValue(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// valueEqual compares a non-nil binding argument a with a header value b
// by RabbitMQ's top-level rules (see HeadersMatch).
func valueEqual(a, b any) bool {
	if ai, au, ac := intValue(a); ac != notInt {
		bi, bu, bc := intValue(b)
		return ac == bc && ai == bi && au == bu
	}
	if af, ok := floatValue(a); ok {
		bf, ok := floatValue(b)
		return ok && af == bf
	}
	switch x := a.(type) {
	case string:
		switch y := b.(type) {
		case string:
			return x == y
		case []byte:
			return string(y) == x
		}
		return false
	case []byte:
		switch y := b.(type) {
		case string:
			return string(x) == y
		case []byte:
			return bytes.Equal(x, y)
		}
		return false
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Unix() == y.Unix()
	}
	return strictEqual(a, b)
}

// strictEqual compares two values that must have the same type, as nested
// AMQP values do.
func strictEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Unix() == y.Unix()
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case []any:
		y, ok := b.([]any)
		if ok {
			if len(x) != len(y) {
				return false
			}
			for i := range x {
				if !strictEqual(x[i], y[i]) {
					return false
				}
			}
			return true
		}
	case map[string]any:
		y, ok := b.(map[string]any)
		if ok {
			if len(x) != len(y) {
				return false
			}
			for k, xv := range x {
				yv, ok := y[k]
				if !ok || !strictEqual(xv, yv) {
					return false
				}
			}
			return true
		}
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch {
	case isTable(va.Type()) && isTable(vb.Type()):
		if va.Len() != vb.Len() {
			return false
		}
		for it := va.MapRange(); it.Next(); {
			yv := vb.MapIndex(it.Key().Convert(vb.Type().Key()))
			if !yv.IsValid() || !strictEqual(it.Value().Interface(), yv.Interface()) {
				return false
			}
		}
		return true
	case isArray(va.Type()) && isArray(vb.Type()):
		if va.Len() != vb.Len() {
			return false
		}
		for i := range va.Len() {
			if !strictEqual(va.Index(i).Interface(), vb.Index(i).Interface()) {
				return false
			}
		}
		return true
	}
	return va.Type() == vb.Type() && reflect.DeepEqual(a, b)
}

// isTable reports whether t is a field-table type: a map from a string type
// to an interface type.
func isTable(t reflect.Type) bool {
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Interface
}

// isArray reports whether t is a field-array type: a slice of an interface
// type.
func isArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Interface
}

// Headers is the binding table of a headers exchange: a list of bindings,
// each a set of arguments and a destination, tried in turn against a
// message's headers with [HeadersMatch]. The zero value is not usable; call
// [NewHeaders]. A Headers is safe for concurrent use.
type Headers[D comparable] struct {
	mu sync.RWMutex
	// dests groups bindings by destination, so that Match appends each
	// destination once without deduplicating. REQUIRES: mu.
	dests []headersDest[D]
	// pos maps a destination to its index in dests. REQUIRES: mu.
	pos map[D]int
	// n counts bindings. REQUIRES: mu.
	n int
}

// headersDest is a destination and the bindings that lead to it.
type headersDest[D comparable] struct {
	d        D
	bindings []*headersBinding
}

// headersBinding is a binding's arguments, prepared for matching.
type headersBinding struct {
	args  map[string]any
	mode  headersMode
	conds []headersCond // the arguments that take part, in no order
}

type headersCond struct {
	key string
	val any
}

func newHeadersBinding(args map[string]any) *headersBinding {
	b := &headersBinding{args: args, mode: parseXMatch(args)}
	for k, v := range args {
		if !b.mode.skip(k) {
			b.conds = append(b.conds, headersCond{k, v})
		}
	}
	return b
}

func (b *headersBinding) match(hdrs map[string]any) bool {
	for _, c := range b.conds {
		ok := argMatches(c.key, c.val, hdrs)
		if b.mode.any && ok {
			return true
		}
		if !b.mode.any && !ok {
			return false
		}
	}
	return !b.mode.any
}

// sameArgs reports whether two argument tables are the same binding
// arguments. Types matter (int32(1) and int64(1) differ), as in RabbitMQ,
// where binding arguments keep their AMQP types; nil and empty tables are
// the same.
func sameArgs(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || !reflect.DeepEqual(av, bv) {
			return false
		}
	}
	return true
}

// NewHeaders returns an empty headers table.
func NewHeaders[D comparable]() *Headers[D] {
	return &Headers[D]{pos: make(map[D]int)}
}

// Add binds d with args. It returns false, and changes nothing, if d is
// already bound with equal arguments (see [Headers.Remove]). The table keeps
// args, so the caller must not modify it afterwards. Add does not validate
// args; call [ValidateHeadersArgs] first (an invalid x-match acts as "all").
func (t *Headers[D]) Add(args map[string]any, d D) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.pos[d]
	if !ok {
		i = len(t.dests)
		t.pos[d] = i
		t.dests = append(t.dests, headersDest[D]{d: d})
	}
	e := &t.dests[i]
	for _, b := range e.bindings {
		if sameArgs(b.args, args) {
			return false
		}
	}
	e.bindings = append(e.bindings, newHeadersBinding(args))
	t.n++
	return true
}

// Remove unbinds d from args. Arguments are equal when they have the same
// keys and reflect.DeepEqual values, so the types of values matter; a nil
// and an empty table are equal. It returns false if no such binding exists.
func (t *Headers[D]) Remove(args map[string]any, d D) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.pos[d]
	if !ok {
		return false
	}
	e := &t.dests[i]
	j := -1
	for k, b := range e.bindings {
		if sameArgs(b.args, args) {
			j = k
			break
		}
	}
	if j < 0 {
		return false
	}
	t.n--
	last := len(e.bindings) - 1
	e.bindings[j] = e.bindings[last]
	e.bindings[last] = nil
	e.bindings = e.bindings[:last]
	if last > 0 {
		return true
	}
	// d has no bindings left: drop it.
	delete(t.pos, d)
	lastDest := len(t.dests) - 1
	if i != lastDest {
		t.dests[i] = t.dests[lastDest]
		t.pos[t.dests[i].d] = i
	}
	t.dests[lastDest] = headersDest[D]{}
	t.dests = t.dests[:lastDest]
	return true
}

// Match appends to out every distinct destination with a binding that
// matches hdrs, and returns the extended slice. It allocates nothing when out
// has enough spare capacity.
func (t *Headers[D]) Match(hdrs map[string]any, out []D) []D {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range t.dests {
		e := &t.dests[i]
		for _, b := range e.bindings {
			if b.match(hdrs) {
				out = append(out, e.d)
				break
			}
		}
	}
	return out
}

// Len returns the number of bindings.
func (t *Headers[D]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}
