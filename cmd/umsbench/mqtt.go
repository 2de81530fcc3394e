package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mqttOptions are the flags of the mqtt mode.
type mqttOptions struct {
	addr       string
	user, pass string
	client     string // "raw" or "paho"
	qos        int
	pubs       int
	inflight   int
	rate       int
	duration   time.Duration
	size       int
	persist    bool
	pubPersist bool

	idle     int // > 0: the idle-connection scenario
	parallel int
	hold     time.Duration
	prefix   string
	spread   int

	common commonOptions
}

// mqttMain runs the mqtt mode: publishers to one subscriber on one topic
// filter, or (-idle N) many idle connections.
func mqttMain(args []string, stdout, stderr io.Writer) error {
	var o mqttOptions
	fs := flag.NewFlagSet("umsbench mqtt", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:1883", "host:port of the broker's MQTT listener")
	fs.StringVar(&o.user, "user", "guest", "user name")
	fs.StringVar(&o.pass, "pass", "guest", "password")
	fs.StringVar(&o.client, "client", "raw", "raw: lean MQTT 3.1.1 clients writing pre-encoded packets in batches; paho: paho.golang MQTT 5 clients")
	fs.IntVar(&o.qos, "qos", 0, "QoS of the publishes and the subscription (0, 1 or 2)")
	fs.IntVar(&o.pubs, "pubs", 1, "publishing connections, each on its own topic under the subscriber's filter")
	fs.IntVar(&o.inflight, "inflight", 0, "raw: unacknowledged QoS 1/2 publishes per publisher (0: 64); paho: concurrent publishes per publisher (0: 1)")
	fs.IntVar(&o.rate, "rate", 0, "messages per second per publisher (0: as fast as possible)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&o.size, "size", 16, "payload bytes (at least 8: the send time; 16 and more also carry the sender and sequence that duplicates are counted by)")
	fs.BoolVar(&o.persist, "persist", false, "raw: the subscriber keeps its session (clean session 0), so its QoS 1/2 messages go to the message store")
	fs.BoolVar(&o.pubPersist, "pubpersist", false, "raw: the publishers keep their sessions (clean session 0)")
	fs.IntVar(&o.idle, "idle", 0, "open this many idle MQTT 3.1.1 connections (keep-alive off) instead, report the connect rate, print READY <n> and hold them")
	fs.IntVar(&o.parallel, "parallel", 64, "-idle: connections opened concurrently")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "-idle: how long to hold the connections (SIGINT or SIGTERM ends it early)")
	fs.StringVar(&o.prefix, "prefix", "", "-idle: client id prefix (default: unique per run), so several processes can share a broker")
	fs.IntVar(&o.spread, "spread", 0, "-idle to a loopback address: open the connections from this many loopback source addresses (127.0.0.2 on), so that this client's kernel does not spend most of its time looking for a free ephemeral port to the one broker port (0: from the default address)")
	o.common.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if o.qos < 0 || o.qos > 2 {
		return fmt.Errorf("-qos %d: want 0, 1 or 2", o.qos)
	}
	o.size = max(o.size, stampTime)
	if err := o.common.start(); err != nil {
		return err
	}
	if o.idle > 0 {
		return runIdle(o, stdout)
	}
	var r mqttResult
	var err error
	switch o.client {
	case "raw":
		if o.inflight <= 0 {
			o.inflight = 64
		}
		r, err = runRaw(o)
	case "paho":
		if o.inflight <= 0 {
			o.inflight = 1
		}
		if o.persist || o.pubPersist {
			return fmt.Errorf("-persist and -pubpersist need -client raw")
		}
		r, err = runPaho(o)
	default:
		return fmt.Errorf("-client %q: want raw or paho", o.client)
	}
	if err != nil {
		return err
	}
	return r.report(stdout, o)
}

// mqttResult is what a throughput run measured.
type mqttResult struct {
	published   int64 // messages written (raw) or whose publish completed (paho)
	acked       int64 // of those, acknowledged by the broker (QoS 0: all)
	failed      int64 // publishes that returned an error (paho)
	pubElapsed  time.Duration
	recvElapsed time.Duration
	got         *tally
}

// report prints the summary line and the JSON line. A message counts as
// lost only if the broker acknowledged it (QoS 0: if it was written) and
// it never arrived: unacknowledged ones were refused or still in flight.
func (r mqttResult) report(w io.Writer, o mqttOptions) error {
	received, distinct := r.got.counts()
	lost := max(r.acked-distinct, 0)
	dup := received - distinct
	l := r.got.latencies()
	fmt.Fprintf(w, "mqtt %s qos %d, %d publisher(s), window %d, %d B: published %d (%.0f msg/s, %d failed), acknowledged %d, received %d (%.0f msg/s), lost %d (%.2f%%), duplicated %d, latency p50 %v p99 %v p99.9 %v max %v\n",
		o.client, o.qos, o.pubs, o.inflight, o.size, r.published, perSecond(r.published, r.pubElapsed), r.failed, r.acked,
		received, perSecond(received, r.recvElapsed), lost, 100*float64(lost)/float64(max(r.acked, 1)), dup,
		l.pct(0.5), l.pct(0.99), l.pct(0.999), l.pct(1))
	return o.common.emit(w, struct {
		Mode          string      `json:"mode"`
		Client        string      `json:"client"`
		QoS           int         `json:"qos"`
		Publishers    int         `json:"publishers"`
		Inflight      int         `json:"inflight"`
		Rate          int         `json:"rate"`
		Size          int         `json:"size"`
		Persist       bool        `json:"persist"`
		PubPersist    bool        `json:"pubpersist"`
		Seconds       float64     `json:"seconds"`
		Published     int64       `json:"published"`
		PublishedRate float64     `json:"published_per_s"`
		Failed        int64       `json:"failed"`
		Acknowledged  int64       `json:"acknowledged"`
		Received      int64       `json:"received"`
		ReceivedRate  float64     `json:"received_per_s"`
		Lost          int64       `json:"lost"`
		Duplicated    int64       `json:"duplicated"`
		Latency       latencyJSON `json:"latency"`
	}{"mqtt", o.client, o.qos, o.pubs, o.inflight, o.rate, o.size, o.persist, o.pubPersist, r.pubElapsed.Seconds(),
		r.published, perSecond(r.published, r.pubElapsed), r.failed, r.acked, received, perSecond(received, r.recvElapsed),
		lost, dup, l.json()}, received)
}

// runID makes client ids and topics unique per run.
func runID() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

// drain waits until nothing arrived for a second and returns the time from
// start to the last arrival (to within that second).
func drain(got *tally, start time.Time) time.Duration {
	last := int64(-1)
	for {
		n, _ := got.counts()
		if n == last {
			return time.Since(start) - time.Second
		}
		last = n
		time.Sleep(time.Second)
	}
}

// runRaw measures with the lean clients of mqttwire.go: QoS 1 and 2
// publishers keep up to o.inflight messages unacknowledged.
func runRaw(o mqttOptions) (mqttResult, error) {
	run := runID()
	qos := byte(o.qos)
	res := mqttResult{got: newTally()}

	subFlags := connectClean
	if o.persist {
		subFlags = connectPersistent
	}
	sc, err := rawConnect(o.addr, "raw-sub-"+run, o.user, o.pass, subFlags)
	if err != nil {
		return res, fmt.Errorf("subscriber: %w", err)
	}
	sub := append([]byte{0, 1}, rawStr("bench/"+run+"/#")...)
	sub = append(sub, qos)
	if _, err := sc.Write(append(appendRemaining([]byte{0x82}, len(sub)), sub...)); err != nil {
		sc.Close()
		return res, err
	}
	subReady := make(chan byte, 1)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		r := newRawReader(sc)
		var acks []byte
		for {
			typ, flags, body, err := r.Next()
			if err != nil {
				return
			}
			switch typ {
			case 9: // SUBACK
				if len(body) >= 3 {
					subReady <- body[2]
				}
			case 6: // PUBREL of a QoS 2 delivery
				acks = append(acks, 0x70, 2, body[0], body[1])
			case 3: // PUBLISH
				if len(body) < 2 {
					return
				}
				p := body[2+int(binary.BigEndian.Uint16(body)):]
				switch (flags >> 1) & 3 {
				case 1:
					acks = append(acks, 0x40, 2, p[0], p[1]) // PUBACK
					p = p[2:]
				case 2:
					acks = append(acks, 0x50, 2, p[0], p[1]) // PUBREC
					p = p[2:]
				}
				res.got.add(p, time.Now().UnixNano())
			}
			if len(acks) > 0 && r.Buffered() == 0 {
				if _, err := sc.Write(acks); err != nil {
					return
				}
				acks = acks[:0]
			}
		}
	}()
	select {
	case code := <-subReady:
		if code > 2 {
			sc.Close()
			return res, fmt.Errorf("subscription refused: SUBACK %#x", code)
		}
	case <-time.After(10 * time.Second):
		sc.Close()
		return res, fmt.Errorf("no SUBACK")
	}

	pubFlags := connectClean
	if o.pubPersist {
		pubFlags = connectPersistent
	}
	conns := make([]net.Conn, 0, o.pubs)
	defer func() {
		for _, c := range conns {
			rawDisconnect(c)
		}
	}()
	for i := range o.pubs {
		pc, err := rawConnect(o.addr, fmt.Sprintf("raw-pub-%s-%d", run, i), o.user, o.pass, pubFlags)
		if err != nil {
			sc.Close()
			return res, fmt.Errorf("publisher %d: %w", i, err)
		}
		conns = append(conns, pc)
	}

	var published, acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i, pc := range conns {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		window := make(chan struct{}, o.inflight)
		if qos > 0 {
			go func() { // acknowledgements free window slots
				r := newRawReader(pc)
				for {
					typ, _, body, err := r.Next()
					if err != nil {
						return
					}
					switch typ {
					case 4, 7: // PUBACK, PUBCOMP
						acked.Add(1)
						<-window
					case 5: // PUBREC: release it
						if _, err := pc.Write([]byte{0x62, 2, body[0], body[1]}); err != nil {
							return
						}
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := newSenderID()
			var id uint16
			var seq uint32
			batch := 64
			if qos > 0 {
				batch = min(batch, o.inflight)
			}
			var tick <-chan time.Time
			if o.rate > 0 {
				batch = max(1, min(batch, o.rate/100))
				tk := time.NewTicker(time.Second * time.Duration(batch) / time.Duration(o.rate))
				defer tk.Stop()
				tick = tk.C
			}
			n := 2 + len(topic) + o.size
			h := byte(0x30)
			if qos > 0 {
				n += 2
				h |= qos << 1
			}
			var buf []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				if tick != nil {
					select {
					case <-tick:
					case <-stop:
						return
					}
				}
				buf = buf[:0]
				now := time.Now().UnixNano()
				for range batch {
					if qos > 0 {
						select {
						case window <- struct{}{}:
						case <-stop:
							return
						}
					}
					buf = append(buf, h)
					buf = appendRemaining(buf, n)
					buf = append(buf, rawStr(topic)...)
					if qos > 0 {
						id++
						if id == 0 {
							id = 1
						}
						buf = binary.BigEndian.AppendUint16(buf, id)
					}
					off := len(buf)
					buf = append(buf, make([]byte, o.size)...)
					putStamp(buf[off:], now, sender, seq)
					seq++
				}
				if _, err := pc.Write(buf); err != nil {
					return
				}
				published.Add(int64(batch))
			}
		}()
	}
	time.Sleep(o.duration)
	close(stop)
	wg.Wait()
	res.pubElapsed = time.Since(start)
	res.recvElapsed = drain(res.got, start)
	rawDisconnect(sc)
	<-subDone
	res.published, res.acked = published.Load(), acked.Load()
	if qos == 0 {
		res.acked = res.published
	}
	return res, nil
}

// pahoClient connects one paho.golang MQTT 5 client with a clean start.
func pahoClient(o mqttOptions, id string, onMsg func(*paho.Publish)) (*paho.Client, error) {
	conn, err := net.DialTimeout("tcp", o.addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: conn}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		Username: o.user, UsernameFlag: true, Password: []byte(o.pass), PasswordFlag: true}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	return c, nil
}

// runPaho measures with paho.golang clients: every publisher runs
// o.inflight goroutines, each waiting for its publish to complete.
func runPaho(o mqttOptions) (mqttResult, error) {
	run := runID()
	qos := byte(o.qos)
	res := mqttResult{got: newTally()}
	sub, err := pahoClient(o, "bench-sub-"+run, func(p *paho.Publish) { res.got.add(p.Payload, time.Now().UnixNano()) })
	if err != nil {
		return res, fmt.Errorf("subscriber: %w", err)
	}
	defer sub.Disconnect(&paho.Disconnect{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bench/" + run + "/#", QoS: qos}}})
	cancel()
	if err != nil {
		return res, fmt.Errorf("subscribe: %w", err)
	}

	clients := make([]*paho.Client, 0, o.pubs)
	defer func() {
		for _, c := range clients {
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}()
	for i := range o.pubs {
		c, err := pahoClient(o, fmt.Sprintf("bench-pub-%s-%d", run, i), nil)
		if err != nil {
			return res, fmt.Errorf("publisher %d: %w", i, err)
		}
		clients = append(clients, c)
	}
	var published, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		sender := newSenderID()
		var seq atomic.Uint32
		for range o.inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var tick <-chan time.Time
				if o.rate > 0 {
					tk := time.NewTicker(time.Second * time.Duration(o.inflight) / time.Duration(o.rate))
					defer tk.Stop()
					tick = tk.C
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					if tick != nil {
						select {
						case <-tick:
						case <-stop:
							return
						}
					}
					payload := make([]byte, o.size)
					putStamp(payload, time.Now().UnixNano(), sender, seq.Add(1)-1)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
					cancel()
					if err != nil {
						failed.Add(1)
						continue
					}
					published.Add(1)
				}
			}()
		}
	}
	time.Sleep(o.duration)
	close(stop)
	wg.Wait()
	res.pubElapsed = time.Since(start)
	res.recvElapsed = drain(res.got, start)
	res.published, res.failed = published.Load(), failed.Load()
	res.acked = res.published // a paho publish returns once acknowledged (QoS 0: written)
	return res, nil
}
