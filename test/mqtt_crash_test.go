package test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"
)

var mqttAddrRE = regexp.MustCompile(`MQTT listening.* addr=(127\.0\.0\.1:\d+)`)

// startMQTTProc runs umsd with only MQTT on a free loopback port and
// returns the process and the MQTT address.
func startMQTTProc(t *testing.T, dataDir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(umsdBinary(t), "--data-dir", dataDir, "--mqtt-listen", "127.0.0.1:0",
		"--amqp-listen", "off", "--http-listen", "off", "--mqtt-ws-listen", "off",
		"--stomp-listen", "off", "--stomp-ws-listen", "off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
			if m := mqttAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case a := <-addr:
		return cmd, a
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("umsd did not start:\n%s", logs)
		return nil, ""
	}
}

// mqttCrashPublisher publishes QoS 1 messages (payload = their name) with up
// to 256 unacknowledged, recording each one the broker acknowledged, until
// the connection breaks.
func mqttCrashPublisher(addr, clientID, prefix string, confirmed *sync.Map) {
	c, err := rawConnect(addr, clientID, "guest", "guest", 0xC2)
	if err != nil {
		return
	}
	defer c.Close()
	window := make(chan struct{}, 256)
	broken := make(chan struct{})
	var mu sync.Mutex
	sent := map[uint16]string{}
	go func() {
		defer close(broken)
		r := newRawReader(c)
		for {
			typ, _, body, err := r.Next()
			if err != nil {
				c.Close()
				return
			}
			if typ == 4 && len(body) >= 2 { // PUBACK
				id := binary.BigEndian.Uint16(body)
				mu.Lock()
				name, ok := sent[id]
				delete(sent, id)
				mu.Unlock()
				if ok {
					confirmed.Store(name, true)
					<-window
				}
			}
		}
	}()
	for n := 0; ; n++ {
		select {
		case window <- struct{}{}:
		case <-broken:
			return
		}
		id := uint16(n%65535 + 1)
		name := fmt.Sprintf("%s-%d", prefix, n)
		mu.Lock()
		sent[id] = name
		mu.Unlock()
		body := append(rawStr("crash/"+prefix), byte(id>>8), byte(id))
		body = append(body, name...)
		pkt := appendRemaining([]byte{0x32}, len(body))
		if _, err := c.Write(append(pkt, body...)); err != nil {
			return
		}
	}
}

// drainMQTT connects the persistent session clientID (subscribing to
// crash/# the first time), acknowledges everything it receives and
// returns how many times each payload came, once nothing arrived for a
// second.
func drainMQTT(t *testing.T, addr, clientID string, subscribe bool) map[string]int {
	t.Helper()
	c, err := rawConnect(addr, clientID, "guest", "guest", 0xC0) // clean session 0
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if subscribe {
		sub := append([]byte{0, 1}, rawStr("crash/#")...)
		sub = append(sub, 1)
		if _, err := c.Write(append([]byte{0x82, byte(len(sub))}, sub...)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	r := newRawReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		typ, flags, body, err := r.Next()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		if typ != 3 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		p := body[2+tl:]
		if (flags>>1)&3 > 0 {
			if _, err := c.Write([]byte{0x40, 2, p[0], p[1]}); err != nil {
				t.Fatal(err)
			}
			p = p[2:]
		}
		got[string(p)]++
	}
}

// Every QoS 1 message the broker acknowledged (PUBACK) to an MQTT publisher
// reaches the persistent subscriber, across SIGKILLs of the server in the
// middle of pipelined publishing.
func TestMQTTCrashAcknowledgedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL rounds take about 15 s; skipped with -short")
	}
	const rounds = 8
	dir := t.TempDir()
	cmd, addr := startMQTTProc(t, dir)
	drainMQTT(t, addr, "crash-sink", true) // the session and its subscription
	received := map[string]bool{}
	var confirmed sync.Map
	for round := range rounds {
		var wg sync.WaitGroup
		for p := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mqttCrashPublisher(addr, fmt.Sprintf("crash-pub-%d", p), fmt.Sprintf("r%d-p%d", round, p), &confirmed)
			}()
		}
		time.Sleep(time.Duration(150+rand.Intn(300)) * time.Millisecond)
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
		wg.Wait()
		cmd, addr = startMQTTProc(t, dir)
		for name := range drainMQTT(t, addr, "crash-sink", false) {
			received[name] = true
		}
	}
	n, missing := 0, []string{}
	confirmed.Range(func(k, _ any) bool {
		n++
		if !received[k.(string)] {
			missing = append(missing, k.(string))
		}
		return true
	})
	if n == 0 {
		t.Fatal("no message was acknowledged")
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged messages lost, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
	}
	t.Logf("%d rounds: %d acknowledged messages, all delivered (%d received in all)", rounds, n, len(received))
}

// rawConnectV5 opens an MQTT 5 connection with clean start 0 and a session
// expiry of an hour, and returns it with CONNACK's session-present flag.
func rawConnectV5(t *testing.T, addr, id string) (net.Conn, *rawReader, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	body := append(rawStr("MQTT"), 5, 0xC0, 0, 0, 5, 0x11, 0, 0, 0x0E, 0x10) // user, password; expiry 3600 s
	body = append(body, rawStr(id)...)
	body = append(body, rawStr("guest")...)
	body = append(body, rawStr("guest")...)
	if _, err := c.Write(append(appendRemaining([]byte{0x10}, len(body)), body...)); err != nil {
		t.Fatal(err)
	}
	r := newRawReader(c)
	typ, _, ack, err := r.Next()
	if err != nil || typ != 2 || len(ack) < 2 || ack[1] != 0 {
		t.Fatalf("CONNACK %d %v %v", typ, ack, err)
	}
	return c, r, ack[0]&1 == 1
}

// QoS 2 is exactly once across a server crash: a PUBLISH acknowledged
// with PUBREC and sent again (DUP) after the restart is acknowledged again
// and not delivered twice, and its PUBREL completes normally.
func TestMQTTQoS2ExactlyOnceAcrossSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd, addr := startMQTTProc(t, dir)
	drainMQTT(t, addr, "q2-sink", true) // subscribes to crash/# (QoS 1)

	c, r, _ := rawConnectV5(t, addr, "q2-pub")
	publish := func(first byte) {
		body := append(rawStr("crash/q2"), 0, 9, 0) // packet id 9, no properties
		body = append(body, "exactly-once"...)
		if _, err := c.Write(append(appendRemaining([]byte{first}, len(body)), body...)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want byte, what string) {
		t.Helper()
		typ, _, body, err := r.Next()
		if err != nil || typ != want || len(body) < 2 || body[1] != 9 || (len(body) > 2 && body[2] != 0) {
			t.Fatalf("%s: got type %d %v %v", what, typ, body, err)
		}
	}
	publish(0x34) // QoS 2
	expect(5, "PUBREC")
	_ = cmd.Process.Kill() // SIGKILL before PUBREL
	_ = cmd.Wait()

	cmd, addr = startMQTTProc(t, dir)
	var present bool
	c, r, present = rawConnectV5(t, addr, "q2-pub")
	if !present {
		t.Fatal("session not present after the restart")
	}
	publish(0x3C) // QoS 2, DUP: the client did not see the PUBREC
	expect(5, "PUBREC for the retransmission")
	if _, err := c.Write([]byte{0x62, 2, 0, 9}); err != nil { // PUBREL
		t.Fatal(err)
	}
	expect(7, "PUBCOMP")

	got := drainMQTT(t, addr, "q2-sink", false)
	if len(got) != 1 || got["exactly-once"] != 1 {
		t.Fatalf("the subscriber got %v, want the message once", got)
	}
}
