package core

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// This file is the harness of the table-driven feature tests: each row
// declares a queue "q" with its arguments and runs steps against a broker
// whose time is a clock.Fake. Steps act (publish, advance the clock,
// consume, get, ack, nack, cancel) or check what a client would see
// (deliveries in order, the redelivered flag, headers, dead letters, queue
// counts, whether a queue exists). Nothing sleeps: time moves only when a
// step advances the fake clock, and the timers that fall due run in the
// test goroutine, which holds no core lock while it advances.

// tableStart is the fake clock's start. It is a whole second, so x-death's
// time (truncated to the second) is predictable.
var tableStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// collector is a consumer that records its deliveries synchronously.
type collector struct {
	tag string
	s   *Session
	c   *Consumer

	mu        sync.Mutex
	got       []Delivery
	seen      int // deliveries already checked by wantDelivered
	cancelled bool
}

func (c *collector) deliver(d Delivery) {
	c.mu.Lock()
	c.got = append(c.got, d)
	c.mu.Unlock()
}

// unseen returns the deliveries not checked yet and marks them checked.
func (c *collector) unseen() []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.got[c.seen:])
	c.seen = len(c.got)
	return out
}

// held is a delivery awaiting settlement, found by its body.
type held struct {
	s *Session
	d Delivery
}

// env is one row's broker and client state.
type env struct {
	t    *testing.T
	clk  *clock.Fake
	b    *Broker
	v    *Vhost
	conn *Conn
	gets *Session // the session basic.get uses
	subs map[string]*collector
	held map[string]held    // latest delivery of each body, for ack/nack
	last map[string]Message // latest delivered message of each body
	step string
}

func newEnv(t *testing.T) *env {
	clk := clock.NewFake(tableStart)
	b := NewBrokerWith(Options{Clock: clk})
	v, _ := b.Vhost("/")
	conn := v.Open("guest", ConnInfo{})
	t.Cleanup(conn.Close)
	return &env{t: t, clk: clk, b: b, v: v, conn: conn, gets: conn.NewSession(),
		subs: map[string]*collector{}, held: map[string]held{}, last: map[string]Message{}}
}

func (e *env) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf("at %s (+%v): %s", e.step, e.clk.Now().Sub(tableStart), fmt.Sprintf(format, args...))
}

// step is one action or check of a row.
type step struct {
	desc string
	do   func(e *env)
}

// row is one case of a feature table: the arguments of queue "q", whether
// the dead-letter setup (see withDLX) comes first, and the steps.
type row struct {
	name  string
	args  Table
	dlx   bool // declare fanout "dlx" with queue "dlq" consumed by "dead" (no-ack)
	steps []step
}

// runRows runs each row on a fresh broker.
func runRows(t *testing.T, rows []row) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.step = "setup"
			if r.dlx {
				e.declareExchange("dlx", KindFanout)
				e.declareQueue("dlq", nil)
				e.bind("dlq", "dlx", "")
				e.consume("dlq", "dead", 0, true)
			}
			e.declareQueue("q", r.args)
			for i, s := range r.steps {
				e.step = fmt.Sprintf("step %d %s", i+1, s.desc)
				s.do(e)
			}
		})
	}
}

// --- setup ---

func (e *env) declareQueue(name string, args Table) *Queue {
	e.t.Helper()
	q, err := e.v.DeclareQueue(e.conn, name, QueueOptions{Args: args})
	if err != nil {
		e.fatalf("declare queue %s: %v", name, err)
	}
	return q
}

func (e *env) declareExchange(name, kind string) {
	e.t.Helper()
	if _, err := e.v.DeclareExchange(name, kind, ExchangeOptions{}); err != nil {
		e.fatalf("declare exchange %s: %v", name, err)
	}
}

func (e *env) bind(q, x, key string) {
	e.t.Helper()
	if err := e.v.Bind(e.conn, q, x, key, nil); err != nil {
		e.fatalf("bind %s to %s with %q: %v", q, x, key, err)
	}
}

func (e *env) queue(name string) *Queue {
	e.t.Helper()
	q, err := e.v.Queue(e.conn, name)
	if err != nil {
		e.fatalf("queue %s: %v", name, err)
	}
	return q
}

// consume subscribes a new session to q; prefetch 0 is unlimited.
func (e *env) consume(q, tag string, prefetch int, noAck bool) {
	e.t.Helper()
	if _, dup := e.subs[tag]; dup {
		e.fatalf("consumer tag %s used twice in the row", tag)
	}
	c := &collector{tag: tag, s: e.conn.NewSession()}
	if prefetch > 0 {
		c.s.SetPrefetch(prefetch, false)
	}
	e.subs[tag] = c
	cons, err := c.s.Consume(e.queue(q), ConsumeOptions{Tag: tag, NoAck: noAck, Deliver: c.deliver,
		Cancelled: func() { c.mu.Lock(); c.cancelled = true; c.mu.Unlock() }})
	if err != nil {
		e.fatalf("consume %s as %s: %v", q, tag, err)
	}
	c.c = cons
}

func (e *env) sub(tag string) *collector {
	e.t.Helper()
	c, ok := e.subs[tag]
	if !ok {
		e.fatalf("no consumer %s", tag)
	}
	return c
}

// --- steps: setup within a row ---

func declare(name string, args Table) step {
	return step{"declare " + name, func(e *env) { e.declareQueue(name, args) }}
}

func exchange(name, kind string) step {
	return step{"exchange " + name, func(e *env) { e.declareExchange(name, kind) }}
}

func bindQ(q, x, key string) step {
	return step{fmt.Sprintf("bind %s to %s", q, x), func(e *env) { e.bind(q, x, key) }}
}

// --- steps: publishing ---

// msg is a message to publish.
type msg struct {
	body       string
	expiration string // "": none
	prio       uint8
	headers    Table
}

// pub publishes bodies to queue q through the default exchange.
func pub(q string, bodies ...string) step {
	ms := make([]msg, len(bodies))
	for i, b := range bodies {
		ms[i] = msg{body: b}
	}
	return pubx("", q, ms...)
}

// pubm publishes messages with properties to queue q through the default exchange.
func pubm(q string, ms ...msg) step { return pubx("", q, ms...) }

// pubx publishes ms through exchange x with routing key key; every one
// must be routed (enqueued or refused at a length limit).
func pubx(x, key string, ms ...msg) step {
	return pubResult(x, key, nil, ms...)
}

// pubResult publishes like pubx; with want not nil, it checks for each
// message whether a queue took it (true) or refused it at its length limit
// (false), as a publisher in confirm mode sees it as ack or nack.
func pubResult(x, key string, want []bool, ms ...msg) step {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.body
	}
	return step{fmt.Sprintf("publish %v to %s/%s", names, x, key), func(e *env) {
		e.t.Helper()
		var got []bool
		for _, m := range ms {
			props := Properties{Expiration: m.expiration, Priority: m.prio, Headers: m.headers}
			if m.expiration != "" {
				props.Present |= PresentExpiration
			}
			var r Router
			res, err := e.v.Publish(&r, x, &Message{Exchange: x, RoutingKey: key, Props: props, Body: []byte(m.body)}, nil)
			if err != nil {
				e.fatalf("publish %q: %v", m.body, err)
			}
			if res.Queues+res.Rejected == 0 {
				e.fatalf("publish %q: not routed", m.body)
			}
			got = append(got, res.Rejected == 0)
		}
		if want != nil && !slices.Equal(got, want) {
			e.fatalf("accepted %v, want %v", got, want)
		}
	}}
}

// --- steps: time ---

// advance moves the fake clock forward, running the timers due on the way.
func advance(d time.Duration) step {
	return step{"advance " + d.String(), func(e *env) { e.clk.Advance(d) }}
}

// --- steps: consumers and settlement ---

// consume subscribes consumer tag (on its own session) to q with a
// per-consumer prefetch (0: unlimited), acknowledging manually.
func consume(q, tag string, prefetch int) step {
	return step{fmt.Sprintf("consume %s as %s", q, tag), func(e *env) { e.consume(q, tag, prefetch, false) }}
}

// cancel cancels consumer tag; its unacknowledged deliveries stay with its session.
func cancel(tag string) step {
	return step{"cancel " + tag, func(e *env) {
		if !e.sub(tag).s.Cancel(tag) {
			e.fatalf("cancel %s: no such consumer", tag)
		}
	}}
}

// closeSession closes the session of consumer tag, requeueing its unacknowledged deliveries.
func closeSession(tag string) step {
	return step{"close the session of " + tag, func(e *env) { e.sub(tag).s.Close() }}
}

// split tells a wanted body and whether it must be flagged redelivered
// (written with a trailing "!").
func split(want string) (string, bool) {
	if b, ok := strings.CutSuffix(want, "!"); ok {
		return b, true
	}
	return want, false
}

// record remembers a delivery for settlement and header checks.
func (e *env) record(s *Session, d Delivery) {
	e.held[string(d.Msg.Body)] = held{s: s, d: d}
	e.last[string(d.Msg.Body)] = *d.Msg
}

// wantDelivered checks that consumer tag got exactly bodies since the last
// check, in order; a body ending in "!" must be flagged redelivered, the
// others must not.
func wantDelivered(tag string, bodies ...string) step {
	return step{fmt.Sprintf("%s got %v", tag, bodies), func(e *env) {
		e.t.Helper()
		c := e.sub(tag)
		ds := c.unseen()
		got := make([]string, len(ds))
		for i, d := range ds {
			got[i] = string(d.Msg.Body)
			if d.Redelivered {
				got[i] += "!"
			}
			if d.ConsumerTag != tag {
				e.fatalf("delivery %q carries consumer tag %q, want %q", d.Msg.Body, d.ConsumerTag, tag)
			}
			e.record(c.s, d)
		}
		if !slices.Equal(got, bodies) && !(len(got) == 0 && len(bodies) == 0) {
			e.fatalf("%s received %q, want %q (\"!\": redelivered)", tag, got, bodies)
		}
	}}
}

// settle acknowledges or rejects (requeueing or not) the latest delivery of body.
func (e *env) settle(body string, reject, requeue bool) {
	e.t.Helper()
	h, ok := e.held[body]
	if !ok {
		e.fatalf("no delivery of %q to settle", body)
	}
	delete(e.held, body)
	var err error
	if reject {
		err = h.s.Nack(h.d.Tag, false, requeue)
	} else {
		err = h.s.Ack(h.d.Tag, false)
	}
	if err != nil {
		e.fatalf("settle %q: %v", body, err)
	}
}

func ack(body string) step {
	return step{"ack " + body, func(e *env) { e.settle(body, false, false) }}
}

// nack rejects the latest delivery of body, requeueing it or not.
func nack(body string, requeue bool) step {
	return step{fmt.Sprintf("nack %s requeue=%v", body, requeue), func(e *env) { e.settle(body, true, requeue) }}
}

// get is basic.get with manual acknowledgement: want is the body expected
// (with "!" when redelivered), "" for an empty queue.
func get(q, want string) step {
	return step{fmt.Sprintf("get %s = %q", q, want), func(e *env) {
		e.t.Helper()
		d, _, ok, err := e.gets.Get(e.queue(q), false)
		if err != nil {
			e.fatalf("get: %v", err)
		}
		got := ""
		if ok {
			got = string(d.Msg.Body)
			if d.Redelivered {
				got += "!"
			}
			e.record(e.gets, d)
		}
		if got != want {
			e.fatalf("basic.get on %s returned %q, want %q", q, got, want)
		}
	}}
}

// wantDrain takes every ready message of q with basic.get (no-ack) and
// checks their bodies in order.
func wantDrain(q string, bodies ...string) step {
	return step{fmt.Sprintf("drain %s = %v", q, bodies), func(e *env) {
		e.t.Helper()
		var got []string
		for len(got) <= len(bodies) {
			d, _, ok, err := e.gets.Get(e.queue(q), true)
			if err != nil {
				e.fatalf("get: %v", err)
			}
			if !ok {
				break
			}
			b := string(d.Msg.Body)
			if d.Redelivered {
				b += "!"
			}
			got = append(got, b)
			e.last[string(d.Msg.Body)] = *d.Msg
		}
		if !slices.Equal(got, bodies) && !(len(got) == 0 && len(bodies) == 0) {
			e.fatalf("%s held %q, want %q", q, got, bodies)
		}
	}}
}

// --- steps: queue state ---

// wantCounts checks q's ready and unacknowledged messages and its consumers.
func wantCounts(q string, ready, unacked, consumers int) step {
	return step{fmt.Sprintf("%s counts %d/%d/%d", q, ready, unacked, consumers), func(e *env) {
		e.t.Helper()
		qq := e.queue(q)
		r, c := qq.Counts()
		if u := qq.Unacked(); r != ready || u != unacked || c != consumers {
			e.fatalf("%s has %d ready, %d unacked, %d consumers; want %d, %d, %d", q, r, u, c, ready, unacked, consumers)
		}
	}}
}

// wantExists checks whether queue q exists.
func wantExists(q string, exists bool) step {
	return step{fmt.Sprintf("%s exists=%v", q, exists), func(e *env) {
		e.t.Helper()
		_, err := e.v.Queue(e.conn, q)
		if got := err == nil; got != exists {
			e.fatalf("queue %s exists: %v (%v), want %v", q, got, err, exists)
		}
	}}
}

// wantCancelled checks whether the server cancelled consumer tag.
func wantCancelled(tag string, cancelled bool) step {
	return step{fmt.Sprintf("%s cancelled=%v", tag, cancelled), func(e *env) {
		c := e.sub(tag)
		c.mu.Lock()
		got := c.cancelled
		c.mu.Unlock()
		if got != cancelled {
			e.fatalf("consumer %s cancelled: %v, want %v", tag, got, cancelled)
		}
	}}
}

// --- steps: message contents ---

// wantHeader checks a header of the latest delivered message with body;
// want nil means the header must be absent.
func wantHeader(body, key string, want any) step {
	return step{fmt.Sprintf("%s header %s=%v", body, key, want), func(e *env) {
		e.t.Helper()
		m := e.lastMsg(body)
		got, ok := m.Props.Headers[key]
		if want == nil {
			if ok {
				e.fatalf("%q carries %s=%v, want none", body, key, got)
			}
			return
		}
		if !ok || !sameValue(got, want) {
			e.fatalf("%q carries %s=%T(%v) (present %v), want %T(%v)", body, key, got, got, ok, want, want)
		}
	}}
}

// wantMsg checks the latest delivered message with body with fn.
func wantMsg(body string, fn func(m *Message) error) step {
	return step{"check " + body, func(e *env) {
		e.t.Helper()
		m := e.lastMsg(body)
		if err := fn(&m); err != nil {
			e.fatalf("%q: %v", body, err)
		}
	}}
}

func (e *env) lastMsg(body string) Message {
	e.t.Helper()
	m, ok := e.last[body]
	if !ok {
		e.fatalf("no delivery of %q seen", body)
	}
	return m
}

// death is an x-death entry as a client checks it.
type death struct {
	count       int64
	reason      string
	queue       string
	exchange    string
	routingKeys []string
	origExp     string // original-expiration; "": absent
}

// wantDeaths checks the x-death header of the latest delivered message
// with body: its entries in order, each with a time that is a whole second
// of the fake clock between its start and now.
func wantDeaths(body string, want ...death) step {
	return step{fmt.Sprintf("%s x-death %v", body, want), func(e *env) {
		e.t.Helper()
		m := e.lastMsg(body)
		raw, ok := m.Props.Headers["x-death"].([]any)
		if !ok {
			e.fatalf("%q has no x-death array (headers %v)", body, m.Props.Headers)
		}
		if len(raw) != len(want) {
			e.fatalf("%q has %d x-death entries %v, want %d", body, len(raw), raw, len(want))
		}
		for i, w := range want {
			d := asTable(raw[i])
			keys := make([]any, len(w.routingKeys))
			for j, k := range w.routingKeys {
				keys[j] = k
			}
			if !sameValue(d["count"], w.count) || d["reason"] != w.reason || d["queue"] != w.queue ||
				d["exchange"] != w.exchange || !sameValue(d["routing-keys"], keys) {
				e.fatalf("%q x-death[%d] = %v, want %+v", body, i, d, w)
			}
			if oe, has := d["original-expiration"]; (w.origExp == "") == has || (has && oe != w.origExp) {
				e.fatalf("%q x-death[%d] original-expiration %v (present %v), want %q", body, i, oe, has, w.origExp)
			}
			tm, ok := d["time"].(time.Time)
			if !ok || tm.Before(tableStart) || tm.After(e.clk.Now()) || !tm.Equal(tm.Truncate(time.Second)) {
				e.fatalf("%q x-death[%d] time %v, want a whole second of the fake clock in [%v, %v]", body, i, d["time"], tableStart, e.clk.Now())
			}
		}
	}}
}

// wantDeathSummary checks x-first-death-* and x-last-death-* of the latest
// delivery of body: reason, queue, exchange each.
func wantDeathSummary(body string, first, last [3]string) step {
	return step{fmt.Sprintf("%s first death %v last %v", body, first, last), func(e *env) {
		e.t.Helper()
		h := e.lastMsg(body).Props.Headers
		got := func(which string) [3]string {
			s := func(k string) string { v, _ := h["x-"+which+"-death-"+k].(string); return v }
			return [3]string{s("reason"), s("queue"), s("exchange")}
		}
		if f, l := got("first"), got("last"); f != first || l != last {
			e.fatalf("%q first death %v, last %v; want %v, %v", body, f, l, first, last)
		}
	}}
}

// do runs a custom check or action.
func do(desc string, fn func(e *env)) step { return step{desc, fn} }
