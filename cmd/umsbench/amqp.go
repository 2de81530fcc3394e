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
	rate       int
	exchange   string // "" (the default exchange), "fanout" or "topic"
	bindings   int
	common     commonOptions
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
	fs.IntVar(&o.queues, "queues", 1, "publish round-robin over this many queues (consumer i takes queue i mod N)")
	fs.Int64Var(&o.count, "count", 0, "stop after publishing this many messages in all (0: run for -duration)")
	fs.IntVar(&o.prefetch, "prefetch", 1000, "consumer prefetch (manual acks, multiple every 100 or every prefetch/2 when smaller)")
	fs.BoolVar(&o.keep, "keep", false, "keep the queues and their messages (e.g. -publishers 0 to drain a backlog)")
	fs.IntVar(&o.rate, "rate", 0, "messages per second per publisher (0: as fast as possible)")
	fs.StringVar(&o.exchange, "exchange", "", `route through an exchange: "" (the default exchange, round-robin over -queues), fanout (every message to each of -queues) or topic (-bindings binding keys spread over -queues, each message matching one)`)
	fs.IntVar(&o.bindings, "bindings", 1000, "-exchange topic: binding keys bench.<i>.* (i < N), bound to the queues in turn")
	o.common.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	switch o.exchange {
	case "", "fanout", "topic":
	default:
		return fmt.Errorf("-exchange %q: want \"\", fanout or topic", o.exchange)
	}
	if o.size < stampTime {
		o.size = stampTime
	}
	o.bindings = max(o.bindings, 1)
	r, err := runAMQP(&o)
	if err != nil {
		return err
	}
	return r.report(stdout, o)
}

// exchangeName is the exchange the publishers publish to.
func (o amqpOptions) exchangeName() string {
	if o.exchange == "" {
		return ""
	}
	return "umsbench." + o.exchange
}

// ackEvery is how many deliveries a consumer acknowledges at once
// (multiple): 100, or half the prefetch when that is smaller, so the
// broker never waits for an ack with a full window.
func (o amqpOptions) ackEvery() int { return max(1, min(100, o.prefetch/2)) }

type amqpResult struct {
	published, confirmed int64
	elapsed              time.Duration // publishing
	consumeElapsed       time.Duration // to the last arrival
	got                  []*tally      // one per queue
}

// counts sums what every queue's consumers got.
func (r amqpResult) counts() (consumed int64) {
	for _, g := range r.got {
		c, _ := g.counts()
		consumed += c
	}
	return consumed
}

// totals sums what every queue's consumers got, with the latencies.
func (r amqpResult) totals() (consumed, distinct int64, l latencyStats) {
	var all []time.Duration
	for _, g := range r.got {
		c, d := g.counts()
		consumed += c
		distinct += d
		all = append(all, g.latencies()...)
	}
	return consumed, distinct, latencyStats(sortedDurations(all))
}

// report prints the summary line and the JSON line.
func (r amqpResult) report(w io.Writer, o amqpOptions) error {
	consumed, distinct, l := r.totals()
	// Loss is known only when every queue published to is consumed and
	// the run started on empty queues.
	var lost *int64
	lostText := "n/a"
	if o.consumers >= len(r.got) && !o.keep {
		want := r.published
		if o.exchange == "fanout" {
			want *= int64(len(r.got))
		}
		n := max(want-distinct, 0)
		lost, lostText = &n, fmt.Sprint(n)
	}
	dup := consumed - distinct
	fmt.Fprintf(w, "published %d (%.0f msg/s), confirmed %d, consumed %d (%.0f msg/s), lost %s, duplicated %d, latency p50 %v p99 %v p99.9 %v max %v\n",
		r.published, perSecond(r.published, r.elapsed), r.confirmed, consumed, perSecond(consumed, r.consumeElapsed),
		lostText, dup, l.pct(0.5), l.pct(0.99), l.pct(0.999), l.pct(1))
	return o.common.emit(w, struct {
		Mode          string      `json:"mode"`
		Publishers    int         `json:"publishers"`
		Consumers     int         `json:"consumers"`
		Size          int         `json:"size"`
		Confirm       int         `json:"confirm"`
		Persistent    bool        `json:"persistent"`
		Prefetch      int         `json:"prefetch"`
		Rate          int         `json:"rate"`
		Exchange      string      `json:"exchange"`
		Queues        int         `json:"queues"`
		Bindings      int         `json:"bindings,omitempty"`
		Seconds       float64     `json:"seconds"`
		Published     int64       `json:"published"`
		PublishedRate float64     `json:"published_per_s"`
		Confirmed     int64       `json:"confirmed"`
		ConsumeSecs   float64     `json:"consume_seconds"`
		Consumed      int64       `json:"consumed"`
		ConsumedRate  float64     `json:"consumed_per_s"`
		Lost          *int64      `json:"lost"`
		Duplicated    int64       `json:"duplicated"`
		Latency       latencyJSON `json:"latency"`
	}{"amqp", o.publishers, o.consumers, o.size, o.confirm, o.persistent, o.prefetch, o.rate, o.exchange, len(r.got),
		o.topicBindings(), r.elapsed.Seconds(), r.published, perSecond(r.published, r.elapsed), r.confirmed,
		r.consumeElapsed.Seconds(), consumed, perSecond(consumed, r.consumeElapsed), lost, dup, l.json()}, consumed)
}

// topicBindings is the number of binding keys with -exchange topic, else 0.
func (o amqpOptions) topicBindings() int {
	if o.exchange != "topic" {
		return 0
	}
	return o.bindings
}

// pacer spaces a publisher's messages at a fixed rate: wait returns when
// the next message is due (at once when the publisher is behind).
type pacer struct {
	start    time.Time
	interval time.Duration
	n        int64
}

func newPacer(rate int) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{start: time.Now(), interval: time.Second / time.Duration(rate)}
}

func (p *pacer) wait() {
	if p == nil {
		return
	}
	due := p.start.Add(time.Duration(p.n) * p.interval)
	p.n++
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

func runAMQP(o *amqpOptions) (amqpResult, error) {
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
	// keys[n%len(keys)] is the routing key of message n, to queue
	// names[n%len(names)] through the default exchange.
	keys := names
	if ex := o.exchangeName(); ex != "" {
		if err := sch.ExchangeDelete(ex, false, false); err != nil {
			return amqpResult{}, err
		}
		if err := sch.ExchangeDeclare(ex, o.exchange, o.persistent, false, false, false, nil); err != nil {
			return amqpResult{}, err
		}
		keys = []string{""}
		if o.exchange == "topic" {
			keys = make([]string, o.bindings)
		}
		for i := range keys {
			q, key := names[i%len(names)], ""
			if o.exchange == "topic" {
				key = fmt.Sprintf("bench.%d.*", i)
				keys[i] = fmt.Sprintf("bench.%d.x", i)
			}
			if o.exchange == "fanout" {
				for _, q := range names {
					if err := sch.QueueBind(q, "", ex, false, nil); err != nil {
						return amqpResult{}, err
					}
				}
				break
			}
			if err := sch.QueueBind(q, key, ex, false, nil); err != nil {
				return amqpResult{}, err
			}
		}
	}

	res := amqpResult{got: make([]*tally, len(names))}
	for i := range res.got {
		res.got[i] = newTally()
	}
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
		d, err := ch.Consume(names[i%len(names)], "", false, false, false, false, nil)
		if err != nil {
			return res, err
		}
		got, ackEvery := res.got[i%len(names)], o.ackEvery()
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
					got.add(m.Body, time.Now().UnixNano())
					n++
					if n%ackEvery == 0 {
						if err := m.Ack(true); err != nil {
							consumerErr <- err
							return
						}
					}
				}
			}
		}()
	}

	// The broker's CPU counts from here: declaring queues and bindings
	// is not part of the messages' cost.
	if err := o.common.start(); err != nil {
		return res, err
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
			exchange, pace := o.exchangeName(), newPacer(o.rate)
			for n := 0; ctx.Err() == nil; n++ {
				pace.wait()
				seq := published.Add(1)
				if o.count > 0 && seq > o.count {
					published.Add(-1)
					break
				}
				putStamp(body, time.Now().UnixNano(), sender, uint32(n))
				if err := ch.Publish(exchange, keys[n%len(keys)], false, false, amqp.Publishing{DeliveryMode: mode, Body: body}); err != nil {
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
			if n := res.counts(); n == last {
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
		want := published.Load()
		if o.exchange == "fanout" {
			want *= int64(len(names))
		}
		if n := res.counts(); n >= want || o.consumers < len(names) {
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
	res.consumeElapsed = consumeElapsed(start, res.elapsed, res.got)
	return res, nil
}
