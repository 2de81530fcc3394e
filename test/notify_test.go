package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// A notification submitted over HTTP, AMQP and MQTT reaches a real SMTP
// server and a signed webhook, and its events arrive in order for AMQP and
// MQTT subscribers of ums.events.
func TestNotifyEndToEnd(t *testing.T) {
	e := startNotify(t)
	events := eventQueue(t, e.b.AMQPURL)
	mc, mqttEvents, _ := mqtt5(t, e.b.Broker, "events-watcher", true, 0)
	mqttSub5(t, mc, "ums/events/#", 1)

	// HTTP → webhook.
	a := submit(t, e.b, webhookNote(e.hook.URL+"/hook", map[string]any{"tenant": "acme", "tags": []string{"otp"}}), http.StatusAccepted, nil)
	if a.ID == "" || a.Status != "queued" {
		t.Fatalf("answer %+v", a)
	}
	calls := e.hook.wait(t, 1)
	if id := calls[0].verify(t); id != a.ID {
		t.Fatalf("webhook X-UMS-Id %q, want %q", id, a.ID)
	}
	var posted struct {
		ID      string `json:"id"`
		Content struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(calls[0].Body, &posted); err != nil || posted.ID != a.ID || posted.Content.Text != "hello" {
		t.Fatalf("webhook body %s: %v", calls[0].Body, err)
	}
	if got := strings.Join(eventsOf(t, events, a.ID, "sent"), ","); got != "queued,sending,sent" {
		t.Fatalf("AMQP events %s", got)
	}
	var mqttGot []string
	for len(mqttGot) < 3 {
		p := mqttRecv5(t, mqttEvents)
		var ev event
		json.Unmarshal(p.Payload, &ev)
		if ev.ID != a.ID {
			continue
		}
		if p.Topic != "ums/events/notification/"+ev.Status+"/webhook" {
			t.Fatalf("MQTT event topic %q", p.Topic)
		}
		mqttGot = append(mqttGot, ev.Status)
	}
	if got := strings.Join(mqttGot, ","); got != "queued,sending,sent" {
		t.Fatalf("MQTT events %s", got)
	}
	r := waitStatus(t, e.b, a.ID, "sent")
	if len(r.Attempts) != 1 || r.Attempts[0].Status != "sent" || r.Attempts[0].Channel != "webhook" {
		t.Fatalf("history %+v", r)
	}

	// AMQP → email, confirmed.
	conn, err := amqp.Dial(e.b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := confirmChannel(t, conn)
	publishConfirmed(t, ch, "ums.notify", "email", amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/json",
		Body: []byte(`{"to":{"email":"kim@example.com"},"content":{"subject":"Hi","text":"plain","html":"<b>rich</b>"}}`)})
	mails := e.smtp.Wait(t, 1, 20*time.Second)
	if m := mails[0]; m.Subject != "Hi" || strings.TrimSpace(m.Text) != "plain" || !strings.Contains(m.HTML, "<b>rich</b>") ||
		len(m.To) != 1 || m.To[0] != "kim@example.com" || m.Header.Get("Message-Id") == "" {
		t.Fatalf("mail %+v", m)
	}

	// MQTT → email, on topic ums/notify/email.
	mqttPub5(t, mc, &paho.Publish{Topic: "ums/notify/email", QoS: 1,
		Payload: []byte(`{"to":{"email":"lee@example.com"},"content":{"text":"from a device"}}`)})
	mails = e.smtp.Wait(t, 2, 20*time.Second)
	if m := mails[1]; m.To[0] != "lee@example.com" || strings.TrimSpace(m.Text) != "from a device" {
		t.Fatalf("mail %+v", m)
	}
}

// Invalid notifications are refused with the field and the reason over
// HTTP, and dead-lettered with the reason when published as messages.
func TestNotifyInvalid(t *testing.T) {
	e := startNotify(t)
	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"malformed", `{"channel":`, 400, ""},
		{"no channel", `{"to":{"email":"a@example.com"},"content":{"text":"x"}}`, 422, "channel"},
		{"unknown channel", `{"channel":"fax","to":{},"content":{"text":"x"}}`, 422, "channel"},
		{"not configured", `{"channel":"sms","to":{"phone":"+821012345678"},"content":{"text":"x"}}`, 422, "channel"},
		{"bad email", `{"channel":"email","to":{"email":"not an address"},"content":{"text":"x"}}`, 422, "to.email"},
		{"missing address", `{"channels":["webhook","email"],"to":{"webhook":"http://127.0.0.1:1/x"},"content":{"text":"x"}}`, 422, "to.email"},
		{"priority", `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"priority":10}`, 422, "priority"},
		{"class", `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"class":"spam"}`, 422, "class"},
		{"send_at", `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"send_at":"tomorrow"}`, 422, "send_at"},
		{"template", `{"channel":"email","to":{"email":"a@example.com"},"template":"nope"}`, 422, "template"},
		{"unknown field", `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"x"},"colour":"red"}`, 422, "colour"},
		{"no content", `{"channel":"email","to":{"email":"a@example.com"}}`, 422, "content"},
	} {
		var a accepted
		if got := apiCall(t, e.b, "POST", "/api/v1/notifications", c.body, nil, &a); got != c.status || a.Field != c.field {
			t.Errorf("%s: %d field %q (%+v), want %d field %q", c.name, got, a.Field, a, c.status, c.field)
		}
	}
	big := `{"channel":"email","to":{"email":"a@example.com"},"content":{"text":"` + strings.Repeat("x", 1<<20) + `"}}`
	if got := apiCall(t, e.b, "POST", "/api/v1/notifications", big, nil, nil); got != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB body: %d, want 413", got)
	}
	// Nothing was queued by any of them.
	if n := len(e.smtp.Mails()) + len(e.hook.received()); n != 0 {
		t.Fatalf("%d sends after invalid submissions", n)
	}

	conn, err := amqp.Dial(e.b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := confirmChannel(t, conn)
	publishConfirmed(t, ch, "ums.notify", "email", amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(`{"to": nope}`)})
	publishConfirmed(t, ch, "ums.notify", "email", amqp.Publishing{DeliveryMode: amqp.Persistent,
		Body: []byte(`{"to":{"email":"bad"},"content":{"text":"x"}}`)})
	for i, want := range []string{"malformed JSON", "to.email: "} {
		var d amqp.Delivery
		deadline := time.Now().Add(10 * time.Second)
		for {
			var ok bool
			var err error
			d, ok, err = ch.Get("ums.notify.invalid", true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("invalid notification %d not dead-lettered", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		reason, _ := d.Headers["x-ums-error"].(string)
		if !strings.Contains(reason, want) {
			t.Fatalf("x-ums-error %q, want %q", reason, want)
		}
	}
}

// The same idempotency key gives one send and the first id, also after a
// restart.
func TestNotifyDeduplication(t *testing.T) {
	dir := t.TempDir()
	e := startNotify(t, testutil.WithDataDir(dir))
	n := webhookNote(e.hook.URL, map[string]any{"tenant": "acme"})
	first := submit(t, e.b, n, http.StatusAccepted, map[string]string{"Idempotency-Key": "order-1"})
	again := submit(t, e.b, n, http.StatusOK, map[string]string{"Idempotency-Key": "order-1"})
	if !again.Deduplicated || again.ID != first.ID {
		t.Fatalf("second answer %+v, first %+v", again, first)
	}
	// The key is scoped by tenant; in the body it works the same.
	other := webhookNote(e.hook.URL, map[string]any{"tenant": "globex", "idempotency_key": "order-1"})
	if a := submit(t, e.b, other, http.StatusAccepted, nil); a.ID == first.ID {
		t.Fatal("another tenant's key deduplicated")
	}
	waitStatus(t, e.b, first.ID, "sent")
	e.hook.wait(t, 2)
	e.b.Stop()

	b2 := testutil.StartBroker(t, testutil.WithDataDir(dir), testutil.WithProtocols(testutil.HTTP), testutil.WithConfig(func(c *config.Config) {
		c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = hookSecret, true, true
		c.NotifyWorkers = "webhook=1"
	}))
	after := submit(t, b2, n, http.StatusOK, map[string]string{"Idempotency-Key": "order-1"})
	if !after.Deduplicated || after.ID != first.ID {
		t.Fatalf("after a restart: %+v", after)
	}
	// A marker sent after it: once it arrived, a duplicate would have too
	// (one worker, in order).
	marker := submit(t, b2, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	calls := e.hook.wait(t, 3)
	if got := len(calls); got != 3 || calls[2].Header.Get("X-UMS-Id") != marker.ID {
		t.Fatalf("%d webhook calls, want 3 ending with the marker", got)
	}
}
