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
	"github.com/unifiedms/ums/core/auth"
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
	if !after.Deduplicated || after.ID != first.ID || after.Status != "sent" {
		t.Fatalf("after a restart: %+v", after)
	}
	// Its history is kept across the restart too.
	if r := waitStatus(t, b2, first.ID, "sent"); len(r.Attempts) != 1 || r.Attempts[0].Status != "sent" {
		t.Fatalf("history after a restart: %+v", r)
	}
	// A marker sent after it: once it arrived, a duplicate would have too
	// (one worker, in order).
	marker := submit(t, b2, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	calls := e.hook.wait(t, 3)
	if got := len(calls); got != 3 || calls[2].Header.Get("X-UMS-Id") != marker.ID {
		t.Fatalf("%d webhook calls, want 3 ending with the marker", got)
	}
}

// Templates are stored with per-locale variants, survive a restart, are
// validated against the variables they use, and render per locale.
func TestNotifyTemplates(t *testing.T) {
	dir := t.TempDir()
	e := startNotify(t, testutil.WithDataDir(dir))
	tpl := map[string]any{"default_locale": "en", "locales": map[string]any{
		"en": map[string]any{"subject": "Your code {{.code}}", "text": "Code {{.code}}", "html": "<p>Hi {{.name}}, {{.code}}</p>"},
		"ko": map[string]any{"subject": "인증번호 {{.code}}", "text": "{{.name}}님 인증번호 {{.code}}"},
	}}
	if got := apiCall(t, e.b, "PUT", "/api/v1/templates/otp", tpl, nil, nil); got != http.StatusCreated {
		t.Fatalf("PUT template: %d", got)
	}
	var bad accepted
	if got := apiCall(t, e.b, "PUT", "/api/v1/templates/broken", map[string]any{"locales": map[string]any{
		"en": map[string]any{"text": "{{.code"}}}, nil, &bad); got != http.StatusUnprocessableEntity || bad.Field != "locales.en.text" {
		t.Fatalf("PUT broken template: %d %+v", got, bad)
	}
	note := func(locale string, data map[string]any) map[string]any {
		return map[string]any{"channel": "email", "to": map[string]any{"email": "kim@example.com"},
			"template": "otp", "locale": locale, "data": data}
	}
	missing := submit(t, e.b, note("ko", map[string]any{"code": "1"}), http.StatusUnprocessableEntity, nil)
	if missing.Field != "data.name" {
		t.Fatalf("missing variable refused on %q", missing.Field)
	}
	submit(t, e.b, note("ko", map[string]any{"code": "482913", "name": "민수"}), http.StatusAccepted, nil)
	m := e.smtp.Wait(t, 1, 10*time.Second)[0]
	if m.Subject != "인증번호 482913" || strings.TrimSpace(m.Text) != "민수님 인증번호 482913" {
		t.Fatalf("ko mail: %q / %q", m.Subject, m.Text)
	}
	e.b.Stop()
	e2 := startNotify(t, testutil.WithDataDir(dir))
	submit(t, e2.b, note("", map[string]any{"code": "7", "name": "<Ann>"}), http.StatusAccepted, nil)
	m = e2.smtp.Wait(t, 1, 10*time.Second)[0]
	if m.Subject != "Your code 7" || !strings.Contains(m.HTML, "Hi &lt;Ann&gt;, 7") {
		t.Fatalf("en mail after a restart: %q / %q", m.Subject, m.HTML)
	}
	if got := apiCall(t, e2.b, "DELETE", "/api/v1/templates/otp", nil, nil, nil); got != http.StatusNoContent {
		t.Fatalf("DELETE: %d", got)
	}
	if got := apiCall(t, e2.b, "GET", "/api/v1/templates/otp", nil, nil, nil); got != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", got)
	}
}

// A batch answers each notification on its own, in order; credentials and
// permissions are checked.
func TestNotifyBatchAndAuth(t *testing.T) {
	e := startNotify(t)
	var out struct {
		Results []struct {
			Code  int    `json:"code"`
			ID    string `json:"id"`
			Field string `json:"field"`
		} `json:"results"`
	}
	batch := map[string]any{"notifications": []any{
		webhookNote(e.hook.URL+"/1", nil),
		map[string]any{"channel": "email", "to": map[string]any{"email": "nope"}, "content": map[string]any{"text": "x"}},
		webhookNote(e.hook.URL+"/3", nil),
		map[string]any{"channel": "webhook", "to": map[string]any{"webhook": e.hook.URL + "/4"}, "colour": "red"},
	}}
	if got := apiCall(t, e.b, "POST", "/api/v1/notifications/batch", batch, nil, &out); got != http.StatusOK || len(out.Results) != 4 {
		t.Fatalf("batch: %d %+v", got, out)
	}
	if r := out.Results; r[0].Code != 202 || r[0].ID == "" || r[1].Code != 422 || r[1].Field != "to.email" || r[2].Code != 202 ||
		r[3].Code != 422 || r[3].Field != "colour" {
		t.Fatalf("results %+v", r)
	}
	calls := e.hook.wait(t, 2)
	paths := map[string]bool{}
	for _, c := range calls {
		paths[c.Header.Get("X-UMS-Id")] = true
	}
	if !paths[out.Results[0].ID] || !paths[out.Results[2].ID] {
		t.Fatal("the batch's notifications were not both sent")
	}

	req, _ := http.NewRequest("POST", e.b.HTTPURL+"/api/v1/notifications", strings.NewReader(`{}`))
	req.SetBasicAuth("guest", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad password: %d", resp.StatusCode)
	}
	// A user without write permission on ums.notify is refused.
	if err := e.b.Users.PutUser("reader", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Users.SetPermission("reader", "/", auth.Permission{Configure: "", Write: "^amq\\..*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("POST", e.b.HTTPURL+"/api/v1/notifications", strings.NewReader(`{}`))
	req.SetBasicAuth("reader", "pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no write permission: %d", resp.StatusCode)
	}
}

// A vhost added while the server runs (a definitions import) gets the
// notification exchanges and queues at once, and takes submissions.
func TestNotifyNewVhost(t *testing.T) {
	e := startNotify(t)
	defs := map[string]any{"vhosts": []any{map[string]any{"name": "shop"}}, "permissions": []any{
		map[string]any{"user": "guest", "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"}}}
	if got := apiCall(t, e.b, "POST", "/api/definitions", defs, nil, nil); got/100 != 2 {
		t.Fatalf("definitions import: %d", got)
	}
	for _, path := range []string{"/api/exchanges/shop/ums.notify", "/api/exchanges/shop/ums.events", "/api/queues/shop/ums.notify.webhook"} {
		if got := apiCall(t, e.b, "GET", path, nil, nil, nil); got != http.StatusOK {
			t.Fatalf("GET %s: %d", path, got)
		}
	}
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, map[string]string{"X-UMS-Vhost": "shop"})
	if id := e.hook.wait(t, 1)[0].Header.Get("X-UMS-Id"); id != a.ID {
		t.Fatalf("sent %s, want %s", id, a.ID)
	}
}

// Events go to whoever subscribes, also after notifications went by with
// nobody listening, and after ums.events was deleted and declared again.
func TestNotifyEventsForLateSubscribers(t *testing.T) {
	e := startNotify(t)
	first := submit(t, e.b, webhookNote(e.hook.URL+"/hook", nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, first.ID, "sent")

	conn, err := amqp.Dial(e.b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := newChannel(t, conn)
	if err := ch.ExchangeDelete("ums.events", false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("ums.events", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	second := submit(t, e.b, webhookNote(e.hook.URL+"/hook", nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, second.ID, "sent")

	events := eventQueue(t, e.b.AMQPURL)
	a := submit(t, e.b, webhookNote(e.hook.URL+"/hook", nil), http.StatusAccepted, nil)
	if got := strings.Join(eventsOf(t, events, a.ID, "sent"), ","); got != "queued,sending,sent" {
		t.Fatalf("events of a notification submitted after the subscriber bound: %s", got)
	}
}

// A batch claims its idempotency keys together, on the embedded guards and
// on Redis: a key held before answers 200 with the first id, a key given
// twice in the batch is sent once, an invalid notification claims nothing,
// and the answers stay in order.
func TestNotifyBatchDeduplication(t *testing.T) {
	forEachGuards(t, func(t *testing.T, redisURL string) {
		e := startNotify(t, testutil.WithConfig(func(c *config.Config) {
			c.RedisURL = redisURL
			c.NotifyWorkers = "webhook=1" // in order, so the marker comes last
		}))
		held := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, map[string]string{"Idempotency-Key": "held"})
		note := func(key string) map[string]any {
			return webhookNote(e.hook.URL, map[string]any{"idempotency_key": key})
		}
		invalid := note("b")
		invalid["to"] = map[string]any{"webhook": "not a url"}
		var out struct {
			Results []struct {
				Code         int    `json:"code"`
				ID           string `json:"id"`
				Status       string `json:"status"`
				Deduplicated bool   `json:"deduplicated"`
			} `json:"results"`
		}
		batch := map[string]any{"notifications": []any{note("a"), note("held"), note("a"), invalid, note("b")}}
		if got := apiCall(t, e.b, "POST", "/api/v1/notifications/batch", batch, nil, &out); got != http.StatusOK || len(out.Results) != 5 {
			t.Fatalf("batch: %d %+v", got, out)
		}
		r := out.Results
		if r[0].Code != 202 || r[0].ID == "" || r[0].Deduplicated ||
			r[1].Code != 200 || r[1].ID != held.ID || !r[1].Deduplicated ||
			r[2].Code != 200 || r[2].ID != r[0].ID || !r[2].Deduplicated || r[2].Status == "" || r[2].Status == "accepted" ||
			r[3].Code != 422 ||
			r[4].Code != 202 || r[4].ID == "" || r[4].ID == r[0].ID {
			t.Fatalf("results %+v (held %s)", r, held.ID)
		}
		marker := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
		calls := e.hook.wait(t, 4)
		if len(calls) != 4 || calls[3].Header.Get("X-UMS-Id") != marker.ID {
			t.Fatalf("%d webhook calls, want 4 ending with the marker", len(calls))
		}
		sent := map[string]bool{}
		for _, c := range calls[:3] {
			sent[c.Header.Get("X-UMS-Id")] = true
		}
		if !sent[held.ID] || !sent[r[0].ID] || !sent[r[4].ID] {
			t.Fatalf("sent %v, want %s, %s and %s once each", sent, held.ID, r[0].ID, r[4].ID)
		}
	})
}

// A burst published over AMQP is taken from the intake queue in batches:
// each idempotency key is sent once however many times it comes (also
// twice in one batch), each invalid notification is dead-lettered, and
// every message is settled; on the embedded guards and on Redis.
func TestNotifyIntakeBurst(t *testing.T) {
	forEachGuards(t, func(t *testing.T, redisURL string) {
		e := startNotify(t, testutil.WithConfig(func(c *config.Config) { c.RedisURL = redisURL }))
		conn, err := amqp.Dial(e.b.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch := confirmChannel(t, conn)
		const burst = 300
		keys, invalid := map[string]bool{}, 0
		var dcs []*amqp.DeferredConfirmation
		for i := range burst {
			key := "k" + itoa(i/2) // two messages for each key
			body, _ := json.Marshal(webhookNote(e.hook.URL, nil))
			if i%10 == 9 {
				body = []byte(`{"channel":"webhook","to":{"webhook":"not a url"},"content":{"text":"x"}}`)
				invalid++
			} else {
				keys[key] = true
			}
			dc, err := ch.PublishWithDeferredConfirm("ums.notify", "webhook", false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, Body: body, Headers: amqp.Table{"idempotency-key": key}})
			if err != nil {
				t.Fatal(err)
			}
			dcs = append(dcs, dc)
		}
		for i, dc := range dcs {
			if !dc.Wait() {
				t.Fatalf("publish %d nacked", i)
			}
		}
		// Settled: nothing left in the intake queue nor on its way to
		// the webhook, and the invalid ones dead-lettered.
		deadline := time.Now().Add(20 * time.Second)
		for {
			ir, iu := queueDepth(t, e.b, "ums.notify.intake")
			wr, wu := queueDepth(t, e.b, "ums.notify.webhook")
			dr, _ := queueDepth(t, e.b, "ums.notify.invalid")
			if ir+iu+wr+wu == 0 && dr == invalid && len(e.hook.received()) >= len(keys) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not settled: intake %d+%d, webhook %d+%d, invalid %d of %d, %d sent of %d",
					ir, iu, wr, wu, dr, invalid, len(e.hook.received()), len(keys))
			}
			time.Sleep(20 * time.Millisecond)
		}
		calls := e.hook.received()
		ids := map[string]bool{}
		for _, c := range calls {
			ids[c.Header.Get("X-UMS-Id")] = true
		}
		if len(calls) != len(keys) || len(ids) != len(keys) {
			t.Fatalf("%d sends of %d notifications for %d keys", len(calls), len(ids), len(keys))
		}
	})
}
