package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The tests in this file run the real amqp091-go client against a minimal
// server written with this package, over loopback TCP. They check both
// directions: the server decodes what the client sends, and the client
// accepts what the server encodes (the handshake replies, confirms, and
// deliveries echoing the published messages with every property set). The
// client's raw bytes are recorded and reused as decode cases and fuzz seeds.

// Values the client publishes; the capture tests assert them after decoding.
const (
	seedQueue      = "seed-queue"
	seedExchange   = "seed-exchange"
	seedRoutingKey = "seed.key"
	seedSmallBody  = "0123456789abcdef" // 16 bytes
	seedFrameMax   = FrameMinSize       // negotiated, so the large body is split
	seedLargeSize  = 10000
)

var seedTime = time.Date(2024, 5, 17, 12, 30, 45, 0, time.UTC)

// seedHeaders uses one value of every field type amqp091-go can send, with
// the Go types it decodes them into, so that they survive the trip client →
// server → client unchanged.
func seedHeaders() amqp091.Table {
	return amqp091.Table{
		"bool":    true,
		"int8":    int8(-8),
		"uint8":   uint8(200),
		"int16":   int16(-1600),
		"uint16":  uint16(60000),
		"int32":   int32(-320000),
		"uint32":  uint32(4000000000),
		"int64":   int64(-64000000000),
		"float32": float32(3.25),
		"float64": float64(-6.5e10),
		"decimal": amqp091.Decimal{Scale: 2, Value: 12345},
		"string":  "héllo",
		"bytes":   []byte{0, 1, 2, 0xff},
		"time":    seedTime,
		"void":    nil,
		"array":   []any{int32(1), "two", []any{true}, amqp091.Table{"k": "v"}},
		"table":   amqp091.Table{"nested": amqp091.Table{"deep": int64(7)}},
	}
}

func seedLargeBody() []byte {
	b := make([]byte, seedLargeSize)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// seedPublishings are the messages the client publishes, in order.
func seedPublishings() []amqp091.Publishing {
	return []amqp091.Publishing{
		{ContentType: "text/plain", Body: []byte(seedSmallBody)},
		{
			Headers:         seedHeaders(),
			ContentType:     "application/octet-stream",
			ContentEncoding: "identity",
			DeliveryMode:    amqp091.Persistent,
			Priority:        5,
			CorrelationId:   "corr-1",
			ReplyTo:         "reply-queue",
			Expiration:      "60000",
			MessageId:       "msg-1",
			Timestamp:       seedTime,
			Type:            "seed.type",
			UserId:          "guest",
			AppId:           "wire-test",
			Body:            seedLargeBody(),
		},
	}
}

// captured is what the client sent during one connection.
type captured struct {
	// stream is every byte the client wrote, protocol header first.
	stream []byte
	// frames are the frames of stream, with payloads copied.
	frames []Frame
}

var (
	captureOnce   sync.Once
	captureResult *captured
	captureErr    error
)

// captureClient runs one client connection (once per test binary) and returns
// what the client sent.
func captureClient(tb testing.TB) *captured {
	tb.Helper()
	captureOnce.Do(func() { captureResult, captureErr = runCapture() })
	if captureErr != nil {
		tb.Fatalf("capture amqp091-go connection: %v", captureErr)
	}
	return captureResult
}

func runCapture() (*captured, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()

	var rec bytes.Buffer
	serverDone := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		serverDone <- serveSeedConn(conn, &rec)
	}()

	clientErr := runSeedClient("amqp://guest:guest@" + ln.Addr().String() + "/")
	var srvErr error
	select {
	case srvErr = <-serverDone:
	case <-time.After(20 * time.Second):
		srvErr = errors.New("server did not finish")
	}
	if clientErr != nil || srvErr != nil {
		return nil, fmt.Errorf("client: %v; server: %v", clientErr, srvErr)
	}

	c := &captured{stream: rec.Bytes()}
	r := NewReader(bytes.NewReader(c.stream[len(ProtocolHeader):]))
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("re-read captured stream: %w", err)
		}
		f.Payload = append([]byte(nil), f.Payload...)
		c.frames = append(c.frames, f)
	}
	return c, nil
}

// runSeedClient drives amqp091-go through a connection that touches the
// handshake, declarations, confirms, consuming and publishing, and checks
// the deliveries the server echoes back.
func runSeedClient(url string) error {
	conn, err := amqp091.DialConfig(url, amqp091.Config{
		Locale: "en_US",
		Dial:   amqp091.DefaultDial(5 * time.Second),
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if !conn.IsClosed() && conn.Config.FrameSize != seedFrameMax {
		return fmt.Errorf("negotiated frame size %d, want %d", conn.Config.FrameSize, seedFrameMax)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if err := ch.Qos(10, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	if err := ch.ExchangeDeclare(seedExchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("exchange.declare: %w", err)
	}
	q, err := ch.QueueDeclare(seedQueue, true, false, false, false, amqp091.Table{
		"x-queue-type":  "classic",
		"x-max-length":  int32(1000),
		"x-message-ttl": int64(60000),
	})
	if err != nil {
		return fmt.Errorf("queue.declare: %w", err)
	}
	if q.Name != seedQueue || q.Messages != 3 || q.Consumers != 1 {
		return fmt.Errorf("queue.declare-ok decoded as %+v", q)
	}
	if err := ch.QueueBind(seedQueue, "seed.#", seedExchange, false, nil); err != nil {
		return fmt.Errorf("queue.bind: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("confirm.select: %w", err)
	}
	deliveries, err := ch.Consume(seedQueue, "seed-consumer", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("basic.consume: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pubs := seedPublishings()
	for i, p := range pubs {
		exchange, key := "", seedQueue
		if i > 0 {
			exchange, key = seedExchange, seedRoutingKey
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			return fmt.Errorf("confirm %d: ok=%v err=%v", i, ok, err)
		}
	}
	for i, p := range pubs {
		var d amqp091.Delivery
		select {
		case d = <-deliveries:
		case <-ctx.Done():
			return fmt.Errorf("delivery %d: %w", i, ctx.Err())
		}
		if err := checkDelivery(d, p, uint64(i+1)); err != nil {
			return fmt.Errorf("delivery %d: %w", i, err)
		}
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("ack %d: %w", i, err)
		}
	}
	if err := ch.Close(); err != nil {
		return fmt.Errorf("channel.close: %w", err)
	}
	return conn.Close()
}

// checkDelivery compares what the client decoded from the server's
// basic.deliver, content header and body frames with what it published.
func checkDelivery(d amqp091.Delivery, p amqp091.Publishing, tag uint64) error {
	if d.DeliveryTag != tag || d.ConsumerTag != "seed-consumer" || !d.Redelivered {
		return fmt.Errorf("deliver method decoded as tag=%d consumer=%q redelivered=%v", d.DeliveryTag, d.ConsumerTag, d.Redelivered)
	}
	if !bytes.Equal(d.Body, p.Body) {
		return fmt.Errorf("body of %d bytes, want %d", len(d.Body), len(p.Body))
	}
	got := []any{d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId,
		d.ReplyTo, d.Expiration, d.MessageId, d.Timestamp.Unix(), d.Type, d.UserId, d.AppId}
	want := []any{p.ContentType, p.ContentEncoding, p.DeliveryMode, p.Priority, p.CorrelationId,
		p.ReplyTo, p.Expiration, p.MessageId, p.Timestamp.Unix(), p.Type, p.UserId, p.AppId}
	if p.Timestamp.IsZero() {
		got[8], want[8] = d.Timestamp.IsZero(), true
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("properties decoded as %v, want %v", got, want)
	}
	if len(p.Headers) == 0 {
		if len(d.Headers) != 0 {
			return fmt.Errorf("unexpected headers %v", d.Headers)
		}
		return nil
	}
	// amqp091-go decodes timestamps in the local zone; compare instants.
	if tm, ok := d.Headers["time"].(time.Time); ok && tm.Equal(seedTime) {
		d.Headers["time"] = seedTime
	}
	if !reflect.DeepEqual(d.Headers, p.Headers) {
		return fmt.Errorf("headers decoded as %#v, want %#v", d.Headers, p.Headers)
	}
	return nil
}

// serveSeedConn is the server side: just enough of a broker to take the
// client through runSeedClient. It records every byte the client sends.
func serveSeedConn(conn net.Conn, rec *bytes.Buffer) error {
	r := NewReader(io.TeeReader(conn, rec))
	hdr, err := r.ReadProtocolHeader()
	if err != nil {
		return err
	}
	if hdr != ProtocolHeader {
		return fmt.Errorf("protocol header %q", hdr[:])
	}

	var out []byte
	flush := func() error {
		_, err := conn.Write(out)
		out = out[:0]
		return err
	}
	var dec MethodDecoder
	readMethod := func() (uint16, Method, error) {
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return 0, nil, err
			}
			if f.Type == FrameHeartbeat {
				continue
			}
			if f.Type != FrameMethod {
				return 0, nil, fmt.Errorf("frame type %d, want a method", f.Type)
			}
			m, err := dec.Decode(f.Payload)
			return f.Channel, m, err
		}
	}
	expect := func(want string) (Method, error) {
		_, m, err := readMethod()
		if err != nil {
			return nil, err
		}
		if m.Name() != want {
			return nil, fmt.Errorf("got %s, want %s", m.Name(), want)
		}
		return m, nil
	}

	out = AppendMethodFrame(out, 0, &ConnectionStart{
		VersionMajor: 0,
		VersionMinor: 9,
		ServerProperties: Table{
			"product":  "ums-wire-test",
			"platform": "Go",
			"capabilities": Table{
				"publisher_confirms":         true,
				"exchange_exchange_bindings": true,
				"basic.nack":                 true,
				"consumer_cancel_notify":     true,
				"connection.blocked":         true,
			},
		},
		Mechanisms: "PLAIN AMQPLAIN",
		Locales:    "en_US",
	})
	if err := flush(); err != nil {
		return err
	}
	m, err := expect("connection.start-ok")
	if err != nil {
		return err
	}
	if so := m.(*ConnectionStartOk); so.Mechanism != "PLAIN" || string(so.Response) != "\x00guest\x00guest" {
		return fmt.Errorf("start-ok %q %q", so.Mechanism, so.Response)
	}
	out = AppendMethodFrame(out, 0, &ConnectionTune{ChannelMax: 2047, FrameMax: seedFrameMax, Heartbeat: 0})
	if err := flush(); err != nil {
		return err
	}
	if m, err = expect("connection.tune-ok"); err != nil {
		return err
	}
	r.SetFrameMax(m.(*ConnectionTuneOk).FrameMax)
	if _, err = expect("connection.open"); err != nil {
		return err
	}
	out = AppendMethodFrame(out, 0, &ConnectionOpenOk{})
	// An unsolicited heartbeat, which the client must ignore.
	out = AppendHeartbeat(out)
	if err := flush(); err != nil {
		return err
	}

	var (
		confirming  bool
		published   uint64
		consumerCh  uint16
		consumerTag string
		header      ContentHeader
	)
	for {
		ch, m, err := readMethod()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *ChannelOpen:
			out = AppendMethodFrame(out, ch, &ChannelOpenOk{})
		case *BasicQos:
			out = AppendMethodFrame(out, ch, &BasicQosOk{})
		case *ExchangeDeclare:
			out = AppendMethodFrame(out, ch, &ExchangeDeclareOk{})
		case *QueueDeclare:
			out = AppendMethodFrame(out, ch, &QueueDeclareOk{Queue: m.Queue, MessageCount: 3, ConsumerCount: 1})
		case *QueueBind:
			out = AppendMethodFrame(out, ch, &QueueBindOk{})
		case *ConfirmSelect:
			confirming = true
			out = AppendMethodFrame(out, ch, &ConfirmSelectOk{})
		case *BasicConsume:
			consumerCh, consumerTag = ch, m.ConsumerTag
			out = AppendMethodFrame(out, ch, &BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		case *BasicAck:
		case *BasicPublish:
			exchange, key := m.Exchange, m.RoutingKey
			f, err := r.ReadFrame()
			if err != nil {
				return err
			}
			if f.Type != FrameHeader {
				return fmt.Errorf("frame type %d after basic.publish", f.Type)
			}
			if err := header.Decode(f.Payload); err != nil {
				return err
			}
			body := make([]byte, 0, header.BodySize)
			for uint64(len(body)) < header.BodySize {
				f, err := r.ReadFrame()
				if err != nil {
					return err
				}
				if f.Type != FrameBody {
					return fmt.Errorf("frame type %d in content body", f.Type)
				}
				body = append(body, f.Payload...)
			}
			published++
			if confirming {
				out = AppendMethodFrame(out, ch, &BasicAck{DeliveryTag: published})
			}
			if consumerTag != "" {
				out = AppendMethodFrame(out, consumerCh, &BasicDeliver{
					ConsumerTag: consumerTag,
					DeliveryTag: published,
					Redelivered: true,
					Exchange:    exchange,
					RoutingKey:  key,
				})
				out = AppendHeaderFrame(out, consumerCh, ClassBasic, uint64(len(body)), &header.Properties)
				out = AppendBodyFrames(out, consumerCh, body, seedFrameMax)
			}
		case *ChannelClose:
			out = AppendMethodFrame(out, ch, &ChannelCloseOk{})
		case *ConnectionClose:
			out = AppendMethodFrame(out, 0, &ConnectionCloseOk{})
			return flush()
		default:
			return fmt.Errorf("unexpected %s", m.Name())
		}
		// Flush once the client has nothing more in flight, as a server
		// batching its writes would.
		if r.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// capturedMethods decodes the captured method frames, in order.
func capturedMethods(t *testing.T, c *captured) []Method {
	t.Helper()
	var ms []Method
	for _, f := range c.frames {
		if f.Type != FrameMethod {
			continue
		}
		var d MethodDecoder
		m, err := d.Decode(f.Payload)
		if err != nil {
			t.Fatalf("decode captured method: %v", err)
		}
		ms = append(ms, m)
	}
	return ms
}

func TestCapturedHandshake(t *testing.T) {
	c := captureClient(t)
	if !bytes.HasPrefix(c.stream, ProtocolHeader[:]) {
		t.Fatalf("stream starts with %q", c.stream[:8])
	}
	ms := capturedMethods(t, c)
	var names []string
	for _, m := range ms {
		names = append(names, m.Name())
	}
	want := []string{
		"connection.start-ok", "connection.tune-ok", "connection.open",
		"channel.open", "basic.qos", "exchange.declare", "queue.declare", "queue.bind",
		"confirm.select", "basic.consume", "basic.publish", "basic.publish",
		"basic.ack", "basic.ack", "channel.close", "connection.close",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("methods:\n got %v\nwant %v", names, want)
	}

	so := ms[0].(*ConnectionStartOk)
	if so.Mechanism != "PLAIN" || string(so.Response) != "\x00guest\x00guest" || so.Locale != "en_US" {
		t.Errorf("start-ok = %q %q %q", so.Mechanism, so.Response, so.Locale)
	}
	if so.ClientProperties["product"] != "AMQP 0.9.1 Client" {
		t.Errorf("client product = %#v", so.ClientProperties["product"])
	}
	caps, _ := so.ClientProperties["capabilities"].(Table)
	if caps["publisher_confirms"] != true || caps["basic.nack"] != true {
		t.Errorf("client capabilities = %#v", caps)
	}
	if to := ms[1].(*ConnectionTuneOk); to.FrameMax != seedFrameMax || to.ChannelMax != 2047 {
		t.Errorf("tune-ok = %+v", to)
	}
	if o := ms[2].(*ConnectionOpen); o.VirtualHost != "/" {
		t.Errorf("open = %+v", o)
	}
	wantDeclare := &QueueDeclare{Queue: seedQueue, Durable: true, Arguments: Table{
		"x-queue-type": "classic", "x-max-length": int32(1000), "x-message-ttl": int64(60000),
	}}
	if qd := ms[6].(*QueueDeclare); !reflect.DeepEqual(qd, wantDeclare) {
		t.Errorf("queue.declare = %+v, want %+v", qd, wantDeclare)
	}
	if cs := ms[8].(*ConfirmSelect); cs.NoWait {
		t.Errorf("confirm.select = %+v", cs)
	}
	wantConsume := &BasicConsume{Queue: seedQueue, ConsumerTag: "seed-consumer"}
	if bc := ms[9].(*BasicConsume); !reflect.DeepEqual(bc, wantConsume) {
		t.Errorf("basic.consume = %+v, want %+v", bc, wantConsume)
	}
	if a := ms[12].(*BasicAck); a.DeliveryTag != 1 || a.Multiple {
		t.Errorf("basic.ack = %+v", a)
	}
	if cc := ms[15].(*ConnectionClose); cc.ReplyCode != ReplySuccess {
		t.Errorf("connection.close = %+v", cc)
	}
}

// TestCapturedPublish decodes the client's two basic.publish sequences:
// method, content header, and body frames split at the negotiated frame-max.
func TestCapturedPublish(t *testing.T) {
	c := captureClient(t)
	pubs := seedPublishings()
	var (
		dec     MethodDecoder
		n       int
		pending *ContentHeader
		body    []byte
		pubHdr  BasicPublish
	)
	for _, f := range c.frames {
		switch f.Type {
		case FrameMethod:
			m, err := dec.Decode(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := m.(*BasicPublish); ok {
				pubHdr = *p
			}
		case FrameHeader:
			pending = new(ContentHeader)
			if err := pending.Decode(f.Payload); err != nil {
				t.Fatal(err)
			}
			body = nil
		case FrameBody:
			if len(f.Payload)+FrameOverhead > seedFrameMax {
				t.Errorf("body frame of %d bytes exceeds frame-max", len(f.Payload))
			}
			body = append(body, f.Payload...)
			if uint64(len(body)) < pending.BodySize {
				continue
			}
			p := pubs[n]
			wantPub := BasicPublish{RoutingKey: seedQueue}
			if n > 0 {
				wantPub = BasicPublish{Exchange: seedExchange, RoutingKey: seedRoutingKey}
			}
			if pubHdr != wantPub {
				t.Errorf("publish %d: method %+v, want %+v", n, pubHdr, wantPub)
			}
			if !bytes.Equal(body, p.Body) {
				t.Errorf("publish %d: body %q", n, body)
			}
			want := ContentHeader{ClassID: ClassBasic, BodySize: uint64(len(p.Body)), Properties: Properties{
				ContentType: p.ContentType, ContentEncoding: p.ContentEncoding,
				DeliveryMode: p.DeliveryMode, Priority: p.Priority, CorrelationID: p.CorrelationId,
				ReplyTo: p.ReplyTo, Expiration: p.Expiration, MessageID: p.MessageId,
				Timestamp: p.Timestamp, Type: p.Type, UserID: p.UserId, AppID: p.AppId,
			}}
			if p.Headers != nil {
				want.Properties.Headers = Table{
					"bool": true, "int8": int8(-8), "uint8": uint8(200), "int16": int16(-1600),
					"uint16": uint16(60000), "int32": int32(-320000), "uint32": uint32(4000000000),
					"int64": int64(-64000000000), "float32": float32(3.25), "float64": float64(-6.5e10),
					"decimal": Decimal{Scale: 2, Value: 12345}, "string": "héllo",
					"bytes": []byte{0, 1, 2, 0xff}, "time": seedTime, "void": nil,
					"array": []any{int32(1), "two", []any{true}, Table{"k": "v"}},
					"table": Table{"nested": Table{"deep": int64(7)}},
				}
			}
			got := *pending
			got.Properties.Present = 0 // presence is checked by TestPresentZeroValues
			if !reflect.DeepEqual(got, want) {
				t.Errorf("publish %d: header\n got %#v\nwant %#v", n, *pending, want)
			}
			n++
		}
	}
	if n != len(pubs) {
		t.Fatalf("decoded %d publishes, want %d", n, len(pubs))
	}
	// The large body is split into frames of frame-max minus the overhead.
	var sizes []int
	for _, f := range c.frames {
		if f.Type == FrameBody {
			sizes = append(sizes, len(f.Payload))
		}
	}
	step := seedFrameMax - FrameOverhead
	want := []int{len(seedSmallBody), step, step, seedLargeSize - 2*step}
	if !reflect.DeepEqual(sizes, want) {
		t.Errorf("body frame sizes %v, want %v", sizes, want)
	}
}
