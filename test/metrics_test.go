package test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// metricNames are the names /metrics must always export.
var metricNames = []string{
	"rabbitmq_identity_info",
	"rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers", "rabbitmq_queues",
	"rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages", "rabbitmq_queue_consumers",
	"rabbitmq_global_messages_received_total", "rabbitmq_global_messages_delivered_total",
	"rabbitmq_global_messages_acknowledged_total", "rabbitmq_global_messages_redelivered_total",
	"rabbitmq_global_messages_confirmed_total",
	"rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark",
	"ums_mqtt_sessions", "ums_stomp_sessions", "ums_connections", "ums_faults",
	"ums_store_fsync_seconds", "ums_store_batch_records",
	"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "go_memstats_alloc_bytes",
}

// scrape fetches url without credentials and parses the text format.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels (name=value pairs): a gauge's or counter's value, or a
// histogram's sample count. ok is false when there is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func wantValue(t testing.TB, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	if v, ok := value(fams, name, labels...); !ok || v != want {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, v, ok, want)
	}
}

func wantAtLeast(t testing.TB, fams map[string]*dto.MetricFamily, least float64, name string, labels ...string) {
	t.Helper()
	if v, ok := value(fams, name, labels...); !ok || v < least {
		t.Errorf("%s%v = %v (present %v), want at least %v", name, labels, v, ok, least)
	}
}

// metricsTraffic publishes n persistent messages with confirms to a new
// durable queue, gets two and acknowledges one; the connection stays open.
func metricsTraffic(t *testing.T, url, queue string, n int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("confirm %d: %v %v", i, ok, err)
		}
	}
	var first amqp.Delivery
	for i := range 2 {
		d, ok, err := ch.Get(queue, false)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
		if i == 0 {
			first = d
		}
	}
	if err := first.Ack(false); err != nil {
		t.Fatal(err)
	}
	// The ack has no answer: a round trip orders it before the scrape.
	if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsAMQP(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP))
	const n = 5
	queues, _ := value(scrape(t, b.HTTPURL+"/metrics"), "rabbitmq_queues")
	metricsTraffic(t, b.AMQPURL, "metrics-q", n)

	fams := scrape(t, b.HTTPURL+"/metrics")
	for _, name := range metricNames {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	// Totals by default: no queue label.
	for _, m := range fams["rabbitmq_queue_messages"].GetMetric() {
		if len(m.GetLabel()) != 0 {
			t.Errorf("rabbitmq_queue_messages has labels %v without --metrics-per-queue", m.GetLabel())
		}
	}
	wantValue(t, fams, queues+1, "rabbitmq_queues")
	wantValue(t, fams, 1, "rabbitmq_connections")
	wantValue(t, fams, 1, "rabbitmq_channels")
	wantValue(t, fams, 1, "ums_connections", "protocol", "amqp")
	wantValue(t, fams, 0, "ums_mqtt_sessions")
	wantValue(t, fams, n-2, "rabbitmq_queue_messages_ready")
	wantValue(t, fams, 1, "rabbitmq_queue_messages_unacked")
	wantValue(t, fams, n-1, "rabbitmq_queue_messages")
	wantValue(t, fams, n, "rabbitmq_global_messages_received_total")
	wantValue(t, fams, n, "rabbitmq_global_messages_confirmed_total")
	wantValue(t, fams, 2, "rabbitmq_global_messages_delivered_total")
	wantValue(t, fams, 1, "rabbitmq_global_messages_acknowledged_total")
	wantValue(t, fams, 0, "rabbitmq_global_messages_redelivered_total")
	wantValue(t, fams, 0, "rabbitmq_alarms_memory_used_watermark")
	// Persistent messages on a durable queue were fsynced before their
	// confirms.
	wantAtLeast(t, fams, 1, "ums_store_fsync_seconds")
	wantAtLeast(t, fams, 1, "ums_store_batch_records")

	// A requeued message delivered again counts as redelivered.
	conn, err := amqp.Dial(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get("metrics-q", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if d, ok, err = ch.Get("metrics-q", false); err != nil || !ok || !d.Redelivered {
		t.Fatalf("get again: %v %v redelivered %v", ok, err, d.Redelivered)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("metrics-q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, b.HTTPURL+"/metrics")
	wantValue(t, fams, 4, "rabbitmq_global_messages_delivered_total")
	wantValue(t, fams, 1, "rabbitmq_global_messages_redelivered_total")
	wantValue(t, fams, 2, "rabbitmq_global_messages_acknowledged_total")
	wantValue(t, fams, n-2, "rabbitmq_queue_messages")
	wantValue(t, fams, 2, "rabbitmq_connections")

	b.Core.SetAlarm("memory", "memory above the high watermark", true)
	fams = scrape(t, b.HTTPURL+"/metrics")
	wantValue(t, fams, 1, "rabbitmq_alarms_memory_used_watermark")
	wantValue(t, fams, 0, "rabbitmq_alarms_free_disk_space_watermark")
	b.Core.SetAlarm("memory", "", false)
}

func TestMetricsPerQueueOwnListener(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) {
			c.MetricsListen = "127.0.0.1:0"
			c.MetricsPerQueue = true
		}))
	metricsTraffic(t, b.AMQPURL, "per-q", 3)
	addr := b.Addr("metrics")
	if addr == nil {
		t.Fatal("no metrics listener")
	}
	fams := scrape(t, "http://"+addr.String()+"/metrics")
	wantValue(t, fams, 1, "rabbitmq_queue_messages_ready", "vhost", "/", "queue", "per-q")
	wantValue(t, fams, 1, "rabbitmq_queue_messages_unacked", "vhost", "/", "queue", "per-q")
	wantValue(t, fams, 2, "rabbitmq_queue_messages", "vhost", "/", "queue", "per-q")
	wantValue(t, fams, 0, "rabbitmq_queue_consumers", "vhost", "/", "queue", "per-q")

	// Moved: the HTTP listener has no /metrics any more.
	resp, err := http.Get(b.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the HTTP listener with --metrics-listen: %s", resp.Status)
	}
}

func TestMetricsNotifications(t *testing.T) {
	e := startNotify(t)
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, a.ID, "sent")

	fams := scrape(t, e.b.HTTPURL+"/metrics")
	wantAtLeast(t, fams, 1, "ums_notifications_total", "channel", "webhook", "status", "sent")
	wantAtLeast(t, fams, 1, "ums_notifications_total", "channel", "webhook", "status", "queued")
	wantValue(t, fams, 1, "ums_notification_send_seconds", "channel", "webhook")
	wantValue(t, fams, 1, "ums_notification_sends_total", "channel", "webhook", "result", "ok")
}

// TestMetricsProtocolSessions: MQTT and STOMP clients are counted apart,
// and all of them in rabbitmq_connections.
func TestMetricsProtocolSessions(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.STOMP, testutil.HTTP))
	mqtt5(t, b.Broker, "metrics-1", true, 0)
	mqtt5(t, b.Broker, "metrics-2", true, 0)
	stompDial(t, b.STOMPAddr)
	fams := scrape(t, b.HTTPURL+"/metrics")
	wantValue(t, fams, 2, "ums_mqtt_sessions")
	wantValue(t, fams, 1, "ums_stomp_sessions")
	wantValue(t, fams, 2, "ums_connections", "protocol", "mqtt")
	wantValue(t, fams, 0, "ums_connections", "protocol", "amqp")
	wantValue(t, fams, 3, "rabbitmq_connections")
}

// --pprof-listen serves Go's profiler on a listener of its own; off by
// default.
func TestPprofListener(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) { c.PprofListen = "127.0.0.1:0" }))
	resp, err := http.Get("http://" + b.Addr("pprof").String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("GET /debug/pprof/goroutine: %s %.200s", resp.Status, body)
	}
	// Not on the management listener, and not on by default.
	resp, err = http.Get(b.HTTPURL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the HTTP listener: %s", resp.Status)
	}
	off := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP))
	if a := off.Addr("pprof"); a != nil {
		t.Fatalf("a profiler listener at %v by default", a)
	}
}
