package test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
)

// MQTT load generators, run against any broker (UMS or Mosquitto) by
// address. They are skipped unless UMS_MQTT_BENCH_ADDR is set; build them
// once with `go test -c -o mqttload ./test/` and run, for example:
//
//	UMS_MQTT_BENCH_ADDR=127.0.0.1:1883 QOS=1 PUBS=1 INFLIGHT=32 DURATION=10s \
//	    ./mqttload -test.run TestMQTTLoadThroughput -test.v
//	UMS_MQTT_BENCH_ADDR=127.0.0.1:1883 CONNS=19000 HOLD=60s \
//	    ./mqttload -test.run TestMQTTLoadIdle -test.v
//
// Settings (environment): QOS (0), PUBS publishers (1), INFLIGHT
// concurrent publishes per publisher (1), DURATION (10s), SIZE payload
// bytes (16, the first 8 carry the send time), RATE messages per second
// per publisher (0: as fast as possible), USER and PASS (guest/guest).

func benchEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func benchInt(t testing.TB, key string, def int) int {
	n, err := strconv.Atoi(benchEnv(key, strconv.Itoa(def)))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return n
}

func benchAddr(t testing.TB) string {
	addr := os.Getenv("UMS_MQTT_BENCH_ADDR")
	if addr == "" {
		t.Skip("set UMS_MQTT_BENCH_ADDR to run MQTT load generators")
	}
	return addr
}

func benchClient(t testing.TB, addr, id string, onMsg func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
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
	user, pass := benchEnv("USER", "guest"), benchEnv("PASS", "guest")
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true}); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// TestMQTTLoadThroughput: PUBS publishers → one subscriber on one topic
// filter; reports rates, loss and end-to-end latency.
func TestMQTTLoadThroughput(t *testing.T) {
	addr := benchAddr(t)
	qos := byte(benchInt(t, "QOS", 0))
	pubs := benchInt(t, "PUBS", 1)
	inflight := benchInt(t, "INFLIGHT", 1)
	size := max(benchInt(t, "SIZE", 16), 8)
	rate := benchInt(t, "RATE", 0)
	dur, err := time.ParseDuration(benchEnv("DURATION", "10s"))
	if err != nil {
		t.Fatal(err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	var (
		received atomic.Int64
		latMu    sync.Mutex
		lats     = make([]int64, 0, 1<<22)
	)
	sub := benchClient(t, addr, "bench-sub-"+run, func(p *paho.Publish) {
		if len(p.Payload) >= 8 {
			d := time.Now().UnixNano() - int64(binary.BigEndian.Uint64(p.Payload))
			latMu.Lock()
			lats = append(lats, d)
			latMu.Unlock()
		}
		received.Add(1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bench/" + run + "/#", QoS: qos}}}); err != nil {
		t.Fatal(err)
	}
	cancel()

	var published, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	clients := make([]*paho.Client, pubs)
	for i := range pubs {
		clients[i] = benchClient(t, addr, fmt.Sprintf("bench-pub-%s-%d", run, i), nil)
	}
	start := time.Now()
	for i, c := range clients {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var tick <-chan time.Time
				if rate > 0 {
					tk := time.NewTicker(time.Second * time.Duration(inflight) / time.Duration(rate))
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
					payload := make([]byte, size)
					binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
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
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	pubElapsed := time.Since(start)
	// Drain: wait until nothing arrives for a second.
	last := int64(-1)
	for received.Load() != last {
		last = received.Load()
		time.Sleep(time.Second)
	}
	recvElapsed := time.Since(start) - time.Second
	for _, c := range clients {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	_ = sub.Disconnect(&paho.Disconnect{})

	latMu.Lock()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return time.Duration(lats[int(float64(len(lats)-1)*p)])
	}
	latMu.Unlock()
	pubN, recvN := published.Load(), received.Load()
	t.Logf("qos %d, %d publisher(s) x %d in flight, %d B: published %d (%.0f msg/s, %d failed), received %d (%.0f msg/s), lost %d (%.2f%%), latency p50 %v p99 %v max %v",
		qos, pubs, inflight, size, pubN, float64(pubN)/pubElapsed.Seconds(), failed.Load(), recvN, float64(recvN)/recvElapsed.Seconds(),
		pubN-recvN, 100*float64(pubN-recvN)/float64(max(pubN, 1)), pct(0.5), pct(0.99), pct(1))
}

// TestMQTTLoadIdle opens CONNS idle MQTT 3.1.1 connections (keep-alive
// off), reports the connect rate and holds them for HOLD so the broker's
// memory can be read.
func TestMQTTLoadIdle(t *testing.T) {
	addr := benchAddr(t)
	n := benchInt(t, "CONNS", 1000)
	par := benchInt(t, "PARALLEL", 64)
	hold, err := time.ParseDuration(benchEnv("HOLD", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := benchEnv("PREFIX", strconv.FormatInt(time.Now().UnixNano(), 36))
	user, pass := benchEnv("USER", "guest"), benchEnv("PASS", "guest")
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := idleConnect(addr, fmt.Sprintf("idle-%s-%d", prefix, i), user, pass)
				if err != nil {
					failures.Add(1)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	t.Logf("%d connections in %v (%.0f connects/s), %d failed; holding for %v", n-int(failures.Load()), el.Round(time.Millisecond),
		float64(n-int(failures.Load()))/el.Seconds(), failures.Load(), hold)
	fmt.Printf("READY %d\n", n-int(failures.Load()))
	time.Sleep(hold)
	for _, c := range conns {
		if c != nil {
			_, _ = c.Write([]byte{0xE0, 0}) // DISCONNECT
			c.Close()
		}
	}
}

// idleConnect opens one MQTT 3.1.1 clean session with a raw CONNECT.
func idleConnect(addr, id, user, pass string) (net.Conn, error) {
	return rawConnect(addr, id, user, pass, 0xC2)
}

// rawConnect opens one MQTT 3.1.1 connection (keep-alive off) with the
// CONNECT flags given (0xC2: user, password, clean session).
func rawConnect(addr, id, user, pass string, flags byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	s := func(v string) []byte { return append([]byte{byte(len(v) >> 8), byte(len(v))}, v...) }
	body := append(s("MQTT"), 4, flags, 0, 0) // level 4, keep-alive 0
	body = append(body, s(id)...)
	body = append(body, s(user)...)
	body = append(body, s(pass)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		c.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK %v", ack)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// TestMQTTLoadServe runs a broker with MQTT on UMS_MQTT_SERVE for HOLD, so
// the load generators can be pointed at it under -test.cpuprofile.
func TestMQTTLoadServe(t *testing.T) {
	addr := os.Getenv("UMS_MQTT_SERVE")
	if addr == "" {
		t.Skip("set UMS_MQTT_SERVE to run a broker for load tests")
	}
	hold, err := time.ParseDuration(benchEnv("HOLD", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.MQTTListen, cfg.MQTTWSListen = addr, config.Off
	cfg.AMQPListen, cfg.HTTPListen = config.Off, config.Off
	cfg.STOMPListen, cfg.STOMPWSListen = config.Off, config.Off
	b, err := broker.New(cfg, mqttLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SERVING %s\n", b.Addr("mqtt"))
	time.Sleep(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// TestMQTTLoadRaw is TestMQTTLoadThroughput with lean MQTT 3.1.1 clients
// that write pre-encoded packets in batches and parse only what they must,
// so that on a small machine the broker, not the client library, is what
// gets measured. QoS 1 publishers keep INFLIGHT messages unacknowledged.
func TestMQTTLoadRaw(t *testing.T) {
	addr := benchAddr(t)
	qos := byte(benchInt(t, "QOS", 0))
	pubs := benchInt(t, "PUBS", 1)
	inflight := max(benchInt(t, "INFLIGHT", 64), 1)
	size := max(benchInt(t, "SIZE", 16), 8)
	rate := benchInt(t, "RATE", 0)
	dur, err := time.ParseDuration(benchEnv("DURATION", "10s"))
	if err != nil {
		t.Fatal(err)
	}
	user, pass := benchEnv("USER", "guest"), benchEnv("PASS", "guest")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	// Subscriber; PERSIST=1 makes it a persistent session (clean session
	// 0), whose QoS 1 messages go to the message store.
	subFlags := byte(0xC2)
	if benchEnv("PERSIST", "0") == "1" {
		subFlags = 0xC0
	}
	sc, err := rawConnect(addr, "raw-sub-"+run, user, pass, subFlags)
	if err != nil {
		t.Fatal(err)
	}
	filter := "bench/" + run + "/#"
	sub := append([]byte{0, 1}, rawStr(filter)...)
	sub = append(sub, qos)
	if _, err := sc.Write(append([]byte{0x82, byte(len(sub))}, sub...)); err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	lats := make([]int64, 0, 1<<22)
	subReady := make(chan struct{})
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		r := newRawReader(sc)
		var acks []byte
		for {
			typ, flags, body, err := r.next()
			if err != nil {
				return
			}
			switch typ {
			case 9: // SUBACK
				close(subReady)
			case 6: // PUBREL of a QoS 2 delivery
				acks = append(acks, 0x70, 2, body[0], body[1])
			case 3: // PUBLISH
				tl := int(binary.BigEndian.Uint16(body))
				p := body[2+tl:]
				switch (flags >> 1) & 3 {
				case 1:
					acks = append(acks, 0x40, 2, p[0], p[1]) // PUBACK
					p = p[2:]
				case 2:
					acks = append(acks, 0x50, 2, p[0], p[1]) // PUBREC
					p = p[2:]
				}
				if len(p) >= 8 {
					lats = append(lats, time.Now().UnixNano()-int64(binary.BigEndian.Uint64(p)))
				}
				received.Add(1)
			}
			if len(acks) > 0 && r.buffered() == 0 {
				if _, err := sc.Write(acks); err != nil {
					return
				}
				acks = acks[:0]
			}
		}
	}()
	select {
	case <-subReady:
	case <-time.After(10 * time.Second):
		t.Fatal("no SUBACK")
	}

	var published, acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range pubs {
		pubFlags := byte(0xC2) // PUBPERSIST=1: publishers with clean session 0
		if benchEnv("PUBPERSIST", "0") == "1" {
			pubFlags = 0xC0
		}
		pc, err := rawConnect(addr, fmt.Sprintf("raw-pub-%s-%d", run, i), user, pass, pubFlags)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		window := make(chan struct{}, inflight)
		if qos > 0 {
			go func() { // PUBACKs free window slots
				r := newRawReader(pc)
				for {
					typ, _, body, err := r.next()
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
			var id uint16
			batch := 64
			if qos > 0 {
				batch = min(batch, inflight)
			}
			var tick <-chan time.Time
			if rate > 0 {
				batch = max(1, min(batch, rate/100))
				tk := time.NewTicker(time.Second * time.Duration(batch) / time.Duration(rate))
				defer tk.Stop()
				tick = tk.C
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
				now := uint64(time.Now().UnixNano())
				for range batch {
					if qos > 0 {
						select {
						case window <- struct{}{}:
						case <-stop:
							return
						}
					}
					n := 2 + len(topic) + size
					h := byte(0x30)
					if qos > 0 {
						n += 2
						h |= qos << 1
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
					buf = binary.BigEndian.AppendUint64(buf, now)
					buf = append(buf, make([]byte, size-8)...)
				}
				if _, err := pc.Write(buf); err != nil {
					return
				}
				published.Add(int64(batch))
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	pubElapsed := time.Since(start)
	lastN := int64(-1)
	for received.Load() != lastN {
		lastN = received.Load()
		time.Sleep(time.Second)
	}
	recvElapsed := time.Since(start) - time.Second
	sc.Close()
	<-subDone
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return time.Duration(lats[int(float64(len(lats)-1)*p)])
	}
	pubN, recvN := published.Load(), received.Load()
	ackN := acked.Load()
	if qos == 0 {
		ackN = pubN
	}
	// QoS 1: a message counts as lost only if it was acknowledged and
	// never arrived; unacknowledged ones were refused.
	t.Logf("raw qos %d, %d publisher(s), window %d, %d B: published %d (%.0f msg/s), acknowledged %d, received %d (%.0f msg/s), lost %d (%.2f%%), latency p50 %v p99 %v max %v",
		qos, pubs, inflight, size, pubN, float64(pubN)/pubElapsed.Seconds(), ackN, recvN, float64(recvN)/recvElapsed.Seconds(),
		max(ackN-recvN, 0), 100*float64(max(ackN-recvN, 0))/float64(max(ackN, 1)), pct(0.5), pct(0.99), pct(1))
}

func rawStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func appendRemaining(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// rawReader splits an MQTT byte stream into packets.
type rawReader struct {
	r   *bufio.Reader
	buf []byte
}

func newRawReader(c net.Conn) *rawReader { return &rawReader{r: bufio.NewReaderSize(c, 64<<10)} }

func (r *rawReader) buffered() int { return r.r.Buffered() }

func (r *rawReader) next() (typ, flags byte, body []byte, err error) {
	h, err := r.r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return 0, 0, nil, err
	}
	return h >> 4, h & 0x0F, r.buf, nil
}
