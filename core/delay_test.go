package core

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
)

var delayEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sink collects the bodies delivered to no-ack consumers, and when.
type sink struct {
	mu  sync.Mutex
	got []string
	at  []time.Time
	clk clock.Clock
}

func (s *sink) deliver(d Delivery) {
	s.mu.Lock()
	s.got = append(s.got, string(d.Msg.Body))
	s.at = append(s.at, s.clk.Now())
	s.mu.Unlock()
}

func (s *sink) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// consume attaches a no-ack consumer to a new queue bound to x with key
// and args.
func consumeDelayed(t *testing.T, v *Vhost, conn *Conn, queue, x, key string, args Table, clk clock.Clock) *sink {
	t.Helper()
	q, err := v.DeclareQueue(conn, queue, QueueOptions{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	if x != "" {
		if err := v.Bind(conn, queue, x, key, args); err != nil {
			t.Fatal(err)
		}
	}
	s := &sink{clk: clk}
	if _, err := conn.NewSession().Consume(q, ConsumeOptions{NoAck: true, Deliver: s.deliver}); err != nil {
		t.Fatal(err)
	}
	return s
}

func delayedMsg(x, key, body string, delayMS int64, headers Table) *Message {
	h := Table{HeaderDelay: delayMS}
	for k, val := range headers {
		h[k] = val
	}
	return &Message{Exchange: x, RoutingKey: key, Body: []byte(body), Props: Properties{Headers: h}}
}

func publish(t *testing.T, v *Vhost, m *Message) PublishResult {
	t.Helper()
	var r Router
	res, err := v.Publish(&r, m.Exchange, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fakeBroker() (*Broker, *Vhost, *clock.Fake) {
	clk := clock.NewFake(delayEpoch)
	b := NewBrokerWith(Options{Clock: clk})
	v, _ := b.Vhost("/")
	return b, v, clk
}

func wantBodies(t *testing.T, s *sink, want ...string) {
	t.Helper()
	if got := s.bodies(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}

// x-delayed-type is required and must name a routing type, as the plugin
// answers; re-declaring with another one is refused.
func TestDelayedDeclareArgs(t *testing.T) {
	_, v, _ := fakeBroker()
	for _, args := range []Table{nil, {ArgDelayedType: "nope"}, {ArgDelayedType: int64(1)}, {ArgDelayedType: KindDelayed}} {
		if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: args}); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("args %v: %v, want precondition failed", args, err)
		}
	}
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "direct"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "topic"}}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("re-declared with another x-delayed-type: %v", err)
	}
}

// Each x-delayed-type routes by its own rules when the delay is over, and
// not before.
func TestDelayedRoutingTypes(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		bindKey  string
		bindArgs Table
		key      string
		headers  Table
		missKey  string
		missHdr  Table
	}{
		{kind: KindDirect, bindKey: "k", key: "k", missKey: "other"},
		{kind: KindTopic, bindKey: "a.*.c", key: "a.b.c", missKey: "a.b"},
		{kind: KindFanout, bindKey: "", key: "anything"},
		{kind: KindHeaders, bindArgs: Table{"x-match": "all", "h": "v"}, key: "k", headers: Table{"h": "v"}, missHdr: Table{"h": "w"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			_, v, clk := fakeBroker()
			if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: tc.kind}}); err != nil {
				t.Fatal(err)
			}
			conn := v.Open("t", ConnInfo{})
			s := consumeDelayed(t, v, conn, "q", "d", tc.bindKey, tc.bindArgs, clk)
			publish(t, v, delayedMsg("d", tc.key, "hit", 1000, tc.headers))
			if tc.kind != KindFanout {
				publish(t, v, delayedMsg("d", tc.missKey, "miss", 1000, tc.missHdr))
			}
			clk.Advance(999 * time.Millisecond)
			wantBodies(t, s)
			clk.Advance(time.Millisecond)
			wantBodies(t, s, "hit")
			if n := v.lookupExchange("d").DelayedCount(); n != 0 {
				t.Fatalf("%d still delayed", n)
			}
		})
	}
}

// Messages come out in due order, each at its due time; without x-delay
// (or x-delay <= 0) a message is routed at once.
func TestDelayedDueOrder(t *testing.T) {
	_, v, clk := fakeBroker()
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "direct"}}); err != nil {
		t.Fatal(err)
	}
	conn := v.Open("t", ConnInfo{})
	s := consumeDelayed(t, v, conn, "q", "d", "k", nil, clk)
	for _, d := range []int64{300, 100, 200, 100, 50} {
		publish(t, v, delayedMsg("d", "k", fmt.Sprint(d, "-", len(s.bodies())), d, nil))
	}
	publish(t, v, delayedMsg("d", "k", "now", 0, nil))
	publish(t, v, &Message{Exchange: "d", RoutingKey: "k", Body: []byte("plain")})
	wantBodies(t, s, "now", "plain")
	if n := v.lookupExchange("d").DelayedCount(); n != 5 {
		t.Fatalf("DelayedCount %d, want 5", n)
	}
	clk.Advance(time.Second)
	wantBodies(t, s, "now", "plain", "50-0", "100-0", "100-0", "200-0", "300-0")
	s.mu.Lock()
	for i, want := range []time.Duration{50, 100, 100, 200, 300} {
		if got := s.at[i+2].Sub(delayEpoch); got != want*time.Millisecond {
			t.Errorf("message %d released at +%v, want +%v", i, got, want*time.Millisecond)
		}
	}
	s.mu.Unlock()
}

// Routing happens by the bindings at due time: a message that matches
// nothing then goes to the alternate exchange; one whose binding appeared
// meanwhile reaches it.
func TestDelayedAlternateExchange(t *testing.T) {
	_, v, clk := fakeBroker()
	if _, err := v.DeclareExchange("ae", KindFanout, ExchangeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "direct", "alternate-exchange": "ae"}}); err != nil {
		t.Fatal(err)
	}
	conn := v.Open("t", ConnInfo{})
	unrouted := consumeDelayed(t, v, conn, "unrouted", "ae", "", nil, clk)
	main := consumeDelayed(t, v, conn, "main", "d", "k", nil, clk)
	publish(t, v, delayedMsg("d", "k", "bound-then-unbound", 100, nil))
	publish(t, v, delayedMsg("d", "late", "bound-later", 100, nil))
	if err := v.Unbind(conn, "main", "d", "k", nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(conn, "main", "d", "late", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(100 * time.Millisecond)
	wantBodies(t, unrouted, "bound-then-unbound")
	wantBodies(t, main, "bound-later")
}

// The mandatory check is made at publish time: Scheduled counts the queues
// a delayed message would reach now.
func TestDelayedMandatoryCheck(t *testing.T) {
	_, v, clk := fakeBroker()
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "topic"}}); err != nil {
		t.Fatal(err)
	}
	conn := v.Open("t", ConnInfo{})
	consumeDelayed(t, v, conn, "q1", "d", "a.#", nil, clk)
	consumeDelayed(t, v, conn, "q2", "d", "*.b", nil, clk)
	for key, want := range map[string]int{"a.b": 2, "a.c": 1, "x.y": 0} {
		res := publish(t, v, delayedMsg("d", key, key, 1000, nil))
		if res.Scheduled != want || res.Queues != 0 || res.Rejected != 0 {
			t.Errorf("key %s: %+v, want Scheduled %d and nothing enqueued", key, res, want)
		}
	}
	if res := publish(t, v, delayedMsg("d", "a.b", "now", 0, nil)); res.Queues != 2 {
		t.Errorf("undelayed: %+v, want 2 queues", res)
	}
	// Mandatory: what would reach no queue is not held (it is returned).
	var r Router
	r.Mandatory = true
	before := v.lookupExchange("d").scheduler().pending.Load()
	if _, err := v.Publish(&r, "d", delayedMsg("d", "x.y", "returned", 1000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Publish(&r, "d", delayedMsg("d", "a.c", "kept", 1000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if after := v.lookupExchange("d").scheduler().pending.Load(); after != before+1 {
		t.Errorf("mandatory publishes held %d messages, want only the routable one", after-before)
	}
}

// Deleting the exchange drops what it holds.
func TestDelayedExchangeDeleted(t *testing.T) {
	_, v, clk := fakeBroker()
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "direct"}}); err != nil {
		t.Fatal(err)
	}
	conn := v.Open("t", ConnInfo{})
	s := consumeDelayed(t, v, conn, "q", "d", "k", nil, clk)
	publish(t, v, delayedMsg("d", "k", "m", 100, nil))
	if err := v.DeleteExchange("d", false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Args: Table{ArgDelayedType: "direct"}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Bind(conn, "q", "d", "k", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	wantBodies(t, s)
}

// Schedule delivers through any exchange at the given time.
func TestSchedule(t *testing.T) {
	_, v, clk := fakeBroker()
	conn := v.Open("t", ConnInfo{})
	s := consumeDelayed(t, v, conn, "q", "", "", nil, clk)
	at := delayEpoch.Add(90 * time.Second)
	if _, err := v.Schedule(nil, at, "", &Message{RoutingKey: "q", Body: []byte("later")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Schedule(nil, delayEpoch, "", &Message{RoutingKey: "q", Body: []byte("now")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Schedule(nil, at, "missing", &Message{}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown exchange: %v", err)
	}
	clk.Set(at.Add(-time.Nanosecond))
	wantBodies(t, s, "now")
	clk.Set(at)
	wantBodies(t, s, "now", "later")
}

// storeBroker opens a broker on a message log and definitions in fsys.
func storeBroker(t *testing.T, fsys *store.MemFS, meta *mapMeta, clk clock.Clock, tune func(*Broker)) (*Broker, *store.Log) {
	t.Helper()
	lg, _, err := store.OpenLog(fsys, "/data/messages", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	b := NewBrokerWith(Options{Messages: lg, Meta: meta, Clock: clk})
	if tune != nil {
		tune(b)
	}
	if _, err := b.Recover(lg.Replay); err != nil {
		t.Fatal(err)
	}
	return b, lg
}

// Persistent delayed messages on a durable exchange are confirmed after the
// fsync and come back after a crash with their due times; transient ones
// and those on a transient exchange do not.
func TestDelayedRecovery(t *testing.T) {
	fsys := store.NewMemFS()
	meta := &mapMeta{m: map[string][]byte{}}
	clk := clock.NewFake(delayEpoch)
	b, lg := storeBroker(t, fsys, meta, clk, nil)
	v, _ := b.Vhost("/")
	for _, name := range []string{"d", "t"} {
		if _, err := v.DeclareExchange(name, KindDelayed, ExchangeOptions{Durable: name == "d", Args: Table{ArgDelayedType: "direct"}}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := v.DeclareQueue(nil, "q", QueueOptions{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "t"} {
		if err := v.Bind(nil, "q", name, "k", nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 10)
	send := func(x string, delay int64, body string, mode uint8) PublishResult {
		m := delayedMsg(x, "k", body, delay, nil)
		m.Props.DeliveryMode = mode
		var r Router
		res, err := v.Publish(&r, x, m, func(err error) { done <- err })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	stored := 0
	for _, p := range []struct {
		x     string
		delay int64
		body  string
		mode  uint8
	}{{"d", 5000, "p5", Persistent}, {"d", 1000, "p1", Persistent}, {"d", 3000, "t3", Transient}, {"t", 2000, "px", Persistent}, {"d", 500000, "p500", Persistent}} {
		if send(p.x, p.delay, p.body, p.mode).Stored {
			stored++
		}
	}
	if stored != 3 {
		t.Fatalf("%d stored, want the 3 persistent ones on the durable exchange", stored)
	}
	for i := 0; i < stored; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(1500 * time.Millisecond) // p1 goes to q (and its store) before the crash
	if n, _ := q.Counts(); n != 1 {
		t.Fatalf("queue holds %d, want p1", n)
	}
	barrier(t, v, lg) // p1's move to q is durable

	crashed := fsys.Crash()
	clk2 := clock.NewFake(delayEpoch.Add(2 * time.Second))
	b2, lg2 := storeBroker(t, crashed, meta, clk2, nil)
	v2, _ := b2.Vhost("/")
	if n := v2.lookupExchange("d").DelayedCount(); n != 2 {
		t.Fatalf("after the crash %d delayed, want p5 and p500", n)
	}
	conn := v2.Open("t", ConnInfo{})
	s := &sink{clk: clk2}
	q2, _ := v2.Queue(nil, "q")
	if _, err := conn.NewSession().Consume(q2, ConsumeOptions{NoAck: true, Deliver: s.deliver}); err != nil {
		t.Fatal(err)
	}
	wantBodies(t, s, "p1")
	clk2.Set(delayEpoch.Add(5*time.Second - time.Millisecond))
	wantBodies(t, s, "p1")
	clk2.Set(delayEpoch.Add(5 * time.Second))
	wantBodies(t, s, "p1", "p5")
	barrier(t, v2, lg2)

	// Recovered while already due: routed as soon as recovery is over.
	crashed2 := crashed.Crash()
	clk3 := clock.NewFake(delayEpoch.Add(time.Hour))
	b3, _ := storeBroker(t, crashed2, meta, clk3, nil)
	v3, _ := b3.Vhost("/")
	q3, _ := v3.Queue(nil, "q")
	clk3.Advance(0)
	if n, _ := q3.Counts(); n != 1 {
		t.Fatalf("after the second crash the queue holds %d, want p500 (p1 and p5 were consumed without ack)", n)
	}
	if n := v3.lookupExchange("d").DelayedCount(); n != 0 {
		t.Fatalf("%d still delayed", n)
	}
}

// barrier waits until the schedulers of v let go of what they route and
// everything lg was given is durable.
func barrier(t *testing.T, v *Vhost, lg *store.Log) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, x := range v.Exchanges() {
		for s := x.sched.Load(); s != nil && !s.idle(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a scheduler stays busy")
			}
		}
	}
	synced := make(chan error, 1)
	lg.Barrier(func(err error) { synced <- err })
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
}

// Far entries keep only their index in memory; their bodies are read back
// before they fall due (or when they do), in due order.
func TestDelayedFarEntries(t *testing.T) {
	fsys := store.NewMemFS()
	clk := clock.NewFake(delayEpoch)
	b, _ := storeBroker(t, fsys, &mapMeta{m: map[string][]byte{}}, clk, nil)
	v, _ := b.Vhost("/")
	x, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Durable: true, Args: Table{ArgDelayedType: "fanout"}})
	if err != nil {
		t.Fatal(err)
	}
	s := x.sched.Load()
	s.mu.Lock()
	s.horizon, s.nearMax = 100*time.Millisecond, 3
	s.mu.Unlock()
	conn := v.Open("t", ConnInfo{})
	sk := consumeDelayed(t, v, conn, "q", "d", "", nil, clk)
	var want []string
	n := 2*delayBatch + 10
	for i := 0; i < n; i++ {
		d := int64(1000 + (i*7919)%n) // a permutation of the delays
		m := delayedMsg("d", "", fmt.Sprintf("%06d", d), d, nil)
		m.Props.DeliveryMode = Persistent
		publish(t, v, m)
		want = append(want, fmt.Sprintf("%06d", d))
	}
	slices.Sort(want)
	s.mu.Lock()
	if len(s.near) != 0 || len(s.far) != n {
		t.Fatalf("near %d far %d, want every entry far", len(s.near), len(s.far))
	}
	s.mu.Unlock()
	clk.Advance(950 * time.Millisecond) // within the horizon of the first ones
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		loading := s.loading
		s.mu.Unlock()
		if !loading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read-back did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	if len(s.near) == 0 || len(s.near) > 3 {
		t.Fatalf("near %d, want the first ones read back, at most 3", len(s.near))
	}
	s.mu.Unlock()
	wantBodies(t, sk)
	for clk.Now().Before(delayEpoch.Add(time.Duration(1000+n) * time.Millisecond)) {
		clk.Advance(time.Millisecond)
	}
	if got := sk.bodies(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d messages, in order: %v; want %d in due order", len(got), slices.IsSorted(got), len(want))
	}
}

// After StopScheduling nothing is routed; stored scheduled messages stay
// stored.
func TestStopScheduling(t *testing.T) {
	fsys := store.NewMemFS()
	meta := &mapMeta{m: map[string][]byte{}}
	clk := clock.NewFake(delayEpoch)
	b, lg := storeBroker(t, fsys, meta, clk, nil)
	v, _ := b.Vhost("/")
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Durable: true, Args: Table{ArgDelayedType: "direct"}}); err != nil {
		t.Fatal(err)
	}
	conn := v.Open("t", ConnInfo{})
	s := consumeDelayed(t, v, conn, "q", "d", "k", nil, clk)
	m := delayedMsg("d", "k", "kept", 100, nil)
	m.Props.DeliveryMode = Persistent
	publish(t, v, m)
	b.StopScheduling()
	clk.Advance(time.Second)
	wantBodies(t, s)
	barrier(t, v, lg)

	b2, _ := storeBroker(t, fsys.Crash(), meta, clk, nil)
	v2, _ := b2.Vhost("/")
	if n := v2.lookupExchange("d").DelayedCount(); n != 1 {
		t.Fatalf("after the restart %d scheduled, want the stored one", n)
	}
}

// Deleting a durable delayed exchange releases its stored messages: they do
// not come back after a restart, not even into an exchange of the same name.
func TestDelayedExchangeDeletedStored(t *testing.T) {
	fsys := store.NewMemFS()
	meta := &mapMeta{m: map[string][]byte{}}
	clk := clock.NewFake(delayEpoch)
	b, lg := storeBroker(t, fsys, meta, clk, nil)
	v, _ := b.Vhost("/")
	opts := ExchangeOptions{Durable: true, Args: Table{ArgDelayedType: "direct"}}
	if _, err := v.DeclareExchange("d", KindDelayed, opts); err != nil {
		t.Fatal(err)
	}
	for _, delay := range []int64{100, 60000} { // one near, one far
		m := delayedMsg("d", "k", "m", delay, nil)
		m.Props.DeliveryMode = Persistent
		publish(t, v, m)
	}
	if err := v.DeleteExchange("d", false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareExchange("d", KindDelayed, opts); err != nil {
		t.Fatal(err)
	}
	barrier(t, v, lg)
	b2, _ := storeBroker(t, fsys.Crash(), meta, clk, nil)
	v2, _ := b2.Vhost("/")
	if n := v2.lookupExchange("d").DelayedCount(); n != 0 {
		t.Fatalf("%d scheduled messages of the deleted exchange came back", n)
	}
}

// A scheduled message that cannot be read back (EMFILE) is not lost: it
// waits, the message-store-read alarm is raised, and once reads work again
// it is delivered and the alarm clears.
func TestDelayedReadFailureAlarm(t *testing.T) {
	fsys := store.NewMemFS()
	clk := clock.NewFake(delayEpoch)
	b, _ := storeBroker(t, fsys, &mapMeta{m: map[string][]byte{}}, clk, nil)
	v, _ := b.Vhost("/")
	x, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Durable: true, Args: Table{ArgDelayedType: "fanout"}})
	if err != nil {
		t.Fatal(err)
	}
	s := x.sched.Load()
	s.mu.Lock()
	s.horizon, s.nearMax = 100*time.Millisecond, 3
	s.mu.Unlock()
	conn := v.Open("t", ConnInfo{})
	sk := consumeDelayed(t, v, conn, "q", "d", "", nil, clk)
	m := delayedMsg("d", "", "later", 1000, nil)
	m.Props.DeliveryMode = Persistent
	publish(t, v, m)
	alarmed := func() bool {
		for _, a := range b.Alarms() {
			if a.Name == AlarmMessageRead {
				return true
			}
		}
		return false
	}
	fsys.FailRead(errors.New("injected: too many open files"))
	deadline := time.Now().Add(5 * time.Second)
	for !alarmed() {
		if time.Now().After(deadline) {
			t.Fatal("no message-store-read alarm while the read-back fails")
		}
		clk.Advance(10 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if got := sk.bodies(); len(got) != 0 {
		t.Fatalf("delivered %v while unreadable", got)
	}
	fsys.FailRead(nil)
	deadline = time.Now().Add(5 * time.Second)
	for len(sk.bodies()) == 0 || alarmed() {
		if time.Now().After(deadline) {
			t.Fatalf("after reads recovered: delivered %v, alarm raised %v", sk.bodies(), alarmed())
		}
		clk.Advance(50 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	wantBodies(t, sk, "later")
}
