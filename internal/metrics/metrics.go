// Package metrics serves the broker's metrics in the Prometheus text
// format. Names follow RabbitMQ's rabbitmq_prometheus plugin where it has
// the same metric, so its Grafana dashboards work with few edits; the
// rest are prefixed ums_.
//
// Gauges (connections, queues, messages, alarms) are computed when
// Prometheus scrapes, from what the core already tracks: nothing polls in
// the background and the message path does no extra work for them.
// Counters and histograms fed by the store and the notification pipeline
// are client_golang's, which update with atomics. The package takes no
// lock of its own.
package metrics

import (
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unifiedms/ums/core"
)

// Metrics is a registry of the broker's metrics. Its Observe and
// Notification methods may be called from any goroutine.
type Metrics struct {
	reg           *prometheus.Registry
	syncSeconds   prometheus.Histogram
	syncRecords   prometheus.Histogram
	notifications *prometheus.CounterVec
	sendSeconds   *prometheus.HistogramVec
	sends         *prometheus.CounterVec
	syncs         atomic.Uint64 // ObserveSync calls, for SyncTotals
	records       atomic.Uint64 // the records they reported
}

// New returns a registry holding the Go runtime and process collectors and
// the store and notification metrics. Add the core's with WatchBroker.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ums_store_fsync_seconds", Help: "Time to write and fsync one batch of the message store.",
			// 100µs (a fast NVMe drive) to 3.3s (a stalled disk).
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		syncRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ums_store_batch_records", Help: "Records written by one fsync of the message store (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ums_notifications_total", Help: "Notification status events, by channel and status.",
		}, []string{"channel", "status"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ums_notification_send_seconds", Help: "Time a notification provider took to answer one send.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5ms to 10s
		}, []string{"channel", "provider"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ums_notification_sends_total", Help: "Calls of notification providers, by channel, provider and result (ok, error).",
		}, []string{"channel", "provider", "result"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.syncSeconds, m.syncRecords, m.notifications, m.sendSeconds, m.sends,
	)
	return m
}

// WatchBroker adds the core's gauges and counters, read from b at each
// scrape. With perQueue the queue metrics have one series per queue
// (labels vhost and queue), which costs a series per queue in Prometheus;
// otherwise they are totals, as rabbitmq_prometheus aggregates them by
// default.
func (m *Metrics) WatchBroker(b *core.Broker, perQueue bool) {
	node, _ := os.Hostname()
	m.reg.MustRegister(newCoreCollector(b, perQueue, "ums@"+node))
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveSync records one write and fsync of the message store; it fits
// store.Options.OnSync.
func (m *Metrics) ObserveSync(d time.Duration, records int) {
	m.syncSeconds.Observe(d.Seconds())
	m.syncRecords.Observe(float64(records))
	m.syncs.Add(1)
	m.records.Add(uint64(records))
}

// SyncTotals returns the message store's batches (fsyncs) so far and the
// records they held.
func (m *Metrics) SyncTotals() (syncs, records uint64) {
	return m.syncs.Load(), m.records.Load()
}

// NotificationEvent counts one notification status event; it fits
// pipeline.Options.OnEvent.
func (m *Metrics) NotificationEvent(channel, status string) {
	m.notifications.WithLabelValues(channel, status).Inc()
}

// NotificationSend records one provider call; it fits
// pipeline.Options.OnSend. A channel with a single provider reports
// provider "default".
func (m *Metrics) NotificationSend(channel, provider string, d time.Duration, err error) {
	if provider == "" {
		provider = "default"
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.sendSeconds.WithLabelValues(channel, provider).Observe(d.Seconds())
	m.sends.WithLabelValues(channel, provider, result).Inc()
}

// protocolOf maps ConnInfo.Protocol ("AMQP 0-9-1", "MQTT 5", "STOMP 1.2",
// "HTTP") to a short label.
func protocolOf(p string) string {
	name, _, _ := strings.Cut(p, " ")
	return strings.ToLower(name)
}
