package test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/testutil"
)

// TestFsyncErrorNacksConfirms: when the disk fails an fsync, the publishes
// it covered get basic.nack, never basic.ack, and so does every later
// persistent publish (the store refuses to go on after a failed fsync).
func TestFsyncErrorNacksConfirms(t *testing.T) {
	fsys := store.NewMemFS()
	// The failed fsync poisons the store, so its shutdown fails on purpose.
	b := testutil.StartBroker(t, testutil.WithFS(fsys), testutil.WithProtocols(testutil.AMQP), testutil.IgnoreShutdownError())
	conn, err := amqp.Dial(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("fsync", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publish := func(mode uint8) bool {
		t.Helper()
		dc, err := ch.PublishWithDeferredConfirm("", "fsync", false, false, amqp.Publishing{DeliveryMode: mode, Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			t.Fatalf("no confirm: %v", err)
		}
		return ok
	}
	if !publish(amqp.Persistent) {
		t.Fatal("persistent publish nacked while the disk works")
	}
	fsys.FailSync(errors.New("injected fsync failure"))
	for i := 0; i < 3; i++ {
		if publish(amqp.Persistent) {
			t.Fatalf("persistent publish %d acked although its fsync failed", i)
		}
	}
	// Transient messages do not touch the disk and are still confirmed.
	if !publish(amqp.Transient) {
		t.Fatal("transient publish nacked")
	}
}
