package test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"

	"github.com/unifiedms/ums/internal/testutil"
)

// A notification SENT over STOMP to /exchange/ums.notify/<channel> with a
// receipt is accepted like one over AMQP or MQTT: the RECEIPT comes once
// it is stored, the webhook is called, results can be subscribed to on
// /exchange/ums.events/notification.#, and an invalid one is
// dead-lettered with its reason.
func TestStompNotify(t *testing.T) {
	e := startNotify(t, testutil.WithProtocols(testutil.STOMP))
	c := stompDial(t, e.b.STOMPAddr)
	events := stompSubscribe(t, c, "/exchange/ums.events/notification.#", stomp.AckAuto)

	note, err := json.Marshal(webhookNote(e.hook.URL+"/stomp", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("/exchange/ums.notify/webhook", "application/json", note, stomp.SendOpt.Receipt,
		stomp.SendOpt.Header("persistent", "true")); err != nil {
		t.Fatalf("SEND with receipt: %v", err)
	}
	call := e.hook.wait(t, 1)[0]
	id := call.verify(t)
	if id == "" {
		t.Fatal("webhook call without a notification id")
	}
	var statuses []string
	for len(statuses) == 0 || statuses[len(statuses)-1] != "sent" {
		m := stompRecv(t, events)
		var ev event
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			t.Fatalf("event %q: %v", m.Body, err)
		}
		if ev.ID != id {
			continue
		}
		if m.Destination != "/exchange/ums.events/notification."+ev.Status+".webhook" || m.Header.Get("correlation-id") != id {
			t.Fatalf("event destination %q correlation-id %q", m.Destination, m.Header.Get("correlation-id"))
		}
		statuses = append(statuses, ev.Status)
	}
	if got := strings.Join(statuses, ","); got != "queued,sending,sent" {
		t.Fatalf("events %s", got)
	}
	waitStatus(t, e.b, id, "sent")

	// Invalid: dead-lettered with the reason.
	if err := c.Send("/exchange/ums.notify/webhook", "application/json", []byte(`{"to": nope}`), stomp.SendOpt.Receipt,
		stomp.SendOpt.Header("persistent", "true")); err != nil {
		t.Fatal(err)
	}
	dead := stompSubscribe(t, c, "/amq/queue/ums.notify.invalid", stomp.AckClientIndividual)
	m := stompRecv(t, dead)
	if !strings.Contains(m.Header.Get("x-ums-error"), "malformed JSON") {
		t.Fatalf("dead letter headers %v", m.Header)
	}
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
}
