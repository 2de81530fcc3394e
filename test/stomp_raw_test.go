package test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// Each malformed or refused frame gets an ERROR frame with a message
// header and a body, then the connection is closed; other connections go
// on undisturbed.
func TestStompRawErrors(t *testing.T) {
	b := startStomp(t, testutil.WithConfig(func(c *config.Config) {
		c.STOMPMaxFrameSize = 4096
		c.STOMPMaxHeaders = 8
		c.STOMPMaxHeaderLength = 256
	}))
	bystander := stompDial(t, b.STOMPAddr)
	watch := stompSubscribe(t, bystander, "/queue/bystander", stomp.AckAuto)

	const connect = "CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\nhost:/\n\n\x00"
	for _, c := range []struct {
		name      string
		connected bool   // CONNECT first
		send      string // the offending bytes
		message   string // ERROR message prefix
	}{
		{"frame before CONNECT", false, "SEND\ndestination:/queue/a\n\nx\x00", "Bad CONNECT"},
		{"unknown command", true, "FROB\n\n\x00", "Invalid command"},
		{"server frame from a client", true, "MESSAGE\n\n\x00", "Invalid command"},
		{"header without colon", true, "SEND\ndestination\n\n\x00", "Malformed frame"},
		{"bad content-length", true, "SEND\ndestination:/queue/a\ncontent-length:ten\n\n\x00", "Malformed frame"},
		{"body longer than content-length", true, "SEND\ndestination:/queue/a\ncontent-length:1\n\nxy\x00", "Malformed frame"},
		{"content-length over the frame limit", true, "SEND\ndestination:/queue/a\ncontent-length:100000\n\n", "Frame too large"},
		{"body over the frame limit", true, "SEND\ndestination:/queue/a\n\n" + strings.Repeat("x", 5000) + "\x00", "Frame too large"},
		{"too many headers", true, "SEND\ndestination:/queue/a\n" + strings.Repeat("h:v\n", 9) + "\n\x00", "Too many headers"},
		{"header too long", true, "SEND\ndestination:/queue/" + strings.Repeat("a", 300) + "\n\n\x00", "Header too long"},
		{"undefined escape", true, "SEND\ndestination:/queue/a\nx:\\t\n\n\x00", "Invalid header encoding"},
		{"missing destination", true, "SEND\n\nx\x00", "Missing destination"},
		{"unknown destination", true, "SEND\ndestination:/bogus/a\n\nx\x00", "Unknown destination"},
		{"subscribe without id", true, "SUBSCRIBE\ndestination:/queue/a\n\n\x00", "Missing header"},
		{"bad ack mode", true, "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:sometimes\n\n\x00", "Invalid header"},
		{"ACK of an unknown id", true, "ACK\nid:T_1@@session-x@@1\n\n\x00", "Unknown message id"},
		{"NACK of a garbage id", true, "NACK\nid:garbage\n\n\x00", "Unknown message id"},
		{"ACK without id", true, "ACK\n\n\x00", "Missing header"},
		{"unsubscribe unknown", true, "UNSUBSCRIBE\nid:zz\n\n\x00", "Unknown subscription"},
		{"second CONNECT", true, connect, "Already connected"},
		{"bad priority", true, "SEND\ndestination:/queue/a\npriority:high\n\n\x00", "Invalid header"},
		{"bad x- argument", true, "SEND\ndestination:/queue/xa\nx-max-length:many\n\n\x00", "Invalid header"},
		{"invalid queue argument", true, "SEND\ndestination:/queue/xb\nx-max-priority:1000\n\n\x00", "precondition_failed"},
		{"subscribe to a reply queue", true, "SUBSCRIBE\nid:1\ndestination:/reply-queue/x\n\n\x00", "Invalid destination"},
		{"commit without begin", true, "COMMIT\ntransaction:t\n\n\x00", "Bad transaction"},
		{"begin twice", true, "BEGIN\ntransaction:t\n\n\x00BEGIN\ntransaction:t\n\n\x00", "Bad transaction"},
		{"bad login", false, "CONNECT\naccept-version:1.2\nlogin:guest\npasscode:wrong\n\n\x00", "Access refused"},
		{"unknown vhost", false, "CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\nhost:nowhere\n\n\x00", "Access refused"},
		{"unsupported version", false, "CONNECT\naccept-version:2.0\nlogin:guest\npasscode:guest\n\n\x00", "Version mismatch"},
		{"bad heart-beat", false, "CONNECT\naccept-version:1.2\nheart-beat:soon\n\n\x00", "Bad CONNECT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dialRawStomp(t, b.STOMPAddr)
			if c.connected {
				r.write(connect)
				r.expect("CONNECTED")
			}
			r.write(c.send)
			f := r.expectError(c.message)
			if len(f.Body) == 0 {
				t.Fatalf("ERROR %v without a body", headers(f))
			}
		})
	}
	// The ERROR answers a receipt request with its receipt-id.
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect()
	r.write("SEND\ndestination:/nowhere\nreceipt:77\n\nx\x00")
	if f := r.expectError("Unknown destination"); f.Header.Get("receipt-id") != "77" {
		t.Fatalf("receipt-id %q", f.Header.Get("receipt-id"))
	}
	stompSend(t, bystander, "/queue/bystander", "still here", stomp.SendOpt.Receipt)
	if m := stompRecv(t, watch); string(m.Body) != "still here" {
		t.Fatalf("bystander got %q", m.Body)
	}
}

// Each version on the wire: what CONNECTED says, how headers are escaped
// both ways, and how ACK names a message.
func TestStompRawVersions(t *testing.T) {
	b := startStomp(t)
	for _, c := range []struct {
		version, accept string
		sentHeader      string // a header value as the client writes it
		value           string // what it means
		wireOut         string // how the server writes it back
		ack             func(m map[string]string) string
	}{
		{"1.0", "", `a:b\c`, `a:b\c`, `a:b\c`,
			func(m map[string]string) string { return "ACK\nmessage-id:" + m["message-id"] + "\nreceipt:a\n\n\x00" }},
		{"1.1", "accept-version:1.0,1.1", `a\cb\\c\nd`, "a:b\\c\nd", `a\cb\\c\nd`,
			func(m map[string]string) string {
				return "ACK\nsubscription:" + m["subscription"] + "\nmessage-id:" + m["message-id"] + "\nreceipt:a\n\n\x00"
			}},
		{"1.2", "accept-version:1.1,1.2", `a\cb\\c\r\n`, "a:b\\c\r\n", `a\cb\\c\r\n`,
			func(m map[string]string) string { return "ACK\nid:" + m["ack"] + "\nreceipt:a\n\n\x00" }},
	} {
		t.Run(c.version, func(t *testing.T) {
			r := dialRawStomp(t, b.STOMPAddr)
			var cf = r.connect()
			if c.accept != "" {
				r = dialRawStomp(t, b.STOMPAddr)
				cf = r.connect(c.accept, "heart-beat:0,0")
			}
			if cf.Header.Get("version") != c.version || !strings.HasPrefix(cf.Header.Get("server"), "UMS/") ||
				!strings.HasPrefix(cf.Header.Get("session"), "session-") {
				t.Fatalf("CONNECTED %v", headers(cf))
			}
			if hb, ok := cf.Header.Contains("heart-beat"); (c.version == "1.0") == ok || (ok && hb != "0,0") {
				t.Fatalf("CONNECTED heart-beat %q %v", hb, ok)
			}
			q := "/queue/raw" + c.version
			r.write("SUBSCRIBE\nid:s\ndestination:" + q + "\nack:client\n\n\x00")
			r.write("SEND\ndestination:" + q + "\nv:" + c.sentHeader + "\n\nbody\x00")
			// Read the MESSAGE's raw bytes, to see the escaping.
			r.nc.SetReadDeadline(time.Now().Add(waitFor))
			raw := readRawFrame(t, r)
			if !strings.HasPrefix(raw, "MESSAGE\n") || !strings.Contains(raw, "\nv:"+c.wireOut+"\n") {
				t.Fatalf("MESSAGE on the wire %q, want header v:%s", raw, c.wireOut)
			}
			m := map[string]string{}
			for _, line := range strings.Split(strings.SplitN(raw, "\n\n", 2)[0], "\n")[1:] {
				k, v, _ := strings.Cut(line, ":")
				if _, dup := m[k]; !dup {
					m[k] = v
				}
			}
			if (m["ack"] != "") != (c.version == "1.2") {
				t.Fatalf("ack header %q in %s", m["ack"], c.version)
			}
			r.write(c.ack(m))
			r.expect("RECEIPT")
			r.write("DISCONNECT\nreceipt:bye\n\n\x00")
			if f := r.expect("RECEIPT"); f.Header.Get("receipt-id") != "bye" {
				t.Fatalf("%v", headers(f))
			}
			r.expectEOF()
		})
	}
	_, ch := newServer(b).channel(t)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		if q, err := ch.QueueDeclarePassive("raw"+v, true, false, false, false, nil); err != nil || q.Messages != 0 {
			t.Fatalf("raw%s after ACK: %+v %v", v, q, err)
		}
	}
}

// readRawFrame reads one frame's bytes up to its NUL, skipping EOLs.
func readRawFrame(t testing.TB, r *rawStomp) string {
	t.Helper()
	var sb strings.Builder
	var b [1]byte
	for {
		if _, err := io.ReadFull(r.nc, b[:]); err != nil {
			t.Fatalf("read: %v (so far %q)", err, sb.String())
		}
		if sb.Len() == 0 && (b[0] == '\n' || b[0] == '\r') {
			continue
		}
		if b[0] == 0 {
			return sb.String()
		}
		sb.WriteByte(b[0])
	}
}

// Heart-beats: the server sends them as often as the client asked, and
// closes a connection whose client stays silent past its own period.
func TestStompRawHeartBeats(t *testing.T) {
	b := startStomp(t)
	r := dialRawStomp(t, b.STOMPAddr)
	cf := r.connect("accept-version:1.2", "heart-beat:200,100")
	if hb := cf.Header.Get("heart-beat"); hb != "100,200" {
		t.Fatalf("CONNECTED heart-beat %q, want 100,200", hb)
	}
	// EOLs arrive about every 100 ms while the client keeps beating.
	start := time.Now()
	var b1 [1]byte
	beats := 0
	for time.Since(start) < time.Second {
		r.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := r.nc.Read(b1[:]); err != nil {
			t.Fatalf("after %d beats: %v", beats, err)
		}
		if b1[0] != '\n' {
			t.Fatalf("got %q, want heart-beats", b1[0])
		}
		beats++
		r.write("\n")
	}
	if beats < 4 {
		t.Fatalf("%d heart-beats in a second, want about 10", beats)
	}
	// Silence: the server gives up after twice the period and a grace.
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	silent := time.Now()
	for {
		f, err := r.r.Read()
		if err != nil {
			t.Fatalf("no ERROR before the end: %v", err)
		}
		if f == nil {
			continue
		}
		if f.Command != "ERROR" || f.Header.Get("message") != "Heart-beat timeout" {
			t.Fatalf("%s %v", f.Command, headers(f))
		}
		break
	}
	if d := time.Since(silent); d > 3*time.Second {
		t.Fatalf("closed after %v of silence", d)
	}
	r.expectEOF()
}

// go-stomp with heart-beats on both sides stays connected across several
// periods.
func TestStompHeartBeatsGoStomp(t *testing.T) {
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr, stomp.ConnOpt.HeartBeat(100*time.Millisecond, 100*time.Millisecond),
		stomp.ConnOpt.HeartBeatError(200*time.Millisecond))
	s := stompSubscribe(t, c, "/queue/hb", stomp.AckAuto)
	time.Sleep(700 * time.Millisecond) // several periods of nothing but heart-beats
	stompSend(t, c, "/queue/hb", "alive", stomp.SendOpt.Receipt)
	if m := stompRecv(t, s); string(m.Body) != "alive" {
		t.Fatalf("%q", m.Body)
	}
}
