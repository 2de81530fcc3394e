// Command umsbench drives real AMQP clients (amqp091-go) against any broker
// and reports throughput and end-to-end latency, so UMS and RabbitMQ can be
// measured side by side on the same machine.
//
//	umsbench -url amqp://guest:guest@127.0.0.1:5672/ -publishers 1 -consumers 1 \
//	    -size 16 -confirm 256 -persistent -duration 10s
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type options struct {
	url        string
	publishers int
	consumers  int
	size       int
	confirm    int
	persistent bool
	duration   time.Duration
	queue      string
	queues     int
	count      int64
	prefetch   int
	keep       bool
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL of the broker")
	flag.IntVar(&o.publishers, "publishers", 1, "publishing connections")
	flag.IntVar(&o.consumers, "consumers", 1, "consuming connections")
	flag.IntVar(&o.size, "size", 16, "message body size in bytes (at least 8: the send time travels in the body)")
	flag.IntVar(&o.confirm, "confirm", 0, "publisher confirms window per publisher (0: no confirms)")
	flag.BoolVar(&o.persistent, "persistent", false, "persistent messages to a durable queue")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	flag.StringVar(&o.queue, "queue", "umsbench", "queue name (with -queues N: the prefix of N queues)")
	flag.IntVar(&o.queues, "queues", 1, "publish round-robin over this many queues (consumers use the first)")
	flag.Int64Var(&o.count, "count", 0, "stop after publishing this many messages in all (0: run for -duration)")
	flag.IntVar(&o.prefetch, "prefetch", 1000, "consumer prefetch (manual acks, multiple every 100)")
	flag.BoolVar(&o.keep, "keep", false, "keep the queues and their messages (e.g. -publishers 0 to drain a backlog)")
	flag.Parse()
	if o.size < 8 {
		o.size = 8
	}
	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "umsbench:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}

type result struct {
	published, confirmed, consumed int64
	elapsed                        time.Duration
	latencies                      []time.Duration
}

func (r result) String() string {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(float64(len(r.latencies)-1)*p)]
	}
	s := r.elapsed.Seconds()
	return fmt.Sprintf("published %d (%.0f msg/s), confirmed %d, consumed %d (%.0f msg/s), latency p50 %v p99 %v max %v",
		r.published, float64(r.published)/s, r.confirmed, r.consumed, float64(r.consumed)/s, pct(0.5), pct(0.99), pct(1))
}

func run(o options) (result, error) {
	setup, err := amqp.Dial(o.url)
	if err != nil {
		return result{}, err
	}
	sch, err := setup.Channel()
	if err != nil {
		return result{}, err
	}
	names := []string{o.queue}
	if o.queues > 1 {
		names = names[:0]
		for i := 0; i < o.queues; i++ {
			names = append(names, fmt.Sprintf("%s-%d", o.queue, i))
		}
	}
	for _, q := range names {
		if o.keep {
			break
		}
		if _, err := sch.QueueDelete(q, false, false, false); err != nil {
			return result{}, err
		}
		if _, err := sch.QueueDeclare(q, o.persistent, false, false, false, nil); err != nil {
			return result{}, err
		}
	}
	defer setup.Close()

	var res result
	var published, confirmed, consumed atomic.Int64
	var latMu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var cwg sync.WaitGroup
	stopConsumers := make(chan struct{})
	consumerErr := make(chan error, o.consumers)
	for i := 0; i < o.consumers; i++ {
		conn, err := amqp.Dial(o.url)
		if err != nil {
			return res, err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return res, err
		}
		if err := ch.Qos(o.prefetch, 0, false); err != nil {
			return res, err
		}
		d, err := ch.Consume(names[0], "", false, false, false, false, nil)
		if err != nil {
			return res, err
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			var lats []time.Duration
			n := 0
			for {
				select {
				case <-stopConsumers:
					latMu.Lock()
					res.latencies = append(res.latencies, lats...)
					latMu.Unlock()
					return
				case m, ok := <-d:
					if !ok {
						consumerErr <- fmt.Errorf("consumer closed")
						return
					}
					if len(m.Body) >= 8 {
						sent := int64(binary.BigEndian.Uint64(m.Body))
						lats = append(lats, time.Duration(time.Now().UnixNano()-sent))
					}
					consumed.Add(1)
					n++
					if n%100 == 0 {
						if err := m.Ack(true); err != nil {
							consumerErr <- err
							return
						}
					}
				}
			}
		}()
	}

	start := time.Now()
	var pwg sync.WaitGroup
	pubErr := make(chan error, o.publishers)
	for i := 0; i < o.publishers; i++ {
		conn, err := amqp.Dial(o.url)
		if err != nil {
			return res, err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return res, err
		}
		var confirms chan amqp.Confirmation
		if o.confirm > 0 {
			if err := ch.Confirm(false); err != nil {
				return res, err
			}
			confirms = ch.NotifyPublish(make(chan amqp.Confirmation, o.confirm*2))
		}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			body := make([]byte, o.size)
			mode := amqp.Transient
			if o.persistent {
				mode = amqp.Persistent
			}
			outstanding := 0
			for n := 0; ctx.Err() == nil; n++ {
				seq := published.Add(1)
				if o.count > 0 && seq > o.count {
					published.Add(-1)
					break
				}
				binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
				if err := ch.Publish("", names[n%len(names)], false, false, amqp.Publishing{DeliveryMode: mode, Body: body}); err != nil {
					pubErr <- err
					return
				}
				if confirms == nil {
					continue
				}
				outstanding++
				for outstanding >= o.confirm {
					c := <-confirms
					if c.Ack {
						confirmed.Add(1)
					}
					outstanding--
				}
			}
			for ; outstanding > 0; outstanding-- {
				select {
				case c := <-confirms:
					if c.Ack {
						confirmed.Add(1)
					}
				case <-time.After(10 * time.Second):
					pubErr <- fmt.Errorf("confirms missing")
					return
				}
			}
		}()
	}
	pwg.Wait()
	if o.publishers == 0 {
		// Drain mode: run until the consumers saw nothing for a second.
		last, idle := int64(-1), 0
		for idle < 10 {
			time.Sleep(100 * time.Millisecond)
			if n := consumed.Load(); n == last {
				idle++
			} else {
				last, idle = n, 0
			}
		}
	}
	res.elapsed = time.Since(start)
	// Let consumers drain what was published (bounded).
	deadline := time.Now().Add(30 * time.Second)
	for o.consumers > 0 && consumed.Load() < published.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stopConsumers)
	cwg.Wait()
	select {
	case err := <-pubErr:
		return res, err
	case err := <-consumerErr:
		return res, err
	default:
	}
	res.published, res.confirmed, res.consumed = published.Load(), confirmed.Load(), consumed.Load()
	return res, nil
}
