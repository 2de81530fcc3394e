package core

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/unifiedms/ums/core/route"
)

// Exchange types.
const (
	KindDirect  = "direct"
	KindFanout  = "fanout"
	KindTopic   = "topic"
	KindHeaders = "headers"
	// KindDelayed is the delayed-message exchange of RabbitMQ's
	// rabbitmq_delayed_message_exchange plugin: it routes like the type
	// named by its x-delayed-type argument, a message carrying an x-delay
	// header (milliseconds) when that delay is over (delay.go).
	KindDelayed = "x-delayed-message"
)

// ArgDelayedType is the argument of an x-delayed-message exchange naming
// the exchange type whose routing it follows.
const ArgDelayedType = "x-delayed-type"

// ValidKind reports whether kind is an exchange type this server implements.
func ValidKind(kind string) bool {
	return kind == KindDelayed || routingKind(kind)
}

// routingKind reports whether kind is a type with its own routing rules
// (what x-delayed-type may name).
func routingKind(kind string) bool {
	switch kind {
	case KindDirect, KindFanout, KindTopic, KindHeaders:
		return true
	}
	return false
}

// delayedType returns the routing type of an x-delayed-message exchange
// with arguments args, or an ErrPreconditionFailed error as the plugin
// answers a missing or unknown x-delayed-type.
func delayedType(vhost, name string, args Table) (string, error) {
	t, _ := args[ArgDelayedType].(string)
	if !routingKind(t) {
		return "", errorf(ErrPreconditionFailed, "Invalid argument, '%s' must be an existing exchange type (exchange '%s' in vhost '%s', got %v)",
			ArgDelayedType, name, vhost, args[ArgDelayedType])
	}
	return t, nil
}

// dest is a binding destination: a queue or an exchange.
type dest struct {
	q *Queue
	x *Exchange
}

func (d dest) name() string {
	if d.q != nil {
		return d.q.Name
	}
	return d.x.Name
}

// binding is one binding whose source is an exchange.
type binding struct {
	src  *Exchange
	dst  dest
	key  string
	args Table
	id   string // args fingerprint: bindings with equal key, dest and id are the same binding
}

// Binding describes a binding for listings.
type Binding struct {
	Source          string
	Destination     string
	DestinationKind string // "queue" or "exchange"
	RoutingKey      string
	Arguments       Table
}

// ExchangeOptions are the attributes of an exchange declaration.
type ExchangeOptions struct {
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       Table
}

// Exchange routes messages to queues and other exchanges.
type Exchange struct {
	vhost *Vhost
	Name  string
	Kind  string
	ExchangeOptions

	// rkind is the type whose routing rules apply: Kind, or the
	// x-delayed-type of an x-delayed-message exchange.
	rkind string
	// delayed is set for x-delayed-message exchanges: messages with an
	// x-delay header wait in sched before they are routed.
	delayed bool
	// sched holds the messages waiting to be routed through this exchange
	// (delay.go); created with a delayed exchange, or on first use by
	// Vhost.Schedule.
	sched atomic.Pointer[scheduler]

	deleted atomic.Bool

	// bindings, guarded by vhost.mu.
	bindings map[bindingKey]*binding

	// mu guards the matchers below; routing takes it for reading.
	mu      sync.RWMutex
	direct  *route.Direct[dest]
	topic   *route.Topic[dest]
	headers *route.Headers[dest]
	fanout  []dest
	refs    map[matchKey]int // how many bindings share a matcher entry
	// matched counts the entries of refs, read by Routes without a lock.
	matched atomic.Int64
}

type bindingKey struct {
	dst dest
	key string
	id  string
}

type matchKey struct {
	dst dest
	key string
}

// newExchange makes an exchange; kind must be valid and, for
// x-delayed-message, its arguments checked with delayedType.
func newExchange(v *Vhost, name, kind string, opts ExchangeOptions) *Exchange {
	x := &Exchange{vhost: v, Name: name, Kind: kind, ExchangeOptions: opts, rkind: kind,
		bindings: make(map[bindingKey]*binding), refs: make(map[matchKey]int)}
	if kind == KindDelayed {
		x.rkind, _ = opts.Args[ArgDelayedType].(string)
		x.delayed = true
		x.sched.Store(newScheduler(x))
	}
	switch x.rkind {
	case KindDirect:
		x.direct = route.NewDirect[dest]()
	case KindTopic:
		x.topic = route.NewTopic[dest]()
	case KindHeaders:
		x.headers = route.NewHeaders[dest]()
	}
	return x
}

// Deleted reports whether the exchange has been deleted; adapters that cache
// an *Exchange check it before use.
func (x *Exchange) Deleted() bool { return x.deleted.Load() }

// Routes reports whether a message published to x now with routing key
// key would reach a queue or an exchange, or wait in a delayed exchange;
// for an exchange that matches on headers or routes by its alternate,
// whether it could. A publisher whose message costs something to build
// (an event nobody may be listening to) checks it first. A binding made
// at the same moment may miss that one message, as it would had the
// message been published a moment earlier.
func (x *Exchange) Routes(key string) bool {
	if x.Name == "" || x.delayed {
		return true
	}
	if _, alt := x.Args["alternate-exchange"].(string); alt {
		return true
	}
	if x.matched.Load() == 0 {
		return false
	}
	if x.rkind != KindDirect && x.rkind != KindTopic {
		return true
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.rkind == KindDirect {
		return x.direct.Any(key)
	}
	return x.topic.Any(key)
}

func argsID(args Table) string {
	if len(args) == 0 {
		return ""
	}
	// fmt prints maps sorted by key, so equal tables give equal strings.
	return fmt.Sprintf("%v", args)
}

// matchKey is what the matchers tell apart: fanout ignores the key, headers
// match on the arguments instead.
func (x *Exchange) matchKey(b *binding) matchKey {
	switch x.rkind {
	case KindFanout:
		return matchKey{dst: b.dst}
	case KindHeaders:
		return matchKey{dst: b.dst, key: b.id}
	}
	return matchKey{dst: b.dst, key: b.key}
}

// addMatch adds a binding to the matchers. REQUIRES: vhost.mu held for writing.
func (x *Exchange) addMatch(b *binding) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mk := x.matchKey(b)
	x.refs[mk]++
	if x.refs[mk] > 1 {
		return
	}
	x.matched.Add(1)
	switch x.rkind {
	case KindHeaders:
		x.headers.Add(b.args, b.dst)
	case KindDirect:
		x.direct.Add(b.key, b.dst)
	case KindTopic:
		x.topic.Add(b.key, b.dst)
	case KindFanout:
		x.fanout = append(append([]dest(nil), x.fanout...), b.dst)
	}
}

// removeMatch undoes addMatch. REQUIRES: vhost.mu held for writing.
func (x *Exchange) removeMatch(b *binding) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mk := x.matchKey(b)
	x.refs[mk]--
	if x.refs[mk] > 0 {
		return
	}
	delete(x.refs, mk)
	x.matched.Add(-1)
	switch x.rkind {
	case KindHeaders:
		x.headers.Remove(b.args, b.dst)
	case KindDirect:
		x.direct.Remove(b.key, b.dst)
	case KindTopic:
		x.topic.Remove(b.key, b.dst)
	case KindFanout:
		nf := make([]dest, 0, len(x.fanout))
		for _, d := range x.fanout {
			if d != b.dst {
				nf = append(nf, d)
			}
		}
		x.fanout = nf
	}
}

// match appends the destinations of msg to out.
func (x *Exchange) match(msg *Message, out []dest) []dest {
	if x.Name == "" { // the default exchange: every queue is bound by its name
		if q := x.vhost.queue(msg.RoutingKey); q != nil {
			out = append(out, dest{q: q})
		}
		return out
	}
	x.mu.RLock()
	switch x.rkind {
	case KindDirect:
		out = x.direct.Match(msg.RoutingKey, out)
	case KindTopic:
		out = x.topic.Match(msg.RoutingKey, out)
	case KindFanout:
		out = append(out, x.fanout...)
	case KindHeaders:
		out = x.headers.Match(msg.Props.Headers, out)
	}
	x.mu.RUnlock()
	return out
}

// Router holds the scratch space of routing, so that publishing allocates
// nothing. Each publishing goroutine owns one; the zero value is ready.
type Router struct {
	// Mandatory is set by a publisher whose next publish is mandatory: a
	// message for an x-delayed-message exchange that would reach no queue
	// now is then not scheduled (the adapter returns it, as any unroutable
	// mandatory message) instead of being held and routed later.
	Mandatory bool

	// conn, when set (CountFor), counts the publishes through this router.
	conn atomic.Pointer[Conn]

	durable []string
	dests   []dest
	xs      []*Exchange
	queues  []*Queue
	seen    map[*Queue]struct{}
}

// route collects the distinct queues msg reaches from x, following
// exchange-to-exchange bindings (each exchange visited once). When x routes
// nowhere and has an alternate exchange, the message goes there instead
// (following further alternates, each once).
func (r *Router) route(x *Exchange, msg *Message) []*Queue {
	r.queues = r.queues[:0]
	if r.seen != nil {
		clear(r.seen)
	}
	tried := 0
	for x != nil && tried < 8 {
		r.collect(x, msg)
		if len(r.queues) > 0 {
			break
		}
		x = x.alternate()
		tried++
	}
	return r.queues
}

// alternate returns the exchange's alternate exchange, if it has one that exists.
func (x *Exchange) alternate() *Exchange {
	name, ok := x.Args["alternate-exchange"].(string)
	if !ok || name == x.Name {
		return nil
	}
	return x.vhost.lookupExchange(name)
}

func (r *Router) collect(x *Exchange, msg *Message) {
	r.xs = append(r.xs[:0], x)
	for i := 0; i < len(r.xs); i++ {
		r.dests = r.xs[i].match(msg, r.dests[:0])
		for _, d := range r.dests {
			if d.q != nil {
				r.addQueue(d.q)
				continue
			}
			if !containsExchange(r.xs, d.x) {
				r.xs = append(r.xs, d.x)
			}
		}
	}
	clear(r.dests)
	clear(r.xs)
}

func containsExchange(xs []*Exchange, x *Exchange) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

const linearDedupMax = 16

func (r *Router) addQueue(q *Queue) {
	if len(r.queues) < linearDedupMax {
		for _, o := range r.queues {
			if o == q {
				return
			}
		}
		r.queues = append(r.queues, q)
		return
	}
	if r.seen == nil {
		r.seen = make(map[*Queue]struct{})
	}
	if len(r.seen) == 0 {
		for _, o := range r.queues {
			r.seen[o] = struct{}{}
		}
	}
	if _, ok := r.seen[q]; ok {
		return
	}
	r.seen[q] = struct{}{}
	r.queues = append(r.queues, q)
}

// CountFor makes the messages published through r count as published by
// connection c (Conn.Stats). Adapters call it once for the router of a
// channel or session.
func (r *Router) CountFor(c *Conn) { r.conn.Store(c) }
