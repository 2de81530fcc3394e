package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpOptions are the flags of the amqp mode.
type amqpOptions struct {
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

// amqpMain runs the amqp mode: amqp091-go publishers and consumers on one
// or more queues.
func amqpMain(args []string, stdout, stderr io.Writer) error {
	var o amqpOptions
	fs := flag.NewFlagSet("umsbench amqp", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL of the broker")
	fs.IntVar(&o.publishers, "publishers", 1, "publishing connections")
	fs.IntVar(&o.consumers, "consumers", 1, "consuming connections")
	fs.IntVar(&o.size, "size", 16, "message body size in bytes (at least 8: the send time travels in the body; 16 and more also carry the sender and sequence that duplicates are counted by)")
	fs.IntVar(&o.confirm, "confirm", 0, "publisher confirms window per publisher (0: no confirms)")
	fs.BoolVar(&o.persistent, "persistent", false, "persistent messages to a durable queue")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.StringVar(&o.queue, "queue", "umsbench", "queue name (with -queues N: the prefix of N queues)")
	fs.IntVar(&o.queues, "queues", 1, "publish round-robin over this many queues (consumers use the first)")
	fs.Int64Var(&o.count, "count", 0, "stop after publishing this many messages in all (0: run for -duration)")
	fs.IntVar(&o.prefetch, "prefetch", 1000, "consumer prefetch (manual acks, multiple every 100)")
	fs.BoolVar(&o.keep, "keep", false, "keep the queues and their messages (e.g. -publishers 0 to drain a backlog)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if o.size < stampTime {
		o.size = stampTime
	}
	r, err := runAMQP(o)
	if err != nil {
		return err
	}
	r.report(stdout, o)
	return nil
}

type amqpResult struct {
	published, confirmed int64
	elapsed              time.Duration
	got                  *tally
}

// report prints the summary line and the JSON line.
func (r amqpResult) report(w io.Writer, o amqpOptions) {
	consumed, distinct := r.got.counts()
	l := r.got.latencies()
	// Loss is known only when every queue published to is consumed and
	// the run started on empty queues.
	var lost *int64
	lostText := "n/a"
	if o.consumers > 0 && o.queues <= 1 && !o.keep {
		n := max(r.published-distinct, 0)
		lost, lostText = &n, fmt.Sprint(n)
	}
	dup := consumed - distinct
	fmt.Fprintf(w, "published %d (%.0f msg/s), confirmed %d, consumed %d (%.0f msg/s), lost %s, duplicated %d, latency p50 %v p99 %v max %v\n",
		r.published, perSecond(r.published, r.elapsed), r.confirmed, consumed, perSecond(consumed, r.elapsed),
		lostText, dup, l.pct(0.5), l.pct(0.99), l.pct(1))
	printJSON(w, struct {
		Mode          string      `json:"mode"`
		Publishers    int         `json:"publishers"`
		Consumers     int         `json:"consumers"`
		Size          int         `json:"size"`
		Confirm       int         `json:"confirm"`
		Persistent    bool        `json:"persistent"`
		Seconds       float64     `json:"seconds"`
		Published     int64       `json:"published"`
		PublishedRate float64     `json:"published_per_s"`
		Confirmed     int64       `json:"confirmed"`
		Consumed      int64       `json:"consumed"`
		ConsumedRate  float64     `json:"consumed_per_s"`
		Lost          *int64      `json:"lost"`
		Duplicated    int64       `json:"duplicated"`
		Latency       latencyJSON `json:"latency"`
	}{"amqp", o.publishers, o.consumers, o.size, o.confirm, o.persistent, r.elapsed.Seconds(),
		r.published, perSecond(r.published, r.elapsed), r.confirmed, consumed, perSecond(consumed, r.elapsed),
		lost, dup, l.json()})
}

func runAMQP(o amqpOptions) (amqpResult, error) {
	setup, err := amqp.Dial(o.url)
	if err != nil {
		return amqpResult{}, err
	}
	sch, err := setup.Channel()
	if err != nil {
		return amqpResult{}, err
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
			return amqpResult{}, err
		}
		if _, err := sch.QueueDeclare(q, o.persistent, false, false, false, nil); err != nil {
			return amqpResult{}, err
		}
	}
	defer setup.Close()

	res := amqpResult{got: newTally()}
	var published, confirmed atomic.Int64
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
			n := 0
			for {
				select {
				case <-stopConsumers:
					return
				case m, ok := <-d:
					if !ok {
						consumerErr <- fmt.Errorf("consumer closed")
						return
					}
					res.got.add(m.Body, time.Now().UnixNano())
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
			sender := newSenderID()
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
				putStamp(body, time.Now().UnixNano(), sender, uint32(n))
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
			if n, _ := res.got.counts(); n == last {
				idle++
			} else {
				last, idle = n, 0
			}
		}
	}
	res.elapsed = time.Since(start)
	// Let consumers drain what was published (bounded).
	deadline := time.Now().Add(30 * time.Second)
	for o.consumers > 0 && time.Now().Before(deadline) {
		if n, _ := res.got.counts(); n >= published.Load() {
			break
		}
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
	res.published, res.confirmed = published.Load(), confirmed.Load()
	return res, nil
}
