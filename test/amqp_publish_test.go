package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
)

func TestPublishMandatoryReturn(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	_, ch := s.channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// Unbuffered, so the client hands over events in the order they arrive.
	returns := ch.NotifyReturn(make(chan amqp.Return))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation))
	q := declareQueue(t, ch, "")

	for i, tc := range []struct {
		exchange, key string
		mandatory     bool
		returned      bool
	}{
		{"", "no-such-queue", true, true},
		{"amq.direct", "unbound", true, true},
		{"", q, true, false},
		{"", "no-such-queue", false, false},
	} {
		publishMsg(t, ch, tc.exchange, tc.key, tc.mandatory, amqp.Publishing{
			ContentType: "text/plain", MessageId: "id-1", Body: []byte("lost"),
		})
		tag := uint64(i + 1)
		if tc.returned {
			select {
			case r := <-returns:
				if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" {
					t.Fatalf("basic.return %d %q, want 312 NO_ROUTE", r.ReplyCode, r.ReplyText)
				}
				if r.Exchange != tc.exchange || r.RoutingKey != tc.key || string(r.Body) != "lost" ||
					r.ContentType != "text/plain" || r.MessageId != "id-1" {
					t.Fatalf("basic.return of exchange %q key %q body %q type %q id %q", r.Exchange, r.RoutingKey, r.Body, r.ContentType, r.MessageId)
				}
			case c := <-confirms:
				t.Fatalf("confirm %d arrived before the basic.return", c.DeliveryTag)
			case <-time.After(waitFor):
				t.Fatal("no basic.return")
			}
		}
		select {
		case c := <-confirms:
			// An unroutable message is still confirmed with an ack.
			if c.DeliveryTag != tag || !c.Ack {
				t.Fatalf("confirm %d ack=%v, want %d ack", c.DeliveryTag, c.Ack, tag)
			}
		case r := <-returns:
			t.Fatalf("unexpected basic.return for %q %q", r.Exchange, r.RoutingKey)
		case <-time.After(waitFor):
			t.Fatalf("no confirm for publish %d", tag)
		}
	}
	if m := get(t, ch, q); string(m.Body) != "lost" {
		t.Fatalf("got %q", m.Body)
	}
}

func TestPublishConfirms(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	_, ch := s.channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 500
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n))
	q := declareQueue(t, ch, "")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pending := make([]*amqp.DeferredConfirmation, 0, n)
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if dc.DeliveryTag != uint64(i+1) {
			t.Fatalf("publish %d got sequence number %d", i, dc.DeliveryTag)
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			t.Fatalf("confirm %d: %v", dc.DeliveryTag, err)
		}
		if !ok {
			t.Fatalf("publish %d nacked", dc.DeliveryTag)
		}
	}
	// The client expands multiple acks: every sequence number once, in order.
	for i := range n {
		select {
		case c := <-confirms:
			if c.DeliveryTag != uint64(i+1) || !c.Ack {
				t.Fatalf("confirmation %d: tag %d ack %v", i, c.DeliveryTag, c.Ack)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d confirmations", i, n)
		}
	}
	if msgs, _ := messageCount(t, s.dial(t), q); msgs != n {
		t.Fatalf("%d messages in the queue, want %d", msgs, n)
	}
}

func TestPublishPropertiesRoundTrip(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	headers := amqp.Table{
		"string":    "text",
		"bool":      true,
		"int8":      int8(-8),
		"uint8":     uint8(200),
		"int16":     int16(-1600),
		"uint16":    uint16(60000),
		"int32":     int32(-320000),
		"uint32":    uint32(4000000000),
		"int64":     int64(-6400000000),
		"float32":   float32(1.5),
		"float64":   float64(-2.25),
		"decimal":   amqp.Decimal{Scale: 2, Value: 12345},
		"bytes":     []byte{0, 1, 2, 0xff},
		"void":      nil,
		"timestamp": time.Unix(1700000000, 0),
		"array":     []any{"a", int32(1), true, amqp.Table{"in": "array"}},
		"table":     amqp.Table{"nested": amqp.Table{"deep": int64(3)}, "n": int32(2)},
		"empty":     "",
	}
	sent := amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		Headers:         headers,
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-1",
		ReplyTo:         "replies",
		Expiration:      "600000",
		MessageId:       "msg-1",
		Timestamp:       time.Unix(1700000123, 0),
		Type:            "order.created",
		UserId:          "guest",
		AppId:           "billing",
		Body:            []byte(`{"ok":true}`),
	}
	publishConfirmed(t, ch, "", q, sent)
	d := consume(t, ch, q, true)
	m := recv(t, d)

	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"content type", m.ContentType, sent.ContentType},
		{"content encoding", m.ContentEncoding, sent.ContentEncoding},
		{"delivery mode", m.DeliveryMode, sent.DeliveryMode},
		{"priority", m.Priority, sent.Priority},
		{"correlation id", m.CorrelationId, sent.CorrelationId},
		{"reply to", m.ReplyTo, sent.ReplyTo},
		{"expiration", m.Expiration, sent.Expiration},
		{"message id", m.MessageId, sent.MessageId},
		{"type", m.Type, sent.Type},
		{"user id", m.UserId, sent.UserId},
		{"app id", m.AppId, sent.AppId},
		{"body", string(m.Body), string(sent.Body)},
		{"exchange", m.Exchange, ""},
		{"routing key", m.RoutingKey, q},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: got %#v, want %#v", f.name, f.got, f.want)
		}
	}
	if !m.Timestamp.Equal(sent.Timestamp) {
		t.Errorf("timestamp: got %v, want %v", m.Timestamp, sent.Timestamp)
	}
	if len(m.Headers) != len(headers) {
		t.Errorf("got %d headers, want %d: %#v", len(m.Headers), len(headers), m.Headers)
	}
	for k, want := range headers {
		got, ok := m.Headers[k]
		if !ok {
			t.Errorf("header %q missing", k)
			continue
		}
		if wt, isTime := want.(time.Time); isTime {
			if gt, _ := got.(time.Time); !gt.Equal(wt) {
				t.Errorf("header %q: got %#v, want %v", k, got, wt)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("header %q: got %#v (%T), want %#v (%T)", k, got, got, want, want)
		}
	}

	// A message without properties arrives without them.
	publishConfirmed(t, ch, "", q, amqp.Publishing{Body: []byte("bare")})
	m = recv(t, d)
	if m.ContentType != "" || m.Headers != nil && len(m.Headers) != 0 || m.DeliveryMode != 0 || m.Priority != 0 ||
		m.MessageId != "" || !m.Timestamp.IsZero() || m.UserId != "" {
		t.Errorf("bare message arrived with properties: %+v", m)
	}
}

func TestPublishBodySizes(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	big := make([]byte, 1<<20)
	rand.Read(big)
	sizes := []struct {
		name string
		body []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{'x'}},
		{"frame sized", bytes.Repeat([]byte{'f'}, 131072-8)},
		{"frame plus one", bytes.Repeat([]byte{'g'}, 131072-8+1)},
		{"1 MiB", big},
	}
	for _, sz := range sizes {
		publishConfirmed(t, ch, "", q, amqp.Publishing{MessageId: sz.name, Body: sz.body})
	}
	d := consume(t, ch, q, true)
	for _, sz := range sizes {
		m := recv(t, d)
		if m.MessageId != sz.name {
			t.Fatalf("got message %q, want %q", m.MessageId, sz.name)
		}
		if !bytes.Equal(m.Body, sz.body) {
			t.Fatalf("%s: body of %d bytes differs from the %d sent", sz.name, len(m.Body), len(sz.body))
		}
	}
	// The same through basic.get.
	got := declareQueue(t, ch, "")
	publishConfirmed(t, ch, "", got, amqp.Publishing{Body: big})
	if m := get(t, ch, got); !bytes.Equal(m.Body, big) {
		t.Fatalf("basic.get: body of %d bytes differs", len(m.Body))
	}

	// A client that tunes the smallest frame size gets the body in 4 KiB
	// frames, and may publish in them.
	small, err := amqp.DialConfig(s.URL, amqp.Config{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if small.Config.FrameSize != 4096 {
		t.Fatalf("negotiated frame size %d, want 4096", small.Config.FrameSize)
	}
	sch := confirmChannel(t, small)
	publishConfirmed(t, sch, "", got, amqp.Publishing{Body: big})
	if m := recv(t, consume(t, sch, got, true)); !bytes.Equal(m.Body, big) {
		t.Fatalf("with 4 KiB frames: body of %d bytes differs", len(m.Body))
	}
}

func TestPublishToMissingExchange(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn, ch := s.channel(t)
	closed := notifyClose(ch)
	publish(t, ch, "no-such-exchange", "k", "x")
	closedWith(t, closed, amqp.NotFound, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'")
	if conn.IsClosed() {
		t.Fatal("connection closed by a channel error")
	}
	fresh := confirmChannel(t, conn)
	q := declareQueue(t, fresh, "")
	publishBodies(t, fresh, q, "ok")

	// An exchange that existed when the channel last published to it.
	x := declareExchange(t, fresh, "fanout")
	publishConfirmed(t, fresh, x, "", amqp.Publishing{Body: []byte("x")})
	if err := newChannel(t, conn).ExchangeDelete(x, false, false); err != nil {
		t.Fatal(err)
	}
	closed = notifyClose(fresh)
	publish(t, fresh, x, "", "gone")
	closedWith(t, closed, amqp.NotFound, "NOT_FOUND - no exchange '"+x+"' in vhost '/'")
}

func TestPublishMaxMessageSize(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(cfg *config.Config) { cfg.MaxMessageSize = 1024 })
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	publishConfirmed(t, ch, "", q, amqp.Publishing{Body: make([]byte, 1024)})
	if m := get(t, ch, q); len(m.Body) != 1024 {
		t.Fatalf("got %d bytes", len(m.Body))
	}

	closed := notifyClose(ch)
	publishMsg(t, ch, "", q, false, amqp.Publishing{Body: make([]byte, 1025)})
	closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - message size 1025 is larger than configured max size 1024")
	if conn.IsClosed() {
		t.Fatal("connection closed by a channel error")
	}
	ch = newChannel(t, conn)
	wantEmpty(t, ch, q)
}

func TestPublishUserIDMismatch(t *testing.T) {
	t.Parallel()
	s := amqpServer(t)
	conn := s.dial(t)
	ch := confirmChannel(t, conn)
	q := declareQueue(t, ch, "")
	publishConfirmed(t, ch, "", q, amqp.Publishing{UserId: "guest", Body: []byte("mine")})

	closed := notifyClose(ch)
	publishMsg(t, ch, "", q, false, amqp.Publishing{UserId: "admin", Body: []byte("forged")})
	closedWith(t, closed, amqp.PreconditionFailed, "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was 'guest'")
	other := newChannel(t, conn)
	if m := get(t, other, q); string(m.Body) != "mine" || m.UserId != "guest" {
		t.Fatalf("got %q from %q", m.Body, m.UserId)
	}
	wantEmpty(t, other, q)
}
