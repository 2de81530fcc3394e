package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/clock"
)

// Scheduled delivery (x-delayed-message), checked with amqp091-go against
// the real server. The in-process tests run the broker on a fake clock:
// a message is released when the test advances the clock past its due
// time, never before.

var delayT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// startDelayBroker runs a broker on dataDir with AMQP and HTTP on loopback
// ports and time from clk. stop shuts it down (the test's cleanup does too).
func startDelayBroker(t *testing.T, dataDir string, clk clock.Clock) (b *broker.Broker, url string, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.AMQPListen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.MQTTListen, cfg.MQTTWSListen, cfg.STOMPListen, cfg.STOMPWSListen = config.Off, config.Off, config.Off, config.Off
	b, err := broker.NewWith(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), broker.Deps{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return b, "amqp://guest:guest@" + b.Addr("amqp").String() + "/", stop
}

func dialDelay(t *testing.T, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func declareDelayed(t *testing.T, ch *amqp.Channel, name, kind string, durable bool) {
	t.Helper()
	if err := ch.ExchangeDeclare(name, "x-delayed-message", durable, false, false, false, amqp.Table{"x-delayed-type": kind}); err != nil {
		t.Fatalf("declare %s (x-delayed-type %s): %v", name, kind, err)
	}
}

// messagesDelayed reads messages_delayed of an exchange from GET /api/exchanges.
func messagesDelayed(t *testing.T, b *broker.Broker, exchange string) int {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+b.Addr("http").String()+"/api/exchanges/%2F", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var xs []struct {
		Name            string `json:"name"`
		Type            string `json:"type"`
		MessagesDelayed *int   `json:"messages_delayed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&xs); err != nil {
		t.Fatalf("GET /api/exchanges: %s: %v", resp.Status, err)
	}
	for _, x := range xs {
		if x.Name == exchange {
			if x.MessagesDelayed == nil {
				t.Fatalf("exchange %s (%s) has no messages_delayed", exchange, x.Type)
			}
			return *x.MessagesDelayed
		}
	}
	t.Fatalf("exchange %s not listed", exchange)
	return 0
}

// One test per x-delayed-type: a message published with x-delay comes out
// when the clock reaches its due time, routed by that type's rules; a
// message the type's rules do not route to the queue does not come.
func TestDelayedExchangeTypes(t *testing.T) {
	for _, tc := range []struct {
		kind            string
		bindKey         string
		bindArgs        amqp.Table
		hitKey, missKey string
		hitHdr, missHdr amqp.Table
	}{
		{kind: "direct", bindKey: "k", hitKey: "k", missKey: "k2"},
		{kind: "topic", bindKey: "orders.*.eu", hitKey: "orders.new.eu", missKey: "orders.new.us"},
		{kind: "fanout", hitKey: "any"},
		{kind: "headers", bindArgs: amqp.Table{"x-match": "any", "region": "eu"}, hitKey: "k", missKey: "k",
			hitHdr: amqp.Table{"region": "eu"}, missHdr: amqp.Table{"region": "us"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			clk := clock.NewFake(delayT0)
			b, url, _ := startDelayBroker(t, t.TempDir(), clk)
			conn := dialDelay(t, url)
			ch := confirmChannel(t, conn)
			declareDelayed(t, ch, "delayed", tc.kind, false)
			q := declareQueue(t, ch, "")
			bindQueue(t, ch, q, "delayed", tc.bindKey, tc.bindArgs)
			hdr := func(extra amqp.Table) amqp.Table {
				h := amqp.Table{"x-delay": 5000}
				for k, v := range extra {
					h[k] = v
				}
				return h
			}
			if tc.kind != "fanout" {
				publishConfirmed(t, ch, "delayed", tc.missKey, amqp.Publishing{Headers: hdr(tc.missHdr), Body: []byte("miss")})
			}
			publishConfirmed(t, ch, "delayed", tc.hitKey, amqp.Publishing{Headers: hdr(tc.hitHdr), Body: []byte("hit")})
			want := 2
			if tc.kind == "fanout" {
				want = 1
			}
			if n := messagesDelayed(t, b, "delayed"); n != want {
				t.Fatalf("messages_delayed %d, want %d", n, want)
			}
			clk.Advance(4999 * time.Millisecond)
			if n, _ := messageCount(t, conn, q); n != 0 {
				t.Fatalf("%d messages in the queue 1 ms before the delay is over", n)
			}
			clk.Advance(time.Millisecond)
			if n, _ := messageCount(t, conn, q); n != 1 {
				t.Fatalf("%d messages in the queue when the delay is over, want 1", n)
			}
			m := get(t, ch, q)
			if string(m.Body) != "hit" || m.Exchange != "delayed" || m.RoutingKey != tc.hitKey {
				t.Fatalf("got %q via %q/%q, want hit via delayed/%s", m.Body, m.Exchange, m.RoutingKey, tc.hitKey)
			}
			if n := messagesDelayed(t, b, "delayed"); n != 0 {
				t.Fatalf("messages_delayed %d after release", n)
			}
		})
	}
}

// Declaring without a valid x-delayed-type fails with 406, as with the
// plugin; a message without x-delay is routed at once.
func TestDelayedDeclareAndImmediate(t *testing.T) {
	clk := clock.NewFake(delayT0)
	_, url, _ := startDelayBroker(t, t.TempDir(), clk)
	conn := dialDelay(t, url)
	for _, args := range []amqp.Table{nil, {"x-delayed-type": "x-delayed-message"}, {"x-delayed-type": "nope"}} {
		ch := newChannel(t, conn)
		err := ch.ExchangeDeclare(uniq("bad"), "x-delayed-message", false, false, false, false, args)
		wantReply(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED")
	}
	ch := confirmChannel(t, conn)
	declareDelayed(t, ch, "d", "direct", false)
	q := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "d", "k", nil)
	publishConfirmed(t, ch, "d", "k", amqp.Publishing{Body: []byte("no header")})
	publishConfirmed(t, ch, "d", "k", amqp.Publishing{Headers: amqp.Table{"x-delay": -5}, Body: []byte("negative")})
	if n, _ := messageCount(t, conn, q); n != 2 {
		t.Fatalf("%d messages routed at once, want 2", n)
	}
}

// A mandatory publish is checked against the bindings at publish time:
// returned when nothing matches, not when a queue would get it. Unroutable
// at due time, a message goes to the alternate exchange.
func TestDelayedMandatoryAndAlternate(t *testing.T) {
	clk := clock.NewFake(delayT0)
	_, url, _ := startDelayBroker(t, t.TempDir(), clk)
	conn := dialDelay(t, url)
	ch := confirmChannel(t, conn)
	returns := ch.NotifyReturn(make(chan amqp.Return, 4))
	if err := ch.ExchangeDeclare("ae", "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("d", "x-delayed-message", false, false, false, false,
		amqp.Table{"x-delayed-type": "direct", "alternate-exchange": "ae"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("plain", "x-delayed-message", false, false, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, "")
	aq := declareQueue(t, ch, "")
	bindQueue(t, ch, q, "d", "k", nil)
	bindQueue(t, ch, q, "plain", "k", nil)
	bindQueue(t, ch, aq, "ae", "", nil)

	mandatory := func(x, key, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, x, key, true, false,
			amqp.Publishing{Headers: amqp.Table{"x-delay": 1000}, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
	mandatory("plain", "nobody", "returned")
	mandatory("plain", "k", "routable")
	// The client gets basic.return before the confirm of the same message.
	select {
	case r := <-returns:
		if string(r.Body) != "returned" || r.ReplyCode != amqp.NoRoute {
			t.Fatalf("returned %q (%d), want the unroutable one with 312", r.Body, r.ReplyCode)
		}
	default:
		t.Fatal("no basic.return for a mandatory delayed message that matches no binding")
	}
	select {
	case r := <-returns:
		t.Fatalf("a routable delayed message was returned: %q", r.Body)
	default:
	}
	// A returned message is not also held: binding "nobody" now and
	// letting its delay pass delivers nothing for it.
	nq := declareQueue(t, ch, "")
	bindQueue(t, ch, nq, "plain", "nobody", nil)
	clk.Advance(time.Second)
	if m := get(t, ch, q); string(m.Body) != "routable" {
		t.Fatalf("routable delayed message: got %q", m.Body)
	}
	if n, _ := messageCount(t, conn, nq); n != 0 {
		t.Fatalf("the returned message was also delivered later (%d messages)", n)
	}

	publishConfirmed(t, ch, "d", "k", amqp.Publishing{Headers: amqp.Table{"x-delay": 1000}, Body: []byte("unbound later")})
	if err := ch.QueueUnbind(q, "k", "d", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if n, _ := messageCount(t, conn, aq); n != 1 {
		t.Fatalf("alternate exchange's queue has %d messages, want the one unroutable at due time", n)
	}
	if m := get(t, ch, aq); string(m.Body) != "unbound later" {
		t.Fatalf("alternate got %q", m.Body)
	}
}

// Persistent delayed messages on a durable exchange survive a restart and
// come out at their original due time; transient ones do not survive.
func TestDelayedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(delayT0)
	b, url, stop := startDelayBroker(t, dir, clk)
	conn := dialDelay(t, url)
	ch := confirmChannel(t, conn)
	declareDelayed(t, ch, "later", "direct", true)
	if _, err := ch.QueueDeclare("due", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bindQueue(t, ch, "due", "later", "k", nil)
	for _, m := range []struct {
		delay int
		body  string
		mode  uint8
	}{{20000, "p20", amqp.Persistent}, {10000, "p10", amqp.Persistent}, {10000, "t10", amqp.Transient}} {
		publishConfirmed(t, ch, "later", "k", amqp.Publishing{DeliveryMode: m.mode, Headers: amqp.Table{"x-delay": m.delay}, Body: []byte(m.body)})
	}
	if n := messagesDelayed(t, b, "later"); n != 3 {
		t.Fatalf("messages_delayed %d, want 3", n)
	}
	conn.Close()
	stop()

	clk2 := clock.NewFake(delayT0.Add(5 * time.Second))
	b2, url2, _ := startDelayBroker(t, dir, clk2)
	if n := messagesDelayed(t, b2, "later"); n != 2 {
		t.Fatalf("after the restart messages_delayed %d, want the 2 persistent ones", n)
	}
	conn2 := dialDelay(t, url2)
	ch2 := newChannel(t, conn2)
	step := func(at time.Duration, want int) {
		t.Helper()
		clk2.Set(delayT0.Add(at))
		if n, _ := messageCount(t, conn2, "due"); n != want {
			t.Fatalf("at +%v the queue holds %d, want %d", at, n, want)
		}
	}
	step(10*time.Second-time.Millisecond, 0)
	step(10*time.Second, 1)
	step(20*time.Second-time.Millisecond, 1)
	step(20*time.Second, 2)
	if a, b := get(t, ch2, "due"), get(t, ch2, "due"); string(a.Body) != "p10" || string(b.Body) != "p20" {
		t.Fatalf("got %q, %q; want p10, p20", a.Body, b.Body)
	}
}

// SIGKILL a real umsd while confirmed persistent delayed messages wait:
// after the restart each of them comes out, and none before its due time.
func TestDelayedSurvivesSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	const perRound = 40
	for round := 0; round < 2; round++ {
		p := startProc(t, dataDir)
		conn, err := amqp.Dial(p.url)
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, p.logs)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeDeclare("crash.delayed", "x-delayed-message", true, false, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf("crash.delayed.%d", round)
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q, q, "crash.delayed", false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		due := map[string]time.Time{}
		var dcs []*amqp.DeferredConfirmation
		var ids []string
		for i := 0; i < perRound; i++ {
			delay := 1000 + 25*i // 1 to 2 s
			id := fmt.Sprintf("r%d-%d", round, i)
			// due is counted from before the publish: the server's clock
			// starts the delay no earlier.
			due[id] = time.Now().Add(time.Duration(delay) * time.Millisecond)
			dc, err := ch.PublishWithDeferredConfirm("crash.delayed", q, false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, MessageId: id, Headers: amqp.Table{"x-delay": delay}, Body: []byte(id)})
			if err != nil {
				t.Fatal(err)
			}
			dcs, ids = append(dcs, dc), append(ids, id)
		}
		confirmed := map[string]bool{}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		for i, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err == nil && ok {
				confirmed[ids[i]] = true
			}
		}
		cancel()
		if len(confirmed) != perRound {
			t.Fatalf("round %d: %d of %d confirmed", round, len(confirmed), perRound)
		}
		p.kill(t) // well before the first due time
		conn.Close()

		p = startProc(t, dataDir)
		conn, err = amqp.Dial(p.url)
		if err != nil {
			t.Fatalf("round %d after the crash: %v\n%s", round, err, p.logs)
		}
		ch, err = conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for len(confirmed) > 0 {
			select {
			case m := <-msgs:
				now := time.Now()
				if now.Before(due[m.MessageId]) {
					t.Fatalf("round %d: %s delivered %v before its due time", round, m.MessageId, due[m.MessageId].Sub(now))
				}
				delete(confirmed, m.MessageId)
				m.Ack(false)
			case <-deadline:
				t.Fatalf("round %d: %d confirmed delayed messages lost: %v\n%s", round, len(confirmed), confirmed, p.logs)
			}
		}
		conn.Close()
		p.kill(t)
	}
}
