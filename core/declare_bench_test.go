package core

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/core/store"
)

// BenchmarkPublishDuringDurableDeclares measures what durable declares cost
// publishers: 8 goroutines publish to the default exchange as fast as they
// can while another connection declares and deletes b.N durable queues
// (two fsyncs of the definition store each, on the real disk), against the
// same publishers without the declares for as long. Five rounds alternate
// between the two; medians are reported. A definition write must not hold
// the lock that routing through the default exchange takes, so the rates
// should match.
//
//	go test -run '^$' -bench PublishDuringDurableDeclares -benchtime 1000x ./core/
func BenchmarkPublishDuringDurableDeclares(b *testing.B) {
	meta, err := store.OpenMeta(store.OS(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close()
	v := NewBrokerWith(Options{Meta: meta}).AddVhost("/")
	if _, err := v.DeclareQueue(nil, "target", QueueOptions{Args: Table{"x-max-length": int64(1000)}}); err != nil {
		b.Fatal(err)
	}
	const publishers, rounds = 8, 5
	declares := b.N
	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < publishers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r Router
			for {
				select {
				case <-stop:
					return
				default:
				}
				for j := 0; j < 256; j++ {
					msg := &Message{RoutingKey: "target", Body: []byte("0123456789abcdef")}
					if _, err := v.Publish(&r, "", msg, nil); err != nil {
						panic(err)
					}
				}
				published.Add(256)
			}
		}()
	}
	conn := v.Open("declarer", ConnInfo{})
	declareAll := func(round int) {
		for i := 0; i < declares; i++ {
			name := fmt.Sprintf("durable-%d-%d", round, i)
			if _, err := v.DeclareQueue(conn, name, QueueOptions{Durable: true}); err != nil {
				b.Fatal(err)
			}
			if _, err := v.DeleteQueue(conn, name, false, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	measure := func(during func()) (float64, time.Duration) {
		n0, t0 := published.Load(), time.Now()
		during()
		d := time.Since(t0)
		return float64(published.Load()-n0) / d.Seconds(), d
	}
	time.Sleep(200 * time.Millisecond) // warm up
	b.ResetTimer()
	var quiet, busy []float64
	var declaring, took time.Duration
	for round := 0; round < rounds; round++ {
		// Alternate which run goes first, so neither gains from order.
		var rb, rq float64
		if round%2 == 0 {
			rb, took = measure(func() { declareAll(round) })
			rq, _ = measure(func() { time.Sleep(took) })
		} else {
			// Quiet first, as long as the last declaring took.
			rq, _ = measure(func() { time.Sleep(took) })
			rb, took = measure(func() { declareAll(round) })
		}
		busy, quiet = append(busy, rb), append(quiet, rq)
		declaring += took
		b.Logf("round %d: %d durable declares+deletes in %v; %.0f publishes/s while declaring, %.0f without",
			round, declares, took.Round(time.Millisecond), rb, rq)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	median := func(xs []float64) float64 {
		sort.Float64s(xs)
		return xs[len(xs)/2]
	}
	mq, mb := median(quiet), median(busy)
	b.ReportMetric(mq, "pub/s-quiet")
	b.ReportMetric(mb, "pub/s-declaring")
	b.ReportMetric(100*(mq-mb)/mq, "%drop")
	b.ReportMetric(float64(declaring.Microseconds())/float64(rounds*declares), "µs/declare+delete")
}
