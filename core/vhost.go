package core

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/unifiedms/ums/core/route"
)

// Vhost is a virtual host: an isolated namespace of exchanges and queues.
type Vhost struct {
	Name   string
	broker *Broker

	// defMu serializes changes of definitions (declaring and deleting
	// exchanges and queues, binding and unbinding) with the writes that make
	// them durable. It is held across the definition store's fsync, so it is
	// never taken on the message path: a change is checked under mu's read
	// lock, written to the store under defMu alone, and only then made
	// visible under mu (reserve, write, then publish the change).
	defMu sync.Mutex
	later [][]string // records to delete after mu is released; REQUIRES: defMu
	// laterRelease are scheduled messages of deleted exchanges, released
	// from the message store after mu is released; REQUIRES: defMu
	laterRelease []uint64

	mu        sync.RWMutex
	exchanges map[string]*Exchange
	queues    map[string]*Queue
	// xindex and qindex mirror exchanges and queues (written under mu with
	// them) for the message path, which looks names up without a lock.
	xindex sync.Map // name -> *Exchange
	qindex sync.Map // name -> *Queue

	replyMu sync.RWMutex
	replies map[string]*Session // direct reply-to addresses
}

func newVhost(b *Broker, name string) *Vhost {
	v := &Vhost{Name: name, broker: b, exchanges: make(map[string]*Exchange), queues: make(map[string]*Queue), replies: make(map[string]*Session)}
	durable := ExchangeOptions{Durable: true}
	v.putExchangeLocked(newExchange(v, "", KindDirect, durable))
	for _, x := range []struct{ name, kind string }{
		{"amq.direct", KindDirect}, {"amq.fanout", KindFanout}, {"amq.topic", KindTopic},
		{"amq.headers", KindHeaders}, {"amq.match", KindHeaders},
	} {
		v.putExchangeLocked(newExchange(v, x.name, x.kind, durable))
	}
	return v
}

// putExchangeLocked adds x. REQUIRES: v.mu held for writing.
func (v *Vhost) putExchangeLocked(x *Exchange) {
	v.exchanges[x.Name] = x
	v.xindex.Store(x.Name, x)
}

// dropExchangeLocked removes x. REQUIRES: v.mu held for writing.
func (v *Vhost) dropExchangeLocked(x *Exchange) {
	delete(v.exchanges, x.Name)
	v.xindex.CompareAndDelete(x.Name, x)
}

// putQueueLocked adds q. REQUIRES: v.mu held for writing.
func (v *Vhost) putQueueLocked(q *Queue) {
	v.queues[q.Name] = q
	v.qindex.Store(q.Name, q)
}

// dropQueueLocked removes q. REQUIRES: v.mu held for writing.
func (v *Vhost) dropQueueLocked(q *Queue) {
	delete(v.queues, q.Name)
	v.qindex.CompareAndDelete(q.Name, q)
}

// lookupExchange returns the named exchange or nil, without a lock (the
// message path uses it).
func (v *Vhost) lookupExchange(name string) *Exchange {
	if x, ok := v.xindex.Load(name); ok {
		return x.(*Exchange)
	}
	return nil
}

// queue returns the named queue unless it is internal: by name, clients
// reach only the queues they may see.
func (v *Vhost) queue(name string) *Queue {
	q := v.anyQueue(name)
	if q != nil && q.Internal {
		return nil
	}
	return q
}

// anyQueue returns the named queue, internal ones included.
func (v *Vhost) anyQueue(name string) *Queue {
	if q, ok := v.qindex.Load(name); ok {
		return q.(*Queue)
	}
	return nil
}

// InternalQueue returns the named internal queue (see
// QueueOptions.Internal), for the adapter that owns it.
func (v *Vhost) InternalQueue(name string) (*Queue, error) {
	q := v.anyQueue(name)
	if q == nil || !q.Internal {
		return nil, v.noQueue(name)
	}
	return q, nil
}

// Exchange returns the named exchange.
func (v *Vhost) Exchange(name string) (*Exchange, error) {
	x := v.lookupExchange(name)
	if x == nil {
		return nil, v.noExchange(name)
	}
	return x, nil
}

// HasQueue reports whether the vhost has a queue named name that clients
// can see (Queue finds it, unless an exclusive owner forbids). It builds
// no error, for callers that mostly find nothing (an MQTT clean session
// looking for its predecessor's queue at every connect).
func (v *Vhost) HasQueue(name string) bool { return v.queue(name) != nil }

// Queue returns the named queue, checking exclusive ownership against owner.
func (v *Vhost) Queue(owner *Conn, name string) (*Queue, error) {
	q := v.queue(name)
	if q == nil {
		return nil, v.noQueue(name)
	}
	if err := q.checkOwner(owner); err != nil {
		return nil, err
	}
	return q, nil
}

// Exchanges lists the exchanges sorted by name.
func (v *Vhost) Exchanges() []*Exchange {
	v.mu.RLock()
	out := make([]*Exchange, 0, len(v.exchanges))
	for _, x := range v.exchanges {
		out = append(out, x)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Queues lists the queues sorted by name, internal ones left out.
func (v *Vhost) Queues() []*Queue {
	v.mu.RLock()
	out := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		if !q.Internal {
			out = append(out, q)
		}
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (v *Vhost) noExchange(name string) error {
	return errorf(ErrNotFound, "no exchange '%s' in vhost '%s'", name, v.Name)
}

func (v *Vhost) noQueue(name string) error {
	return errorf(ErrNotFound, "no queue '%s' in vhost '%s'", name, v.Name)
}

func (v *Vhost) defaultExchangeErr() error {
	return errorf(ErrAccessRefused, "operation not permitted on the default exchange")
}

func reservedName(kind, name string) error {
	return errorf(ErrAccessRefused, "%s name '%s' contains reserved prefix 'amq.*'", kind, name)
}

// DeclareExchange creates an exchange or checks that the existing one is equivalent.
func (v *Vhost) DeclareExchange(name, kind string, opts ExchangeOptions) (*Exchange, error) {
	if name == "" {
		return nil, v.defaultExchangeErr()
	}
	if !ValidKind(kind) {
		return nil, errorf(ErrCommandInvalid, "unknown exchange type '%s'", kind)
	}
	v.defMu.Lock()
	defer v.defMu.Unlock()
	v.mu.RLock()
	x, ok := v.exchanges[name]
	v.mu.RUnlock()
	if ok {
		return x, x.equivalent(kind, opts)
	}
	if strings.HasPrefix(name, "amq.") {
		return nil, reservedName("exchange", name)
	}
	if ae, ok := opts.Args["alternate-exchange"]; ok {
		if _, isStr := ae.(string); !isStr {
			return nil, errorf(ErrPreconditionFailed, "invalid arg 'alternate-exchange' for exchange '%s' in vhost '%s': expected a string", name, v.Name)
		}
	}
	if kind == KindDelayed {
		if _, err := delayedType(v.Name, name, opts.Args); err != nil {
			return nil, err
		}
	}
	x = newExchange(v, name, kind, opts)
	if err := v.persistExchange(x); err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.putExchangeLocked(x)
	v.mu.Unlock()
	return x, nil
}

func (x *Exchange) equivalent(kind string, o ExchangeOptions) error {
	ineq := func(arg string, got, cur any) error {
		return errorf(ErrPreconditionFailed, "inequivalent arg '%s' for exchange '%s' in vhost '%s': received '%v' but current is '%v'",
			arg, x.Name, x.vhost.Name, got, cur)
	}
	switch {
	case kind != x.Kind:
		return ineq("type", kind, x.Kind)
	case o.Durable != x.Durable:
		return ineq("durable", o.Durable, x.Durable)
	case o.AutoDelete != x.AutoDelete:
		return ineq("auto_delete", o.AutoDelete, x.AutoDelete)
	case o.Internal != x.Internal:
		return ineq("internal", o.Internal, x.Internal)
	}
	if a, b := o.Args["alternate-exchange"], x.Args["alternate-exchange"]; !reflect.DeepEqual(a, b) {
		return ineq("alternate-exchange", a, b)
	}
	if x.delayed {
		if a, b := o.Args[ArgDelayedType], x.Args[ArgDelayedType]; !reflect.DeepEqual(a, b) {
			return ineq(ArgDelayedType, a, b)
		}
	}
	return nil
}

// DeleteExchange deletes an exchange and its bindings. Deleting an exchange
// that does not exist succeeds, as in RabbitMQ.
func (v *Vhost) DeleteExchange(name string, ifUnused bool) error {
	if name == "" || strings.HasPrefix(name, "amq.") {
		if name == "" {
			return v.defaultExchangeErr()
		}
		return errorf(ErrAccessRefused, "deletion of system exchange '%s' in vhost '%s' not allowed", name, v.Name)
	}
	v.defMu.Lock()
	defer v.defMu.Unlock()
	v.mu.RLock()
	x, ok := v.exchanges[name]
	inUse := ok && len(x.bindings) > 0
	v.mu.RUnlock()
	if !ok {
		return nil
	}
	if ifUnused && inUse {
		return errorf(ErrPreconditionFailed, "exchange '%s' in vhost '%s' in use", name, v.Name)
	}
	if err := v.unpersistExchange(x); err != nil {
		return err
	}
	v.mu.Lock()
	v.deleteExchangeLocked(x, false)
	v.mu.Unlock()
	v.flushLater()
	return nil
}

// deleteExchangeLocked removes x with every binding from and to it; the
// records of those (and of x when record is set) are deleted by
// flushLater. REQUIRES: v.defMu, v.mu held for writing.
func (v *Vhost) deleteExchangeLocked(x *Exchange, record bool) {
	if !x.deleted.CompareAndSwap(false, true) {
		return
	}
	v.dropExchangeLocked(x)
	v.laterDelete(record && x.Durable, "x", v.Name, x.Name)
	if s := x.sched.Load(); s != nil {
		v.laterRelease = append(v.laterRelease, s.close()...)
	}
	for _, b := range x.bindings {
		v.unbindLocked(b, true)
	}
	for _, other := range v.exchanges {
		for _, b := range other.bindings {
			if b.dst.x == x {
				v.unbindLocked(b, true)
			}
		}
	}
}

// QueueOptions are the attributes of a queue declaration.
type QueueOptions struct {
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       Table
	// Internal queues hold a protocol adapter's own state. Clients cannot
	// reach them by name (Queue, Purge, DeleteQueue, Bind and the default
	// exchange's routing treat them as absent) nor see them in Queues;
	// their adapter uses InternalQueue, PublishInternal and
	// DeleteInternalQueue. A name is either internal or not: declaring
	// it the other way is refused.
	Internal bool
	// ReportBindings makes every delivery from the queue say which of the
	// queue's binding keys match the message's routing key, as topic
	// patterns (Delivery.Bindings): a consumer-side filter kept by the
	// core, so an adapter that binds one queue for many subscriptions
	// (MQTT) keeps no routing table of its own.
	ReportBindings bool
	// HoldPublishers extends publisher flow control (see flowLocked) to a
	// queue that drops its oldest messages at its length limit
	// (x-overflow drop-head): while a consumer drains it, its publishers
	// are slowed down from nine tenths of the limit, so a live but slower
	// consumer loses nothing to a fast publisher, and the oldest are
	// dropped only once a publisher's bounded wait ran out. MQTT's QoS 0
	// queues use it (Mosquitto and RabbitMQ do not drop QoS 0 messages for
	// a connected subscriber either). Only for non-durable queues; it is
	// not stored.
	HoldPublishers bool
}

// DeclareQueue creates a queue or checks the existing one. An empty name gets
// a server-generated amq.gen-… name. owner is the declaring connection
// (the owner of an exclusive queue).
func (v *Vhost) DeclareQueue(owner *Conn, name string, opts QueueOptions) (*Queue, error) {
	if name == "" {
		name = randomName("amq.gen-")
	} else if strings.HasPrefix(name, "amq.") {
		return nil, reservedName("queue", name)
	}
	qa, err := parseQueueArgs(v, name, opts.Args)
	if err != nil {
		return nil, err
	}
	if opts.Exclusive && owner == nil {
		return nil, errorf(ErrPreconditionFailed, "exclusive queue '%s' needs an owning connection", name)
	}
	v.defMu.Lock()
	v.mu.RLock()
	q, ok := v.queues[name]
	v.mu.RUnlock()
	if ok {
		v.defMu.Unlock()
		if q.Internal != opts.Internal {
			return nil, errorf(ErrAccessRefused, "queue name '%s' in vhost '%s' is reserved", name, v.Name)
		}
		if err := q.checkOwner(owner); err != nil {
			return nil, err
		}
		if err := q.equivalent(owner, opts); err != nil {
			return nil, err
		}
		q.touch()
		return q, nil
	}
	defer v.defMu.Unlock()
	q = newQueue(v, name, opts, qa)
	if err := v.persistQueue(q); err != nil {
		return nil, err
	}
	if opts.Exclusive {
		q.owner = owner
		if !owner.addExclusive(q) {
			return nil, errorf(ErrClosed, "connection closed")
		}
	}
	q.startTimers()
	v.mu.Lock()
	v.putQueueLocked(q)
	v.mu.Unlock()
	return q, nil
}

// knownQueueArgs are the arguments compared when a queue is re-declared.
var knownQueueArgs = []string{
	"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
	"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-priority",
	"x-queue-type", "x-single-active-consumer", "x-delivery-limit", "x-queue-mode",
}

func (q *Queue) equivalent(owner *Conn, o QueueOptions) error {
	ineq := func(arg string, got, cur any) error {
		return errorf(ErrPreconditionFailed, "inequivalent arg '%s' for queue '%s' in vhost '%s': received '%v' but current is '%v'",
			arg, q.Name, q.vhost.Name, got, cur)
	}
	if o.Exclusive != q.Exclusive {
		return q.lockedErr()
	}
	if o.Durable != q.Durable {
		return ineq("durable", o.Durable, q.Durable)
	}
	if o.AutoDelete != q.AutoDelete {
		return ineq("auto_delete", o.AutoDelete, q.AutoDelete)
	}
	for _, k := range knownQueueArgs {
		a, aok := o.Args[k]
		b, bok := q.Args[k]
		if k == "x-queue-type" && (!aok || !bok) {
			continue // "classic" is the default either way
		}
		if !aok && !bok {
			continue
		}
		if aok != bok || !sameValue(a, b) {
			if !bok {
				return errorf(ErrPreconditionFailed, "inequivalent arg '%s' for queue '%s' in vhost '%s': received the value '%v' of type '%s' but current is none",
					k, q.Name, q.vhost.Name, a, typeName(a))
			}
			return ineq(k, a, b)
		}
	}
	return nil
}

// sameValue compares argument values, treating integers of any width as equal
// when their values are.
func sameValue(a, b any) bool {
	ai, aok := toInt64(a)
	bi, bok := toInt64(b)
	if aok && bok {
		return ai == bi
	}
	return reflect.DeepEqual(a, b)
}

// IntValue returns a table value of any integer type as an int64; ok is
// false for other types and for unsigned values that do not fit.
func IntValue(v any) (int64, bool) { return toInt64(v) }

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "longstr"
	case bool:
		return "bool"
	case nil:
		return "void"
	}
	if _, ok := toInt64(v); ok {
		return "long"
	}
	return fmt.Sprintf("%T", v)
}

// DeleteQueue deletes a queue and returns the number of messages it held.
// Deleting a queue that does not exist succeeds with 0, as in RabbitMQ.
func (v *Vhost) DeleteQueue(owner *Conn, name string, ifUnused, ifEmpty bool) (int, error) {
	q := v.queue(name)
	if q == nil {
		return 0, nil
	}
	if err := q.checkOwner(owner); err != nil {
		return 0, err
	}
	return v.deleteQueue(q, func(q *Queue) error {
		if ifUnused && len(q.consumers) > 0 {
			return errorf(ErrPreconditionFailed, "queue '%s' in vhost '%s' in use", q.Name, v.Name)
		}
		if ifEmpty && q.readyCount+q.unacked > 0 {
			return errorf(ErrPreconditionFailed, "queue '%s' in vhost '%s' not empty", q.Name, v.Name)
		}
		return nil
	})
}

// DeleteInternalQueue deletes an internal queue (see QueueOptions.Internal)
// and returns the number of messages it held; one that does not exist
// succeeds with 0.
func (v *Vhost) DeleteInternalQueue(name string) (int, error) {
	q := v.anyQueue(name)
	if q == nil || !q.Internal {
		return 0, nil // no error to build: most calls find nothing
	}
	return v.deleteQueue(q, nil)
}

// deleteQueue removes q if check (run under q.mu) allows it, cancels its
// consumers and drops its bindings. A durable queue's record is deleted
// first: when that fails, the queue stays as it was.
func (v *Vhost) deleteQueue(q *Queue, check func(*Queue) error) (int, error) {
	v.defMu.Lock()
	n, consumers, err := v.deleteQueueDef(q, check)
	v.defMu.Unlock()
	if err != nil {
		return 0, err
	}
	// Callbacks run without any core lock: they may call back into the core.
	if q.owner != nil {
		q.owner.removeExclusive(q)
	}
	for _, c := range consumers {
		c.session.dropConsumer(c)
		if c.cancelled != nil {
			c.cancelled()
		}
	}
	return n, nil
}

// deleteQueueDef is deleteQueue's part under v.defMu: it returns the
// consumers to cancel. REQUIRES: v.defMu.
func (v *Vhost) deleteQueueDef(q *Queue, check func(*Queue) error) (int, []*Consumer, error) {
	q.mu.Lock()
	deleted := q.deleted
	var err error
	if !deleted && check != nil {
		err = check(q)
	}
	q.mu.Unlock()
	if deleted || err != nil {
		return 0, nil, err
	}
	stored := v.anyQueue(q.Name) == q
	if stored {
		if err := v.unpersistQueue(q); err != nil {
			return 0, nil, err
		}
	}
	v.mu.Lock()
	q.mu.Lock()
	if check != nil {
		// Consumers or messages may have come while the record was being
		// deleted: then the queue stays, and so must its record.
		if err := check(q); err != nil {
			q.mu.Unlock()
			v.mu.Unlock()
			if stored {
				if perr := v.persistQueue(q); perr != nil {
					return 0, nil, perr
				}
			}
			return 0, nil, err
		}
	}
	q.deleted = true
	q.stopTimersLocked()
	n := q.clearLocked()
	consumers := q.consumers
	q.consumers = nil
	q.mu.Unlock()
	if v.queues[q.Name] == q {
		v.dropQueueLocked(q)
	}
	for _, b := range q.bindings {
		v.unbindLocked(b, true)
	}
	q.bindings = nil
	v.mu.Unlock()
	v.flushLater()
	return n, consumers, nil
}

// Bind binds queue to exchange with key and args.
func (v *Vhost) Bind(owner *Conn, queue, exchange, key string, args Table) error {
	return v.bind(owner, queue, false, exchange, key, args, true)
}

// BindExchange binds exchange dst to exchange src.
func (v *Vhost) BindExchange(dst, src, key string, args Table) error {
	return v.bind(nil, dst, true, src, key, args, true)
}

// Unbind removes a queue binding. Removing a binding that does not exist succeeds.
func (v *Vhost) Unbind(owner *Conn, queue, exchange, key string, args Table) error {
	return v.unbind(owner, queue, false, exchange, key, args)
}

// UnbindExchange removes an exchange-to-exchange binding.
func (v *Vhost) UnbindExchange(dst, src, key string, args Table) error {
	return v.unbind(nil, dst, true, src, key, args)
}

func (v *Vhost) resolveBinding(owner *Conn, dstName string, dstIsExchange bool, srcName string) (*Exchange, dest, error) {
	if srcName == "" || (dstIsExchange && dstName == "") {
		return nil, dest{}, v.defaultExchangeErr()
	}
	src := v.exchanges[srcName]
	var d dest
	if dstIsExchange {
		d.x = v.exchanges[dstName]
		if d.x == nil {
			return nil, d, v.noExchange(dstName)
		}
	} else {
		d.q = v.queues[dstName]
		if d.q != nil && d.q.Internal {
			d.q = nil
		}
		if d.q == nil {
			return nil, d, v.noQueue(dstName)
		}
		if err := d.q.checkOwner(owner); err != nil {
			return nil, d, err
		}
	}
	if src == nil {
		return nil, d, v.noExchange(srcName)
	}
	return src, d, nil
}

// bind adds a binding; store is false when recovery restores a stored one.
func (v *Vhost) bind(owner *Conn, dstName string, dstIsExchange bool, srcName, key string, args Table, store bool) error {
	v.defMu.Lock()
	defer v.defMu.Unlock()
	v.mu.RLock()
	src, d, err := v.resolveBinding(owner, dstName, dstIsExchange, srcName)
	id := argsID(args)
	bk := bindingKey{d, key, id}
	exists := false
	if err == nil {
		_, exists = src.bindings[bk]
	}
	v.mu.RUnlock()
	if err != nil {
		return err
	}
	if src.rkind == KindHeaders {
		if err := route.ValidateHeadersArgs(args); err != nil {
			return errorf(ErrPreconditionFailed, "%v", err)
		}
	}
	if exists {
		return nil
	}
	// Under defMu neither end can go away, nor can the binding appear.
	b := &binding{src: src, dst: d, key: key, args: args, id: id}
	if store {
		if err := v.persistBinding(b); err != nil {
			return err
		}
	}
	v.mu.Lock()
	src.bindings[bk] = b
	if d.q != nil {
		d.q.bindings = append(d.q.bindings, b)
		d.q.addBindKey(key)
	}
	src.addMatch(b)
	v.mu.Unlock()
	return nil
}

func (v *Vhost) unbind(owner *Conn, dstName string, dstIsExchange bool, srcName, key string, args Table) error {
	v.defMu.Lock()
	defer v.defMu.Unlock()
	v.mu.RLock()
	src, d, err := v.resolveBinding(owner, dstName, dstIsExchange, srcName)
	var b *binding
	if err == nil {
		b = src.bindings[bindingKey{d, key, argsID(args)}]
	}
	v.mu.RUnlock()
	if err != nil || b == nil {
		return err
	}
	if err := v.unpersistBinding(b); err != nil {
		return err
	}
	v.mu.Lock()
	v.unbindLocked(b, false)
	v.mu.Unlock()
	v.flushLater()
	return nil
}

// unbindLocked removes b; an auto-delete source exchange left without
// bindings is deleted. The records of b (when record is set) and of such
// an exchange are deleted by flushLater. REQUIRES: v.defMu, v.mu held for
// writing.
func (v *Vhost) unbindLocked(b *binding, record bool) {
	src := b.src
	bk := bindingKey{b.dst, b.key, b.id}
	if src.bindings[bk] != b {
		return
	}
	delete(src.bindings, bk)
	src.removeMatch(b)
	if record && b.durable() {
		v.laterDelete(true, b.metaParts(v)...)
	}
	if q := b.dst.q; q != nil {
		q.removeBindKey(b.key)
		for i, qb := range q.bindings {
			if qb == b {
				q.bindings = append(q.bindings[:i:i], q.bindings[i+1:]...)
				break
			}
		}
	}
	if src.AutoDelete && len(src.bindings) == 0 && !src.deleted.Load() {
		v.deleteExchangeLocked(src, true)
	}
}

// Bindings lists every binding of the vhost, including the default
// exchange's implicit ones, except those of internal queues.
func (v *Vhost) Bindings() []Binding {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Binding
	for _, q := range v.queues {
		if !q.Internal {
			out = append(out, Binding{Source: "", Destination: q.Name, DestinationKind: "queue", RoutingKey: q.Name})
		}
	}
	for _, x := range v.exchanges {
		for _, b := range x.bindings {
			if b.dst.q != nil && b.dst.q.Internal {
				continue // internal queues are not shown
			}
			kind := "queue"
			if b.dst.x != nil {
				kind = "exchange"
			}
			out = append(out, Binding{Source: x.Name, Destination: b.dst.name(), DestinationKind: kind, RoutingKey: b.key, Arguments: b.args})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		return a.RoutingKey < b.RoutingKey
	})
	return out
}

// PublishResult tells where a published message went.
type PublishResult struct {
	// Queues is the number of queues the message was enqueued on.
	Queues int
	// Rejected is the number of queues that refused it at their length
	// limit (x-overflow reject-publish): publishers with confirms get a nack.
	Rejected int
	// Stored is true when the message went to the message store; done
	// will be called when it is durable.
	Stored bool
	// Flow, when not nil, is closed once the nearly full queues among the
	// targets have room again: a publisher that can should wait for it
	// before publishing more (see Queue flow control in queue.go).
	Flow <-chan struct{}
	// Full is the nearly full queue Flow belongs to.
	Full *Queue
	// Scheduled, for a message held to be routed later (an x-delay on an
	// x-delayed-message exchange, or Schedule), is the number of queues it
	// would reach if it were routed now: a mandatory publish is returned
	// when Queues, Rejected and Scheduled are all 0, and is then not held
	// (see Router.Mandatory).
	Scheduled int
}

// Publish routes msg through the named exchange and enqueues it on every
// queue it reaches. The message must not be modified afterwards. See
// PublishTo for done.
func (v *Vhost) Publish(r *Router, exchange string, msg *Message, done func(error)) (PublishResult, error) {
	x := v.lookupExchange(exchange)
	if x == nil {
		return PublishResult{}, v.noExchange(exchange)
	}
	return v.PublishTo(r, x, msg, done)
}

// PublishTo is Publish with an exchange the caller already resolved. When
// the message is persistent and reaches a durable queue, it is written to
// the message store: PublishResult.Stored is true and done (when not nil)
// is called once, from another goroutine, after the message is durable or
// with the storage error. Otherwise done is not called.
func (v *Vhost) PublishTo(r *Router, x *Exchange, msg *Message, done func(error)) (PublishResult, error) {
	if x.deleted.Load() {
		return PublishResult{}, v.noExchange(x.Name)
	}
	if x.Internal {
		return PublishResult{}, errorf(ErrAccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", x.Name, v.Name)
	}
	if err := ValidateMessage(msg); err != nil {
		return PublishResult{}, err
	}
	v.broker.stats.received.Add(1)
	if c := r.conn.Load(); c != nil {
		c.published.Add(1)
	}
	if isReplyAddress(x.Name, msg.RoutingKey) {
		if v.publishReply(msg) {
			return PublishResult{Queues: 1}, nil
		}
		return PublishResult{}, nil
	}
	if x.delayed {
		return v.publishDelayed(r, x, msg, done), nil
	}
	qs := r.route(x, msg)
	if len(qs) == 0 {
		return PublishResult{}, nil
	}
	res := v.deliverTo(r, qs, msg, v.broker.clock.Now(), done)
	clear(qs)
	return res, nil
}

// PublishInternal puts msg on the internal queue q (see
// QueueOptions.Internal), with PublishTo's durability and done.
func (v *Vhost) PublishInternal(q *Queue, msg *Message, done func(error)) (PublishResult, error) {
	if !q.Internal || q.vhost != v {
		return PublishResult{}, errorf(ErrAccessRefused, "queue '%s' is not an internal queue of vhost '%s'", q.Name, v.Name)
	}
	if q.Deleted() {
		return PublishResult{}, v.noQueue(q.Name)
	}
	if err := ValidateMessage(msg); err != nil {
		return PublishResult{}, err
	}
	var r Router
	return v.deliverTo(&r, []*Queue{q}, msg, v.broker.clock.Now(), done), nil
}

func noopDone(error) {}

// deliverTo stores msg when it must survive a restart and enqueues it on qs.
func (v *Vhost) deliverTo(r *Router, qs []*Queue, msg *Message, now time.Time, done func(error)) PublishResult {
	var res PublishResult
	store := v.broker.msgs
	r.durable = r.durable[:0]
	if store != nil && msg.Persistent() {
		for _, q := range qs {
			if q.persistent() {
				r.durable = append(r.durable, q.Name)
			}
		}
	}
	var id uint64
	if len(r.durable) > 0 {
		if done == nil {
			done = noopDone
		}
		id = store.Append(encodeRecord(v.Name, msg, r.durable), len(r.durable), done)
		res.Stored = true
	}
	part := 0
	for _, q := range qs {
		p := -1
		if len(r.durable) > 0 && q.persistent() {
			p = part
			part++
		}
		r, flow := q.enqueue(msg, now, id, p)
		if flow != nil && res.Flow == nil {
			res.Flow, res.Full = flow, q
		}
		switch r {
		case enqueued:
			res.Queues++
		case rejected:
			res.Rejected++
			if p >= 0 {
				store.Release(id, p)
			}
		default:
			if p >= 0 {
				store.Release(id, p)
			}
		}
	}
	clear(r.durable)
	return res
}
