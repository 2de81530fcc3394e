package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (beam.smp (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 30 0 100 2000000 5000 18446744073709551615")
	status := []byte("Name:\tbeam.smp\nVmPeak:\t 9999 kB\nVmRSS:\t   10240 kB\nThreads:\t30\n")
	s, err := parseProc(stat, status)
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu != 3*time.Second || s.rss != 10<<20 {
		t.Fatalf("cpu %v rss %d; want 3s and 10 MiB", s.cpu, s.rss)
	}
	if _, err := parseProc([]byte("garbage"), status); err == nil {
		t.Fatal("malformed stat accepted")
	}
}

// emit adds the scenario, the broker, its usage and the load to the JSON
// line, and appends the line to -json-out.
func TestEmitAddsBrokerUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.jsonl")
	c := commonOptions{brokerPID: os.Getpid(), brokerName: "ums", scenario: "s1", jsonOut: out}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	for range 2 {
		if err := c.emit(&w, struct {
			Mode string `json:"mode"`
		}{"amqp"}, 1000); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("%v: %s", err, w.String())
	}
	u, _ := got["broker_usage"].(map[string]any)
	if got["mode"] != "amqp" || got["scenario"] != "s1" || got["broker"] != "ums" || u == nil || u["cpu_us_per_msg"] == nil || u["rss_mib"].(float64) <= 0 {
		t.Fatalf("JSON line %v", got)
	}
	if !strings.HasPrefix(lines[0], "broker ") {
		t.Fatalf("no summary line: %q", lines[0])
	}
	b, err := os.ReadFile(out)
	if err != nil || strings.Count(string(b), "\n") != 2 {
		t.Fatalf("-json-out holds %q (%v); want two lines", b, err)
	}
}

// report: medians with their spread, the ratio to UMS, the idle table and
// the targets.
func TestReport(t *testing.T) {
	lines := `{"mode":"amqp","consumed_per_s":30000,"lost":0,"duplicated":0,"latency":{"p50_ms":0.2,"p99_ms":0.4,"p99.9_ms":1},"scenario":"amqp-rate5k-transient","broker":"ums","broker_usage":{"cpu_us_per_msg":20,"rss_mib":12},"load1":1.5}
{"mode":"amqp","consumed_per_s":10000,"lost":0,"duplicated":0,"latency":{"p50_ms":0.2,"p99_ms":0.6,"p99.9_ms":1},"scenario":"amqp-rate5k-transient","broker":"ums","broker_usage":{"cpu_us_per_msg":30,"rss_mib":12},"load1":1.5}
{"mode":"amqp","consumed_per_s":20000,"lost":0,"duplicated":0,"latency":{"p50_ms":0.2,"p99_ms":0.5,"p99.9_ms":1},"scenario":"amqp-rate5k-transient","broker":"ums","broker_usage":{"cpu_us_per_msg":25,"rss_mib":12},"load1":1.5}
{"mode":"amqp","consumed_per_s":5000,"lost":0,"duplicated":0,"latency":{"p50_ms":1,"p99_ms":4,"p99.9_ms":9},"scenario":"amqp-rate5k-transient","broker":"rabbitmq","broker_usage":{"cpu_us_per_msg":100,"rss_mib":120},"load1":1.1}
{"mode":"mqtt-idle","connections":19000,"connects_per_s":12000,"broker_bytes_per_conn":3000,"idle_cpu_percent":0.1,"scenario":"mqtt-idle","broker":"ums","broker_usage":{"rss_mib":70}}
`
	f := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(f, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"report", f}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, want := range []string{
		"### AMQP 0-9-1",
		"| amqp-rate5k-transient | ums | 3 | 20,000 (10,000–30,000) | 0.200 (0.200–0.200) | 0.500 (0.400–0.600) |",
		"| amqp-rate5k-transient | rabbitmq | 1 | 5,000 |",
		"4.00× · 0.125× · 0.250×",
		"### Idle connections",
		"| mqtt-idle | ums | 1 | 19,000 | 12,000 | 3,000 |",
		"| AMQP p99 at 5,000 msg/s, transient 1 KiB ≤ 0.5 ms | 0.500 ms; rabbitmq 4.00 ms | met |",
		"| MQTT: broker memory per idle connection ≤ 4 KiB | 3,000 B (19,000 connections; 1 million would take 2.79 GiB) | met |",
		"| AMQP transient 1 KiB at 5,000 msg/s: broker CPU per message ≤ 25 µs | 25.0 µs; rabbitmq 100 µs | met |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
