package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

// memBroker starts a broker on fsys (AMQP and HTTP on loopback ports) and
// stops it at the end of the test; stop stops it earlier.
func memBroker(t *testing.T, fsys store.FS, edit func(*config.Config)) (b *broker.Broker, stop func()) {
	t.Helper()
	opts := []testutil.Option{testutil.WithDataDir("/data"), testutil.WithFS(fsys),
		testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.IgnoreShutdownError()}
	if edit != nil {
		opts = append(opts, testutil.WithConfig(edit))
	}
	tb := testutil.StartBroker(t, opts...)
	return tb.Broker, tb.Stop
}

func dialBroker(t *testing.T, b *broker.Broker) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@" + b.Addr("amqp").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func openChannel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// publishConfirmedN publishes n persistent messages body-<from+i> to queue
// and waits until each is confirmed (acked, not nacked).
func publishConfirmedN(t *testing.T, ch *amqp.Channel, queue string, from, n int) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var dcs []*amqp.DeferredConfirmation
	for i := from; i < from+n; i++ {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("body-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("publish %d: confirmed %v, %v", from+i, ok, err)
		}
	}
}

// wantAMQPError checks that err is an AMQP error with code.
func wantAMQPError(t *testing.T, what string, err error, code int) {
	t.Helper()
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s: got %v, want AMQP error %d", what, err, code)
	}
}

// apiAlarms returns the alarms GET /api/health/checks/alarms reports (and
// checks its status code agrees).
func apiAlarms(t *testing.T, b *broker.Broker) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+b.Addr("http").String()+"/api/health/checks/alarms", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Alarms []struct{ Resource, Reason string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range body.Alarms {
		names = append(names, a.Resource)
	}
	if (resp.StatusCode == http.StatusOK) != (len(names) == 0) || (body.Status == "ok") != (len(names) == 0) {
		t.Fatalf("alarms check answered %d %q with alarms %v", resp.StatusCode, body.Status, names)
	}
	return names
}

// queueBodies consumes everything queue holds (waiting up to a second
// after the last message) with manual acks when ack is set, and returns
// the bodies in order.
func queueBodies(t *testing.T, ch *amqp.Channel, queue string, want int) []string {
	t.Helper()
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	deadline := time.After(10 * time.Second)
	for len(out) < want {
		select {
		case d := <-deliveries:
			out = append(out, string(d.Body))
		case <-deadline:
			t.Fatalf("queue %s: got %d of %d messages: %v", queue, len(out), want, out)
		}
	}
	select {
	case d := <-deliveries:
		t.Fatalf("queue %s: unexpected extra message %q", queue, d.Body)
	case <-time.After(200 * time.Millisecond):
	}
	return out
}

// TestDefinitionWriteFailure: when the definition store fails a write, the
// declare, bind and delete that needed it fail with 541 INTERNAL_ERROR,
// memory stays as it was (the queue that could not be stored does not
// exist, the one that could not be deleted still serves its messages), the
// alarm shows in the management API, and after a crash nothing confirmed
// is lost and nothing acknowledged comes back.
func TestDefinitionWriteFailure(t *testing.T) {
	fsys := store.NewMemFS()
	b, stop := memBroker(t, fsys, nil)
	conn := dialBroker(t, b)
	ch := openChannel(t, conn)
	if _, err := ch.QueueDeclare("kept", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("kx", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmedN(t, ch, "kept", 0, 10)
	// Ack the first four; a synchronous method after them orders them
	// before the next confirmed publish, whose fsync covers them.
	if err := ch.Qos(4, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("kept", "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		d := <-deliveries
		if want := fmt.Sprintf("body-%d", i); string(d.Body) != want {
			t.Fatalf("got %q, want %q", d.Body, want)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	publishConfirmedN(t, ch, "kept", 10, 1)
	ch.Close()
	if got := apiAlarms(t, b); len(got) != 0 {
		t.Fatalf("alarms before the fault: %v", got)
	}

	fsys.FailWrite(fmt.Errorf("injected: %w", syscall.EIO))
	cases := []struct {
		what string
		op   func(ch *amqp.Channel) error
	}{
		{"durable queue declare", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("lost", true, false, false, false, nil)
			return err
		}},
		{"durable exchange declare", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("lostx", "fanout", true, false, false, false, nil)
		}},
		{"durable binding", func(ch *amqp.Channel) error { return ch.QueueBind("kept", "k", "kx", false, nil) }},
		{"durable queue delete", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete("kept", false, false, false)
			return err
		}},
		{"durable exchange delete", func(ch *amqp.Channel) error { return ch.ExchangeDelete("kx", false, false) }},
	}
	for _, c := range cases {
		conn := dialBroker(t, b)
		wantAMQPError(t, c.what, c.op(openChannel(t, conn)), amqp.InternalError)
	}
	if got := apiAlarms(t, b); len(got) != 1 || got[0] != core.AlarmDefinitions {
		t.Fatalf("alarms after the failed writes: %v, want [%s]", got, core.AlarmDefinitions)
	}
	// Memory is as it was: nothing new exists, nothing old is gone.
	conn = dialBroker(t, b)
	ch = openChannel(t, conn)
	if _, err := ch.QueueDeclarePassive("lost", true, false, false, false, nil); err == nil {
		t.Fatal("queue 'lost' exists although its declare failed")
	}
	ch = openChannel(t, conn)
	if err := ch.ExchangeDeclarePassive("kx", "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("exchange 'kx' gone although its delete failed: %v", err)
	}
	if q, err := ch.QueueDeclarePassive("kept", true, false, false, false, nil); err != nil || q.Messages != 7 {
		t.Fatalf("queue 'kept' after its failed delete: %+v, %v (want 7 messages)", q, err)
	}
	// Transient definitions do not touch the store and still work.
	if _, err := ch.QueueDeclare("transient", false, false, false, false, nil); err != nil {
		t.Fatalf("transient queue declare: %v", err)
	}
	stop()

	// Crash: only what was synced survives.
	b2, _ := memBroker(t, fsys.Crash(), nil)
	ch = openChannel(t, dialBroker(t, b2))
	if _, err := ch.QueueDeclarePassive("lost", true, false, false, false, nil); err == nil {
		t.Fatal("queue 'lost' came back after the crash")
	}
	ch = openChannel(t, dialBroker(t, b2))
	want := []string{"body-4", "body-5", "body-6", "body-7", "body-8", "body-9", "body-10"}
	got := queueBodies(t, ch, "kept", len(want))
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after the crash 'kept' holds %v, want %v", got, want)
	}
}

// TestPagedReadFailure: when a paged-out message cannot be read back (a
// transient EMFILE), it is not dropped: the queue stops delivering at it,
// reports the alarm, retries, and once reads work again delivers every
// message in order. basic.get during the failure answers 541.
func TestPagedReadFailure(t *testing.T) {
	fsys := store.NewMemFS()
	b, _ := memBroker(t, fsys, func(c *config.Config) { c.QueuePageAfter = 10 })
	conn := dialBroker(t, b)
	ch := openChannel(t, conn)
	if _, err := ch.QueueDeclare("paged", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	const n = 100
	publishConfirmedN(t, ch, "paged", 0, n)

	fsys.FailRead(fmt.Errorf("injected: %w", syscall.EMFILE))
	// basic.get of a paged-out head fails the AMQP way.
	gch := openChannel(t, dialBroker(t, b))
	if err := gch.Qos(0, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("paged", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 10 {
		select {
		case d := <-deliveries:
			got = append(got, string(d.Body))
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d in-memory messages delivered", len(got))
		}
	}
	// The eleventh is paged out: nothing comes while reads fail.
	select {
	case d := <-deliveries:
		t.Fatalf("delivered %q past an unreadable message", d.Body)
	case <-time.After(300 * time.Millisecond):
	}
	waitUntil(t, 5*time.Second, "the message-store-read alarm", func() bool {
		a := apiAlarms(t, b)
		return len(a) == 1 && a[0] == core.AlarmMessageRead
	})
	_, _, err = gch.Get("paged", false)
	wantAMQPError(t, "basic.get of an unreadable message", err, amqp.InternalError)

	fsys.FailRead(nil)
	deadline := time.After(15 * time.Second)
	for len(got) < n {
		select {
		case d := <-deliveries:
			got = append(got, string(d.Body))
		case <-deadline:
			t.Fatalf("after reads recovered only %d of %d messages arrived", len(got), n)
		}
	}
	for i, body := range got {
		if want := fmt.Sprintf("body-%d", i); body != want {
			t.Fatalf("message %d is %q, want %q", i, body, want)
		}
	}
	waitUntil(t, 5*time.Second, "the alarm to clear", func() bool { return len(apiAlarms(t, b)) == 0 })
}

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
