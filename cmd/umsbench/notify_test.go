package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// startNotifyBroker runs a broker whose webhook channel may reach the
// local sink.
func startNotifyBroker(t *testing.T) *testutil.Broker {
	return testutil.StartBroker(t,
		testutil.WithProtocols(testutil.AMQP, testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) {
			c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = "umsbench-test", true, true
		}))
}

// Every way of submitting delivers each notification exactly once.
func TestNotifyDeliversEveryNotificationOnce(t *testing.T) {
	b := startNotifyBroker(t)
	httpURL := strings.Replace(b.HTTPURL, "http://", "http://guest:guest@", 1)
	for _, args := range [][]string{
		{"-via", "http", "-c", "8", "-n", "300"},
		{"-via", "http", "-c", "2", "-batch", "100", "-n", "400", "-dedup"},
		{"-via", "amqp", "-c", "2", "-confirm", "32", "-n", "300", "-dedup"},
		{"-via", "http", "-c", "4", "-n", "100", "-delay", "5ms", "-rate", "500"},
	} {
		var out bytes.Buffer
		args = append([]string{"notify", "-http-url", httpURL, "-amqp-url", b.AMQPURL, "-timeout", "20s"}, args...)
		if code := run(args, &out, &out); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, out.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var r struct {
			Submitted, Delivered, Lost, Duplicated, Refused, Deduplicated, Stray int64
			Latency                                                              histJSON
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatalf("%q: %v in %q", args, err, out.String())
		}
		want := r.Submitted
		if want == 0 || r.Delivered != want || r.Lost != 0 || r.Duplicated != 0 || r.Refused != 0 ||
			r.Deduplicated != 0 || r.Latency.Samples != uint64(want) || r.Latency.Max <= 0 {
			t.Errorf("%q: %s", args, out.String())
		}
		t.Logf("%s", lines[0])
	}
}

// A run submits for -duration when -n is 0 and stops by itself.
func TestNotifyForDuration(t *testing.T) {
	b := startNotifyBroker(t)
	var out bytes.Buffer
	start := time.Now()
	code := run([]string{"notify", "-http-url", strings.Replace(b.HTTPURL, "//", "//guest:guest@", 1),
		"-c", "2", "-n", "0", "-duration", "300ms"}, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "lost 0, duplicated 0") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestNotifyStamp(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	body := []byte(`{"id":"x","content":{"text":"` + string(appendStamp(nil, "ab12", 42, sent)) + `"}}`)
	if got, ok := readStamp(body, "ab12"); !ok || !got.Equal(sent) {
		t.Fatalf("readStamp = %v, %v", got, ok)
	}
	if _, ok := readStamp(body, "ab1"); ok {
		t.Fatal("another run's stamp was read")
	}
}

// BenchmarkNotify runs the notify mode against a broker in this process,
// so that `go test -bench Notify -cpuprofile` profiles the pipeline (and
// the sink and clients, which pprof tells apart by package). Guards are
// embedded unless UMSBENCH_REDIS_URL names a Redis.
func BenchmarkNotify(b *testing.B) {
	for _, c := range []struct {
		name string
		o    notifyOptions
	}{
		{"http-batch", notifyOptions{via: "http", clients: 16, batch: 100}},
		{"http-single", notifyOptions{via: "http", clients: 32}},
		{"amqp", notifyOptions{via: "amqp", clients: 4, confirm: 256}},
	} {
		b.Run(c.name, func(b *testing.B) {
			br := testutil.StartBroker(b,
				testutil.WithProtocols(testutil.AMQP, testutil.HTTP),
				testutil.WithConfig(func(cfg *config.Config) {
					cfg.WebhookSecret, cfg.WebhookAllowHTTP, cfg.WebhookAllowPrivate = "umsbench-test", true, true
					cfg.NotifyWorkers = "webhook=64"
					cfg.NotifyRateLimit, cfg.NotifyRecipientLimit = "webhook=1000000/s", "webhook=1000000/s"
					cfg.RedisURL = os.Getenv("UMSBENCH_REDIS_URL")
				}))
			o := c.o
			o.httpURL = strings.Replace(br.HTTPURL, "http://", "http://guest:guest@", 1)
			o.amqpURL, o.sinkAddr, o.timeout = br.AMQPURL, "127.0.0.1:0", 30*time.Second
			o.count = int64(b.N)
			b.ResetTimer()
			r, err := runNotify(o)
			if err != nil {
				b.Fatal(err)
			}
			if lost := r.accepted - r.got.distinct; lost != 0 || r.refused != 0 {
				b.Fatalf("%d lost, %d refused (%s)", lost, r.refused, r.firstErr)
			}
			b.ReportMetric(perSecond(r.got.distinct, r.deliverTime), "delivered/s")
		})
	}
}
