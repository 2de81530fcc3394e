package core

import (
	"bufio"
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/core/store"
)

// procStatus returns a field of /proc/self/status in KiB (VmRSS, VmHWM).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// lateness is a histogram of release lateness in 10 µs buckets up to 1 s.
type lateness struct {
	mu      sync.Mutex
	buckets [100001]int64
	n       int64
	max     time.Duration
	maxAt   int64 // the due time (unix ns) of the latest message
	over    int64 // messages more than 10 ms late
}

func (l *lateness) add(d time.Duration) { l.addAt(d, 0) }

func (l *lateness) addAt(d time.Duration, due int64) {
	if d < 0 {
		d = 0
	}
	i := int(d / (10 * time.Microsecond))
	if i >= len(l.buckets) {
		i = len(l.buckets) - 1
	}
	l.mu.Lock()
	l.buckets[i]++
	l.n++
	if d > l.max {
		l.max, l.maxAt = d, due
	}
	if d > 10*time.Millisecond {
		l.over++
	}
	l.mu.Unlock()
}

func (l *lateness) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := int64(q * float64(l.n))
	var seen int64
	for i, c := range l.buckets {
		if seen += c; seen > want {
			return time.Duration(i+1) * 10 * time.Microsecond
		}
	}
	return l.max
}

// BenchmarkScheduleRelease schedules b.N persistent messages (16-byte
// bodies; UMS_DELAY_BENCH_N overrides the count) through a durable
// x-delayed-message exchange with a message log on disk and the real
// clock, due one every 20 µs (50,000 per second) starting after the
// scheduling is expected to be over, and reports the time to schedule, the
// process's RSS with all of them waiting, and the lateness of their
// release (measured when the consumer gets each one). It is one round of
// b.N messages, not b.N rounds: give the count with -benchtime, e.g. ten
// million:
//
//	go test -run '^$' -bench ScheduleRelease -benchtime 10000000x -timeout 30m ./core/
func BenchmarkScheduleRelease(b *testing.B) {
	n := b.N
	if s := os.Getenv("UMS_DELAY_BENCH_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const every = 20 * time.Microsecond // 50,000 per second
	// Scheduling must be over before the first is due: allow 8 µs each
	// (125,000 per second) plus 3 s (0.1 s with -short).
	slack := 3 * time.Second
	if testing.Short() {
		slack = 100 * time.Millisecond
	}
	lead := time.Duration(n)*8*time.Microsecond + slack
	if s := os.Getenv("UMS_DELAY_BENCH_LEAD"); s != "" {
		lead, _ = time.ParseDuration(s)
	}
	lg, _, err := store.OpenLog(store.OS(), b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	br := NewBrokerWith(Options{Messages: lg, Meta: &mapMeta{m: map[string][]byte{}}})
	if _, err := br.Recover(lg.Replay); err != nil {
		b.Fatal(err)
	}
	v, _ := br.Vhost("/")
	if _, err := v.DeclareExchange("d", KindDelayed, ExchangeOptions{Durable: true, Args: Table{ArgDelayedType: KindFanout}}); err != nil {
		b.Fatal(err)
	}
	conn := v.Open("bench", ConnInfo{})
	q, err := v.DeclareQueue(conn, "out", QueueOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := v.Bind(conn, "out", "d", "", nil); err != nil {
		b.Fatal(err)
	}
	var late lateness
	var got int64
	var gotMu sync.Mutex
	allIn := make(chan struct{})
	deliver := func(d Delivery) {
		due := int64(binary.LittleEndian.Uint64(d.Msg.Body))
		late.addAt(time.Duration(time.Now().UnixNano()-due), due)
		gotMu.Lock()
		if got++; got == int64(n) {
			close(allIn)
		}
		gotMu.Unlock()
	}
	if _, err := conn.NewSession().Consume(q, ConsumeOptions{NoAck: true, Deliver: deliver}); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	rss0 := procStatus("VmRSS")

	b.ResetTimer()
	start := time.Now()
	base := start.Add(lead)
	for i := 0; i < n; i++ {
		at := base.Add(time.Duration(i) * every)
		body := make([]byte, 16)
		binary.LittleEndian.PutUint64(body, uint64(at.UnixNano()))
		msg := &Message{Exchange: "d", Body: body, Props: Properties{DeliveryMode: Persistent}}
		if _, err := v.Schedule(nil, at, "d", msg, nil); err != nil {
			b.Fatal(err)
		}
	}
	scheduled := time.Since(start)
	synced := make(chan error, 1)
	lg.Barrier(func(err error) { synced <- err })
	if err := <-synced; err != nil {
		b.Fatal(err)
	}
	durable := time.Since(start)
	runtime.GC()
	rss1 := procStatus("VmRSS")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if time.Now().After(base) {
		b.Logf("scheduling took longer than the lead of %v: the first releases are late by construction", lead)
	}
	// Note when the store compacts, to tell its pauses from others.
	var compactedAt []time.Duration
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		last := lg.Stats().Compactions
		for {
			select {
			case <-allIn:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if c := lg.Stats().Compactions; c != last {
				last = c
				compactedAt = append(compactedAt, time.Since(base).Round(time.Millisecond))
			}
		}
	}()
	<-allIn
	<-watchDone
	b.StopTimer()
	release := time.Since(base)
	hwm := procStatus("VmHWM")
	b.ReportMetric(float64(n)/scheduled.Seconds(), "scheduled/s")
	b.ReportMetric(float64(rss1-rss0)/1024, "MiB-RSS-held")
	b.ReportMetric(float64(late.quantile(0.5))/1e6, "ms-late-p50")
	b.ReportMetric(float64(late.quantile(0.99))/1e6, "ms-late-p99")
	b.ReportMetric(float64(late.max)/1e6, "ms-late-max")
	b.Logf("%d messages: scheduled in %v (%.0f/s, durable after %v); RSS %d MiB before, %d MiB with all waiting "+
		"(Go heap in use %d MiB), peak %d MiB; released over %v (%.0f/s); lateness p50 %v p99 %v max %v",
		n, scheduled.Round(time.Millisecond), float64(n)/scheduled.Seconds(), durable.Round(time.Millisecond),
		rss0/1024, rss1/1024, ms.HeapInuse>>20, hwm/1024, release.Round(time.Millisecond), float64(n)/release.Seconds(),
		late.quantile(0.5), late.quantile(0.99), late.max)
	b.Logf("compactions seen at %v after the first due time", compactedAt)
	b.Logf("message store: %d segments compacted; %d messages more than 10 ms late; the latest was due %v after the first",
		lg.Stats().Compactions, late.over, time.Duration(late.maxAt-base.UnixNano()).Round(time.Millisecond))
	if c := v.lookupExchange("d").DelayedCount(); c != 0 {
		b.Fatalf("%d still delayed", c)
	}
}
