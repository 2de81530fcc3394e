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
			typ, _, body, err := r.next()
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
// returns the payloads once nothing arrived for a second.
func drainMQTT(t *testing.T, addr, clientID string, subscribe bool) map[string]bool {
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
	got := map[string]bool{}
	r := newRawReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		typ, flags, body, err := r.next()
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
		got[string(p)] = true
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
