package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unifiedms/ums/core"
)

func TestProtocolOf(t *testing.T) {
	for in, want := range map[string]string{"AMQP 0-9-1": "amqp", "MQTT 5.0": "mqtt", "MQTT 3.1.1": "mqtt",
		"STOMP 1.2": "stomp", "HTTP": "http", "internal": "internal"} {
		if got := protocolOf(in); got != want {
			t.Errorf("protocolOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotificationSend(t *testing.T) {
	m := New()
	m.NotificationSend("sms", "", 30*time.Millisecond, nil)
	m.NotificationSend("sms", "twilio", time.Second, errors.New("503"))
	if got := testutil.ToFloat64(m.sends.WithLabelValues("sms", "default", "ok")); got != 1 {
		t.Errorf("sends ok = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.sends.WithLabelValues("sms", "twilio", "error")); got != 1 {
		t.Errorf("sends error = %v, want 1", got)
	}
	m.NotificationEvent("sms", "sent")
	if got := testutil.ToFloat64(m.notifications.WithLabelValues("sms", "sent")); got != 1 {
		t.Errorf("notifications = %v, want 1", got)
	}
}

// TestScrapeEmptyBroker: a broker with no client still exports every
// core metric, with zeros, and the registry is consistent (Describe
// matches Collect).
func TestScrapeEmptyBroker(t *testing.T) {
	m := New()
	m.WatchBroker(core.NewBroker(), false)
	m.ObserveSync(2*time.Millisecond, 10)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, line := range []string{"rabbitmq_queues 0", "rabbitmq_connections 0", "rabbitmq_queue_messages 0",
		"ums_store_batch_records_count 1", `ums_connections{protocol="stomp"} 0`} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("no line %q in:\n%s", line, body)
		}
	}
}
