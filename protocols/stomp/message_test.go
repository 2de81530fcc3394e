package stomp

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/protocols/stomp/wire"
)

func TestStompParseDest(t *testing.T) {
	for _, c := range []struct {
		in        string
		kind      destKind
		name, key string
		x, rk     string // where a SEND goes
	}{
		{"/queue/a", destQueue, "a", "", "", "a"},
		{"/queue/a/b", destQueue, "a/b", "", "", "a/b"},
		{"/amq/queue/q", destAmqQueue, "q", "", "", "q"},
		{"/topic/a.b.#", destTopic, "amq.topic", "a.b.#", "amq.topic", "a.b.#"},
		{"/exchange/logs", destExchange, "logs", "", "logs", ""},
		{"/exchange/logs/a/b", destExchange, "logs", "a/b", "logs", "a/b"},
		{"/temp-queue/r", destTempQueue, "r", "", "r", ""},
		{"/reply-queue/amq.gen-1", destReplyQueue, "amq.gen-1", "", "", "amq.gen-1"},
	} {
		d, err := parseDest(c.in)
		if err != nil || d.kind != c.kind || d.name != c.name || d.key != c.key {
			t.Errorf("%s: %+v %v", c.in, d, err)
			continue
		}
		if x, rk := d.publishTarget(); d.kind != destTempQueue && (x != c.x || rk != c.rk) {
			t.Errorf("%s: publishes to %q %q", c.in, x, rk)
		}
	}
	for _, bad := range []string{"", "/queue/", "/topic/", "/exchange/", "/exchange//k", "queue/a", "/bogus/a", "/amq/queue/"} {
		if _, err := parseDest(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, c := range []struct{ x, k, want string }{
		{"", "q", "/queue/q"}, {"", "amq.gen-x", "/reply-queue/amq.gen-x"}, {"amq.topic", "a.b", "/topic/a.b"},
		{"logs", "", "/exchange/logs"}, {"logs", "k", "/exchange/logs/k"},
	} {
		if got := destinationOf(c.x, c.k); got != c.want {
			t.Errorf("destinationOf(%q, %q) = %q, want %q", c.x, c.k, got, c.want)
		}
	}
}

func TestStompMessageID(t *testing.T) {
	c := &conn{session: "session-abc"}
	for _, sub := range []string{"1", "a@@b", "/temp-queue/x", ""} {
		id := c.messageID(sub, 42)
		got, tag, ok := c.parseMessageID(id)
		if !ok || got != sub || tag != 42 {
			t.Errorf("%q: %q %d %v", id, got, tag, ok)
		}
	}
	for _, bad := range []string{"", "T_", "T_1@@session-abc@@x", "T_1@@session-other@@1", "1@@session-abc@@1"} {
		if _, _, ok := c.parseMessageID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestStompNegotiate(t *testing.T) {
	for _, c := range []struct {
		accept string
		want   string
		ok     bool
	}{{"", "1.0", true}, {"1.0", "1.0", true}, {"1.0,1.1", "1.1", true}, {"1.1, 1.2", "1.2", true}, {"2.0", "", false}} {
		h := frame.NewHeader()
		if c.accept != "" {
			h.Add(frame.AcceptVersion, c.accept)
		}
		if got, ok := negotiate(h); got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v", c.accept, got, ok)
		}
	}
}

// FuzzSTOMPHeaders decodes arbitrary frames' headers as a SEND does
// (destination, properties, queue arguments) and checks that nothing
// panics and that the properties of an accepted SEND come back unchanged
// through the headers of a MESSAGE.
func FuzzSTOMPHeaders(f *testing.F) {
	f.Add([]byte("SEND\ndestination:/queue/a\npersistent:true\npriority:9\nexpiration:100\ncorrelation-id:c\nreply-to:/temp-queue/r\namqp-message-id:m\ntype:t\napp-id:a\ntimestamp:17\ncontent-type:text/plain\ncontent-encoding:gzip\nx-max-priority:5\nx-single-active-consumer:true\ncustom:v\n\nbody\x00"))
	f.Add([]byte("SEND\ndestination:/exchange/e/k\npriority:300\n\n\x00"))
	f.Add([]byte("SEND\ndestination:/topic/a\nx-message-ttl:abc\nh:1\nh:2\n\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bufio.NewReader(bytes.NewReader(data)), wire.Limits{MaxFrameSize: 1 << 16})
		r.Escaping = wire.Escape12
		fr, err := r.Read()
		if err != nil || fr == nil {
			return
		}
		d, derr := parseDest(fr.Header.Get(frame.Destination))
		_, _ = queueArgs(fr.Header)
		if derr != nil {
			return
		}
		x, key := d.publishTarget()
		msg, err := toMessage(fr, x, key)
		if err != nil {
			return
		}
		h := frame.NewHeader()
		appendMessageHeaders(h, msg)
		back, err := toMessage(&frame.Frame{Command: frame.SEND, Header: h, Body: fr.Body}, x, key)
		if err != nil {
			t.Fatalf("MESSAGE headers %v of an accepted SEND refused: %v", h, err)
		}
		p, q := msg.Props, back.Props
		if !p.Timestamp.Equal(q.Timestamp) {
			t.Fatalf("timestamp %v then %v", p.Timestamp, q.Timestamp)
		}
		p.Timestamp = q.Timestamp
		// Headers named as MESSAGE's own (message-id, subscription...)
		// reach other protocols but cannot be repeated in a MESSAGE.
		for k := range p.Headers {
			if reservedMessage[k] {
				delete(p.Headers, k)
			}
		}
		if len(p.Headers) == 0 {
			p.Headers = nil
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("properties %+v\nthen %+v", p, q)
		}
	})
}
