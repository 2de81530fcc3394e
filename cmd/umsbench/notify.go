package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// notifyOptions are the flags of the notify mode.
type notifyOptions struct {
	via      string
	httpURL  string
	amqpURL  string
	vhost    string
	clients  int
	batch    int
	confirm  int
	count    int64
	duration time.Duration
	dedup    bool
	delay    time.Duration
	sinkAddr string
	sinkURL  string
	timeout  time.Duration
	rate     float64
	common   commonOptions
}

// notifyMain runs the notify mode: notifications submitted to a running
// UMS over its HTTP API or AMQP, delivered as webhooks to a local sink.
func notifyMain(args []string, stdout, stderr io.Writer) error {
	var o notifyOptions
	fs := flag.NewFlagSet("umsbench notify", flag.ContinueOnError)
	fs.StringVar(&o.via, "via", "http", "submit over http (the notification API) or amqp (exchange ums.notify)")
	fs.StringVar(&o.httpURL, "http-url", "http://guest:guest@127.0.0.1:15672", "UMS HTTP API URL with the user's credentials")
	fs.StringVar(&o.amqpURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL with credentials and vhost (-via amqp)")
	fs.StringVar(&o.vhost, "vhost", "", "vhost of HTTP submissions (X-UMS-Vhost; empty: /)")
	fs.IntVar(&o.clients, "c", 16, "concurrent HTTP clients, or AMQP publishing connections")
	fs.IntVar(&o.batch, "batch", 0, "notifications per POST /api/v1/notifications/batch (0: one POST per notification; at most 1000)")
	fs.IntVar(&o.confirm, "confirm", 256, "publisher confirms window per AMQP connection")
	fs.Int64Var(&o.count, "n", 10000, "notifications to submit (0: submit for -duration)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to submit when -n is 0")
	fs.BoolVar(&o.dedup, "dedup", false, "give every notification its own idempotency key (header on single POSTs, field otherwise)")
	fs.DurationVar(&o.delay, "delay", 0, "the webhook sink answers after this long")
	fs.StringVar(&o.sinkAddr, "sink", "127.0.0.1:0", "listen address of the webhook sink")
	fs.StringVar(&o.sinkURL, "sink-url", "", "webhook URL the server is given (default: http://<sink address>/hook)")
	fs.Float64Var(&o.rate, "rate", 0, "notifications per second in all (0: as fast as the server answers); for latency at a given load")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "stop waiting for webhooks when none arrived for this long")
	o.common.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case o.via != "http" && o.via != "amqp":
		return fmt.Errorf("-via %q: want http or amqp", o.via)
	case o.batch < 0 || o.batch > 1000:
		return fmt.Errorf("-batch %d: want 0 to 1000", o.batch)
	case o.batch > 0 && o.via != "http":
		return fmt.Errorf("-batch is for -via http")
	case o.clients < 1 || o.confirm < 1:
		return fmt.Errorf("-c and -confirm must be at least 1")
	case o.rate < 0:
		return fmt.Errorf("-rate %v: want 0 or more", o.rate)
	case o.count < 0 || (o.count == 0 && o.duration <= 0):
		return fmt.Errorf("want -n or -duration")
	}
	if err := o.common.start(); err != nil {
		return err
	}
	r, err := runNotify(o)
	if err != nil {
		return err
	}
	return r.report(stdout, o)
}

// submitted counts the answers to submissions.
type submitted struct {
	accepted     atomic.Int64 // 202, or an AMQP ack: expected at the sink
	deduplicated atomic.Int64 // 200 "deduplicated": nothing will be sent
	refused      atomic.Int64 // any other answer, a nack or a failed request
	firstErr     atomic.Pointer[string]
}

func (s *submitted) refuse(n int64, why string) {
	s.refused.Add(n)
	s.firstErr.CompareAndSwap(nil, &why)
}

// notifyResult is the outcome of a run.
type notifyResult struct {
	accepted, deduplicated, refused int64
	firstErr                        string
	submitTime                      time.Duration // first submission → last answer
	deliverTime                     time.Duration // first submission → last new arrival
	complete                        bool          // every accepted notification arrived
	got                             sinkCounts
}

// source hands out sequence numbers until -n or -duration is used up,
// at -rate when it is set.
type source struct {
	next  atomic.Int64
	limit int64 // 0: until ctx ends
	ctx   context.Context
	start time.Time
	rate  float64 // per second; 0: as fast as answers come
}

// take returns the first of up to k new sequence numbers and how many
// there are (0: done). With a rate it waits until the first is due.
func (s *source) take(k int64) (int64, int64) {
	if s.ctx.Err() != nil {
		return 0, 0
	}
	end := s.next.Add(k)
	first := end - k
	if s.limit > 0 && end > s.limit {
		k = max(s.limit-first, 0)
	}
	if k > 0 && s.rate > 0 {
		due := s.start.Add(time.Duration(float64(first) / s.rate * float64(time.Second)))
		t := time.NewTimer(time.Until(due))
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return 0, 0
		}
	}
	return first, k
}

// builder writes notification documents.
type builder struct {
	run   string
	hook  []byte // the webhook URL as a JSON string
	dedup bool   // idempotency_key in the document
}

// notification appends the JSON document of notification seq.
func (b *builder) notification(buf []byte, seq int64, sent time.Time) []byte {
	buf = append(buf, `{"channel":"webhook","to":{"webhook":`...)
	buf = append(buf, b.hook...)
	buf = append(buf, `},"content":{"text":"`...)
	buf = appendStamp(buf, b.run, seq, sent)
	buf = append(buf, '"', '}')
	if b.dedup {
		buf = append(buf, `,"idempotency_key":"`...)
		buf = append(buf, b.key(seq)...)
		buf = append(buf, '"')
	}
	return append(buf, '}')
}

// key is the idempotency key of notification seq, unique per run.
func (b *builder) key(seq int64) string {
	return "umsbench-" + b.run + "-" + strconv.FormatInt(seq, 10)
}

func runNotify(o notifyOptions) (notifyResult, error) {
	run := strconv.FormatUint(uint64(rand.Uint32()), 16)
	sk, err := startSink(o.sinkAddr, run, o.delay)
	if err != nil {
		return notifyResult{}, err
	}
	defer sk.close()
	hook := o.sinkURL
	if hook == "" {
		hook = "http://" + sk.ln.Addr().String() + "/hook"
	}
	hookJSON, _ := json.Marshal(hook)
	b := &builder{run: run, hook: hookJSON}

	var submit func(*source, *builder, *submitted) error
	switch o.via {
	case "http":
		h, err := newHTTPSubmitter(o)
		if err != nil {
			return notifyResult{}, err
		}
		defer h.client.CloseIdleConnections()
		submit = h.single
		if o.batch > 0 {
			submit = h.batchOf
			b.dedup = o.dedup
		}
	case "amqp":
		a, err := dialAMQPSubmitters(o)
		if err != nil {
			return notifyResult{}, err
		}
		defer a.close()
		submit = a.publish
		b.dedup = o.dedup
	}

	ctx, cancel := context.Background(), func() {}
	if o.count == 0 {
		ctx, cancel = context.WithTimeout(ctx, o.duration)
	}
	defer cancel()
	var sub submitted
	start := time.Now()
	src := &source{limit: o.count, ctx: ctx, start: start, rate: o.rate}
	var wg sync.WaitGroup
	errs := make(chan error, o.clients)
	for i := 0; i < o.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := submit(src, b, &sub); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	r := notifyResult{submitTime: time.Since(start)}
	select {
	case err := <-errs:
		return r, err
	default:
	}
	r.accepted, r.deduplicated, r.refused = sub.accepted.Load(), sub.deduplicated.Load(), sub.refused.Load()
	if p := sub.firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	r.complete = sk.waitFor(r.accepted, o.timeout)
	r.got = sk.counts()
	if !r.got.last.IsZero() {
		r.deliverTime = r.got.last.Sub(start)
	}
	return r, nil
}

// report prints the summary line and the JSON line.
func (r notifyResult) report(w io.Writer, o notifyOptions) error {
	lost := max(r.accepted-r.got.distinct, 0)
	dup := r.got.arrivals - r.got.distinct
	how := fmt.Sprintf("%s, %d clients", o.via, o.clients)
	if o.batch > 0 {
		how += fmt.Sprintf(", batches of %d", o.batch)
	}
	if o.dedup {
		how += ", idempotency keys"
	}
	if o.rate > 0 {
		how += fmt.Sprintf(", at %.0f/s", o.rate)
	}
	if o.delay > 0 {
		how += fmt.Sprintf(", webhook answers after %v", o.delay)
	}
	fmt.Fprintf(w, "notify (%s): submitted %d in %.2fs (%.0f/s), deduplicated %d, refused %d; "+
		"delivered %d in %.2fs (%.0f/s end to end), lost %d, duplicated %d, stray %d; latency p50 %v p99 %v p99.9 %v max %v\n",
		how, r.accepted, r.submitTime.Seconds(), perSecond(r.accepted, r.submitTime), r.deduplicated, r.refused,
		r.got.distinct, r.deliverTime.Seconds(), perSecond(r.got.distinct, r.deliverTime), lost, dup, r.got.stray,
		r.got.lat.quantile(0.5), r.got.lat.quantile(0.99), r.got.lat.quantile(0.999), r.got.lat.max)
	if r.firstErr != "" {
		fmt.Fprintf(w, "first refusal: %s\n", r.firstErr)
	}
	if !r.complete {
		fmt.Fprintf(w, "gave up waiting: nothing arrived for %v\n", o.timeout)
	}
	return o.common.emit(w, struct {
		Mode          string   `json:"mode"`
		Via           string   `json:"via"`
		Clients       int      `json:"clients"`
		Batch         int      `json:"batch"`
		Dedup         bool     `json:"dedup"`
		Rate          float64  `json:"rate"`
		DelayMS       float64  `json:"delay_ms"`
		SubmitSeconds float64  `json:"submit_seconds"`
		Submitted     int64    `json:"submitted"`
		SubmittedRate float64  `json:"submitted_per_s"`
		Deduplicated  int64    `json:"deduplicated"`
		Refused       int64    `json:"refused"`
		Seconds       float64  `json:"seconds"`
		Delivered     int64    `json:"delivered"`
		DeliveredRate float64  `json:"delivered_per_s"`
		Lost          int64    `json:"lost"`
		Duplicated    int64    `json:"duplicated"`
		Stray         int64    `json:"stray"`
		Latency       histJSON `json:"latency"`
	}{"notify", o.via, o.clients, o.batch, o.dedup, o.rate, float64(o.delay.Microseconds()) / 1000,
		r.submitTime.Seconds(), r.accepted, perSecond(r.accepted, r.submitTime), r.deduplicated, r.refused,
		r.deliverTime.Seconds(), r.got.distinct, perSecond(r.got.distinct, r.deliverTime), lost, dup, r.got.stray,
		r.got.lat.json()}, r.got.distinct)
}

// splitUserinfo removes the credentials from a URL and returns them.
func splitUserinfo(raw string) (string, string, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", err
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	return u.String(), user, pass, nil
}
