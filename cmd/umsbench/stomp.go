package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// stompOptions are the flags of the stomp mode.
type stompOptions struct {
	addr, login, passcode, host string
	dest                        string
	publishers, consumers       int
	size                        int
	ack                         string
	prefetch                    int
	persistent, receipt         bool
	receiptWindow               int
	duration                    time.Duration
	count                       int64
	idle, parallel              int // idle > 0: the idle-connection scenario
	hold                        time.Duration
	common                      commonOptions
}

// stompMain runs the stomp mode: go-stomp publishers and subscribers on
// one destination. Subscribers of a /queue/ destination compete for its
// messages; those of /topic/ and /exchange/ destinations each get every
// message (fanout), and loss is counted per subscriber.
func stompMain(args []string, stdout, stderr io.Writer) error {
	var o stompOptions
	fs := flag.NewFlagSet("umsbench stomp", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:61613", "STOMP address of the broker")
	fs.StringVar(&o.login, "login", "guest", "login")
	fs.StringVar(&o.passcode, "passcode", "guest", "passcode")
	fs.StringVar(&o.host, "host", "/", "host header (the vhost)")
	fs.StringVar(&o.dest, "dest", "/queue/umsbench", "destination (start on an empty queue: loss is counted from the run's messages)")
	fs.IntVar(&o.publishers, "publishers", 1, "publishing connections")
	fs.IntVar(&o.consumers, "consumers", 1, "subscribing connections")
	fs.IntVar(&o.size, "size", 16, "message body size in bytes (at least 8; 16 and more also carry sender and sequence)")
	fs.StringVar(&o.ack, "ack", "client-individual", "ack mode of the subscriptions: auto, client (cumulative ACK every 100) or client-individual (ACK each)")
	fs.IntVar(&o.prefetch, "prefetch", 100, "prefetch-count of each subscription (0: none)")
	fs.BoolVar(&o.persistent, "persistent", false, "persistent:true on every SEND")
	fs.BoolVar(&o.receipt, "receipt", false, "ask for a RECEIPT on every SEND and wait for it")
	fs.IntVar(&o.receiptWindow, "receipt-window", 1, "-receipt: SENDs each publisher may have waiting for their RECEIPT (1: wait for each before the next)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.Int64Var(&o.count, "count", 0, "stop after publishing this many messages in all (0: run for -duration)")
	fs.IntVar(&o.idle, "idle", 0, "open this many idle STOMP 1.2 connections (heart-beats off) instead, report the connect rate, print READY <n> and hold them")
	fs.IntVar(&o.parallel, "parallel", 64, "-idle: connections opened concurrently")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "-idle: how long to hold the connections (SIGINT or SIGTERM ends it early)")
	o.common.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := o.common.start(); err != nil {
		return err
	}
	if o.idle > 0 {
		return runStompIdle(o, stdout)
	}
	switch o.ack {
	case "auto", "client", "client-individual":
	default:
		return fmt.Errorf("-ack %q: want auto, client or client-individual", o.ack)
	}
	if o.receiptWindow < 1 {
		return fmt.Errorf("-receipt-window %d: want 1 or more", o.receiptWindow)
	}
	if o.size < stampTime {
		o.size = stampTime
	}
	r, err := runSTOMP(o)
	if err != nil {
		return err
	}
	return r.report(stdout, o)
}

type stompResult struct {
	published, receipts int64
	elapsed             time.Duration // publishing
	consumeElapsed      time.Duration // to the last arrival
	fanout              bool
	got                 []*tally // one per subscriber with fanout, else one shared
}

func (o stompOptions) fanout() bool {
	return strings.HasPrefix(o.dest, "/topic/") || strings.HasPrefix(o.dest, "/exchange/")
}

func (r stompResult) totals() (consumed, distinct int64) {
	for _, g := range r.got {
		c, d := g.counts()
		consumed += c
		distinct += d
	}
	return consumed, distinct
}

// report prints the summary line and the JSON line.
func (r stompResult) report(w io.Writer, o stompOptions) error {
	consumed, distinct := r.totals()
	want := r.published
	if r.fanout {
		want *= int64(len(r.got))
	}
	lost := max(want-distinct, 0)
	dup := consumed - distinct
	var all latencyStats
	for _, g := range r.got {
		all = append(all, g.latencies()...)
	}
	l := latencyStats(sortedDurations(all))
	fmt.Fprintf(w, "published %d (%.0f msg/s), receipts %d, consumed %d (%.0f msg/s), lost %d, duplicated %d, latency p50 %v p99 %v p99.9 %v max %v\n",
		r.published, perSecond(r.published, r.elapsed), r.receipts, consumed, perSecond(consumed, r.consumeElapsed),
		lost, dup, l.pct(0.5), l.pct(0.99), l.pct(0.999), l.pct(1))
	return o.common.emit(w, struct {
		Mode          string      `json:"mode"`
		Destination   string      `json:"destination"`
		Publishers    int         `json:"publishers"`
		Consumers     int         `json:"consumers"`
		Size          int         `json:"size"`
		Ack           string      `json:"ack"`
		Prefetch      int         `json:"prefetch"`
		Persistent    bool        `json:"persistent"`
		Receipt       bool        `json:"receipt"`
		ReceiptWindow int         `json:"receipt_window"`
		Seconds       float64     `json:"seconds"`
		Published     int64       `json:"published"`
		PublishedRate float64     `json:"published_per_s"`
		Receipts      int64       `json:"receipts"`
		ConsumeSecs   float64     `json:"consume_seconds"`
		Consumed      int64       `json:"consumed"`
		ConsumedRate  float64     `json:"consumed_per_s"`
		Lost          int64       `json:"lost"`
		Duplicated    int64       `json:"duplicated"`
		Latency       latencyJSON `json:"latency"`
	}{"stomp", o.dest, o.publishers, o.consumers, o.size, o.ack, o.prefetch, o.persistent, o.receipt, o.receiptWindow, r.elapsed.Seconds(),
		r.published, perSecond(r.published, r.elapsed), r.receipts, r.consumeElapsed.Seconds(), consumed,
		perSecond(consumed, r.consumeElapsed), lost, dup, l.json()}, consumed)
}

func sortedDurations(l []time.Duration) []time.Duration {
	out := slices.Clone(l)
	slices.Sort(out)
	return out
}

func (o stompOptions) dial() (*stomp.Conn, error) {
	return stomp.Dial("tcp", o.addr, stomp.ConnOpt.Login(o.login, o.passcode), stomp.ConnOpt.Host(o.host),
		stomp.ConnOpt.AcceptVersion(stomp.V12))
}

func runSTOMP(o stompOptions) (stompResult, error) {
	res := stompResult{fanout: o.fanout()}
	shared := newTally()
	var published, receipts atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, o.consumers+o.publishers)
	var cwg sync.WaitGroup
	for range o.consumers {
		c, err := o.dial()
		if err != nil {
			return res, err
		}
		defer c.MustDisconnect()
		var opts []func(*frame.Frame) error
		if o.prefetch > 0 && o.ack != "auto" {
			opts = append(opts, stomp.SubscribeOpt.Header("prefetch-count", fmt.Sprint(o.prefetch)))
		}
		mode := map[string]stomp.AckMode{"auto": stomp.AckAuto, "client": stomp.AckClient, "client-individual": stomp.AckClientIndividual}[o.ack]
		sub, err := c.Subscribe(o.dest, mode, opts...)
		if err != nil {
			return res, err
		}
		// The subscription is in place once a later frame is answered.
		if err := c.Begin().AbortWithReceipt(); err != nil {
			return res, err
		}
		g := shared
		if res.fanout {
			g = newTally()
		}
		if res.fanout || len(res.got) == 0 {
			res.got = append(res.got, g)
		}
		// ACKs go out from a goroutine of their own: go-stomp's connection
		// loop blocks handing a MESSAGE to a subscriber that is itself
		// blocked handing that loop an ACK. The server sends at most the
		// prefetch unacknowledged, which bounds what waits here.
		acks := make(chan *stomp.Message, max(o.prefetch, 100)+1000)
		cwg.Add(2)
		go func() {
			defer cwg.Done()
			for m := range acks {
				if err := c.Ack(m); err != nil {
					errs <- err
					for range acks {
					}
					return
				}
			}
		}()
		go func() {
			defer cwg.Done()
			defer close(acks)
			n := 0
			for {
				select {
				case <-stop:
					return
				case m, ok := <-sub.C:
					if !ok {
						errs <- errors.New("subscription closed")
						return
					}
					if m.Err != nil {
						errs <- m.Err
						return
					}
					g.add(m.Body, time.Now().UnixNano())
					n++
					if o.ack == "client-individual" || (o.ack == "client" && n%100 == 0) {
						acks <- m
					}
				}
			}
		}()
	}
	if len(res.got) == 0 {
		res.got = append(res.got, shared)
	}

	start := time.Now()
	deadline := start.Add(o.duration)
	var pwg sync.WaitGroup
	for range o.publishers {
		if o.receipt && o.receiptWindow > 1 {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				if err := publishWindowed(o, &published, &receipts, deadline); err != nil {
					errs <- err
				}
			}()
			continue
		}
		c, err := o.dial()
		if err != nil {
			return res, err
		}
		defer c.MustDisconnect()
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			sender := newSenderID()
			var opts []func(*frame.Frame) error
			if o.persistent {
				opts = append(opts, stomp.SendOpt.Header("persistent", "true"))
			}
			if o.receipt {
				opts = append(opts, stomp.SendOpt.Receipt)
			}
			for n := 0; time.Now().Before(deadline); n++ {
				seq := published.Add(1)
				if o.count > 0 && seq > o.count {
					published.Add(-1)
					return
				}
				body := make([]byte, o.size) // go-stomp writes it after Send returns
				putStamp(body, time.Now().UnixNano(), sender, uint32(n))
				if err := c.Send(o.dest, "application/octet-stream", body, opts...); err != nil {
					errs <- err
					return
				}
				if o.receipt {
					receipts.Add(1)
				}
			}
		}()
	}
	pwg.Wait()
	res.elapsed = time.Since(start)
	want := published.Load()
	if res.fanout {
		want *= int64(len(res.got))
	}
	drain := time.Now().Add(30 * time.Second)
	for o.consumers > 0 && time.Now().Before(drain) {
		if n, _ := res.totals(); n >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	cwg.Wait()
	res.consumeElapsed = consumeElapsed(start, res.elapsed, res.got)
	select {
	case err := <-errs:
		return res, err
	default:
	}
	res.published, res.receipts = published.Load(), receipts.Load()
	return res, nil
}
