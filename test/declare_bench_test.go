package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
)

// BenchmarkPublishDuringDurableDeclares measures what durable declares cost
// publishers: 8 connections publish to the default exchange as fast as they
// can while another connection declares and deletes 1,000 durable queues
// (two definition fsyncs each), against the same publishers without the
// declares. Definition writes must not hold the lock that publishing takes,
// so the two rates should be within noise of each other. Rounds alternate
// between the two runs; the medians are reported.
//
//	go test -run '^$' -bench PublishDuringDurableDeclares -benchtime 1x ./test/
func BenchmarkPublishDuringDurableDeclares(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.AMQPListen = "127.0.0.1:0"
	cfg.MQTTListen, cfg.MQTTWSListen, cfg.STOMPListen, cfg.STOMPWSListen, cfg.HTTPListen =
		config.Off, config.Off, config.Off, config.Off, config.Off
	srv, err := broker.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	url := "amqp://guest:guest@" + srv.Addr("amqp").String() + "/"
	dial := func() (*amqp.Connection, *amqp.Channel) {
		conn, err := amqp.Dial(url)
		if err != nil {
			b.Fatal(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		return conn, ch
	}
	// The publishers' target keeps its last 1,000 messages, so memory stays flat.
	setupConn, setup := dial()
	if _, err := setup.QueueDeclare("bench-target", false, false, false, false, amqp.Table{"x-max-length": int32(1000)}); err != nil {
		b.Fatal(err)
	}
	setupConn.Close()

	const publishers, declares = 8, 1000
	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	body := make([]byte, 16)
	for i := 0; i < publishers; i++ {
		conn, ch := dial()
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for j := 0; j < 64; j++ {
					if err := ch.Publish("", "bench-target", false, false, amqp.Publishing{Body: body}); err != nil {
						return
					}
				}
				published.Add(64)
			}
		}()
	}
	declConn, decl := dial()
	defer declConn.Close()
	declareAll := func(round int) time.Duration {
		start := time.Now()
		for i := 0; i < declares; i++ {
			name := fmt.Sprintf("bench-durable-%d-%d", round, i)
			if _, err := decl.QueueDeclare(name, true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := decl.QueueDelete(name, false, false, false); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	rate := func(d time.Duration, during func()) float64 {
		n0, t0 := published.Load(), time.Now()
		if during != nil {
			during()
		} else {
			time.Sleep(d)
		}
		return float64(published.Load()-n0) / time.Since(t0).Seconds()
	}
	time.Sleep(500 * time.Millisecond) // warm up
	b.ResetTimer()
	var quiet, busy []float64
	var declareTime time.Duration
	for round := 0; round < 5; round++ {
		var took time.Duration
		busy = append(busy, rate(0, func() { took = declareAll(round) }))
		declareTime += took
		quiet = append(quiet, rate(took, nil))
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
	b.ReportMetric(float64(declareTime.Microseconds())/float64(5*declares), "µs/declare+delete")
}
