package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	buildOnce sync.Once
	umsdPath  string
	buildErr  error
)

// umsdBinary builds cmd/umsd once per test run.
func umsdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "umsd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		umsdPath = filepath.Join(dir, "umsd")
		out, err := exec.Command("go", "build", "-o", umsdPath, "../cmd/umsd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return umsdPath
}

// proc is a umsd process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *logBuffer

	httpMu  sync.Mutex
	httpURL string // http://127.0.0.1:port once the HTTP listener is up
}

func (p *proc) setHTTP(u string) {
	p.httpMu.Lock()
	p.httpURL = u
	p.httpMu.Unlock()
}

// http returns the HTTP listener's base URL, waiting for it to be up.
func (p *proc) http(t testing.TB) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.httpMu.Lock()
		u := p.httpURL
		p.httpMu.Unlock()
		if u != "" {
			return u
		}
	}
	t.Fatalf("umsd's HTTP listener did not start:\n%s", p.logs)
	return ""
}

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := ""
	for _, s := range l.lines {
		out += s + "\n"
	}
	return out
}

var (
	amqpAddrRE = regexp.MustCompile(`AMQP 0-9-1 listening.* addr=(127\.0\.0\.1:\d+)`)
	httpAddrRE = regexp.MustCompile(`management HTTP listening.* addr=(127\.0\.0\.1:\d+)`)
)

// startProc runs umsd on a free loopback port with dataDir; extra flags
// come last (and win).
func startProc(t testing.TB, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--amqp-listen", "127.0.0.1:0",
		"--http-listen", "off", "--mqtt-listen", "off", "--mqtt-ws-listen", "off",
		"--stomp-listen", "off", "--stomp-ws-listen", "off"}, extra...)
	cmd := exec.Command(umsdBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &logBuffer{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			if m := httpAddrRE.FindStringSubmatch(line); m != nil {
				p.setHTTP("http://" + m[1])
			}
			if m := amqpAddrRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		p.url = "amqp://guest:guest@" + a + "/"
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("umsd did not start:\n%s", p.logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// crashState is what the clients of one round know for sure.
type crashState struct {
	mu        sync.Mutex
	attempted map[string]bool // publishes sent (confirmed or not)
	confirmed map[string]bool // publishes the broker confirmed
	delivered map[string]bool // deliveries seen before the crash
	ackSent   map[string]bool // acks sent (they may or may not have reached the disk)
	acked     map[string]bool // acks known to be durable (a later confirm covers them)
}

func newCrashState() *crashState {
	return &crashState{attempted: map[string]bool{}, confirmed: map[string]bool{}, delivered: map[string]bool{},
		ackSent: map[string]bool{}, acked: map[string]bool{}}
}

const crashQueue = "crash-test"

// crashPublisher publishes persistent messages with confirms until ctx ends.
func crashPublisher(ctx context.Context, url, prefix string, st *crashState) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	if ch.Confirm(false) != nil {
		return
	}
	for n := 0; ctx.Err() == nil; n++ {
		id := fmt.Sprintf("%s-%d", prefix, n)
		st.mu.Lock()
		st.attempted[id] = true
		st.mu.Unlock()
		dc, err := ch.PublishWithDeferredConfirm("", crashQueue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: id, Body: []byte(id)})
		if err != nil {
			return
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return
		}
		if ok {
			st.mu.Lock()
			st.confirmed[id] = true
			st.mu.Unlock()
		}
	}
}

// crashConsumer acks what it receives. After each batch of acks it
// publishes a confirmed marker on the same connection: the broker handles
// frames of a connection in order and stores acks and publishes in one
// ordered log, so the marker's confirm proves the acks before it durable.
func crashConsumer(ctx context.Context, url string, st *crashState) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	mark, err := conn.Channel()
	if err != nil || mark.Confirm(false) != nil {
		return
	}
	if _, err := mark.QueueDeclare("crash-markers", true, false, false, false, nil); err != nil {
		return
	}
	if ch.Qos(50, 0, false) != nil {
		return
	}
	d, err := ch.Consume(crashQueue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	var batch []string
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-d:
			if !ok {
				return
			}
			st.mu.Lock()
			st.delivered[m.MessageId] = true
			st.mu.Unlock()
			// Leave some unacked to be redelivered after the crash.
			if rand.Intn(10) == 0 {
				continue
			}
			st.mu.Lock()
			st.ackSent[m.MessageId] = true
			st.mu.Unlock()
			if m.Ack(false) != nil {
				return
			}
			batch = append(batch, m.MessageId)
			if len(batch) < 20 {
				continue
			}
			dc, err := mark.PublishWithDeferredConfirm("", "crash-markers", false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("m")})
			if err != nil {
				return
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return
			}
			st.mu.Lock()
			for _, id := range batch {
				st.acked[id] = true
			}
			st.mu.Unlock()
			batch = batch[:0]
		}
	}
}

// TestCrashConfirmedMessagesSurviveSIGKILL publishes persistent messages
// with confirms from several publishers while a consumer acks, SIGKILLs the
// server at a random moment, restarts it and checks that every confirmed
// message is there or was acked, nothing acked comes back, and nothing
// appears that was never published. Repeated with random timing.
func TestCrashConfirmedMessagesSurviveSIGKILL(t *testing.T) {
	rounds := 20
	if s := os.Getenv("UMS_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dataDir := t.TempDir()
	everAcked := map[string]bool{}   // acks known durable: must never come back
	everAckSent := map[string]bool{} // acks sent: their messages may be gone
	everAttempted := map[string]bool{}
	pendingConfirmed := map[string]bool{} // confirmed in earlier rounds, not yet seen acked
	churn := &defChurn{}                  // durable queues declared and deleted during the load
	for round := 0; round < rounds; round++ {
		p := startProc(t, dataDir)
		conn, err := amqp.Dial(p.url)
		if err != nil {
			t.Fatalf("round %d: dial: %v\n%s", round, err, p.logs)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(crashQueue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		// What survived the previous crash: drain it and check it.
		var recovered []amqp.Delivery
		for {
			m, ok, err := ch.Get(crashQueue, false)
			if err != nil {
				t.Fatalf("round %d: get: %v", round, err)
			}
			if !ok {
				break
			}
			recovered = append(recovered, m)
		}
		seen := map[string]bool{}
		for _, m := range recovered {
			id := m.MessageId
			if !everAttempted[id] {
				t.Fatalf("round %d: recovered message %q was never published", round, id)
			}
			if everAcked[id] {
				t.Fatalf("round %d: message %q was acked before the crash but came back", round, id)
			}
			if seen[id] {
				t.Fatalf("round %d: message %q recovered twice", round, id)
			}
			seen[id] = true
			if !m.Redelivered {
				t.Fatalf("round %d: recovered message %q not marked redelivered", round, id)
			}
		}
		for id := range pendingConfirmed {
			if !seen[id] && !everAckSent[id] {
				t.Fatalf("round %d: confirmed message %q was lost (%d recovered)\n%s", round, id, len(recovered), p.logs)
			}
		}
		// Everything recovered is acked now; start afresh.
		if len(recovered) > 0 {
			if err := recovered[len(recovered)-1].Ack(true); err != nil {
				t.Fatal(err)
			}
			for id := range seen {
				everAckSent[id] = true
			}
		}
		if _, err := ch.QueuePurge("crash-markers", false); err != nil && round > 0 {
			t.Fatal(err)
		}
		churn.check(t, round, conn)
		conn.Close()
		pendingConfirmed = map[string]bool{}

		st := newCrashState()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				crashPublisher(ctx, p.url, fmt.Sprintf("r%d-p%d", round, i), st)
			}(i)
		}
		wg.Add(1)
		go func() { defer wg.Done(); crashConsumer(ctx, p.url, st) }()
		wg.Add(1)
		go func() { defer wg.Done(); churn.run(ctx, p.url, round) }()
		time.Sleep(time.Duration(150+rand.Intn(600)) * time.Millisecond)
		p.kill(t)
		cancel()
		wg.Wait()
		st.mu.Lock()
		if len(st.confirmed) == 0 {
			t.Fatalf("round %d: nothing was confirmed before the crash\n%s", round, p.logs)
		}
		for id := range st.attempted {
			everAttempted[id] = true
		}
		for id := range st.acked {
			everAcked[id] = true
		}
		// The drain's acks came before this round's confirmed publishes in
		// the store's single ordered log, so they are durable now.
		for id := range seen {
			everAcked[id] = true
		}
		for id := range st.ackSent {
			everAckSent[id] = true
		}
		for id := range st.confirmed {
			pendingConfirmed[id] = true
		}
		t.Logf("round %d: %d published, %d confirmed, %d delivered, %d acked durably, %d recovered from the previous round",
			round, len(st.attempted), len(st.confirmed), len(st.delivered), len(st.acked), len(recovered))
		st.mu.Unlock()
	}
}

// defChurn declares, binds and deletes durable queues while the server is
// killed: a queue whose declare-ok arrived must exist after the restart,
// and one whose delete-ok arrived must not.
type defChurn struct {
	mu       sync.Mutex
	declared map[string]bool // declare-ok received, no delete sent
	deleted  map[string]bool // delete-ok received
}

func (c *defChurn) run(ctx context.Context, url string, round int) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("crash-churn-r%d-%d", round, i)
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			return
		}
		if err := ch.QueueBind(name, name, "amq.direct", false, nil); err != nil {
			return
		}
		c.mu.Lock()
		c.declared[name] = true
		if i%2 == 1 {
			delete(c.declared, name) // from here on it may or may not exist
		}
		c.mu.Unlock()
		if i%2 == 0 {
			continue
		}
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			return
		}
		c.mu.Lock()
		c.deleted[name] = true
		c.mu.Unlock()
	}
}

// check verifies the previous round's declares and deletes after the
// restart, then deletes what is left so rounds start afresh.
func (c *defChurn) check(t *testing.T, round int, conn *amqp.Connection) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	exists := func(name string) bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		var ae *amqp.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
			t.Fatalf("round %d: passive declare of %s: %v", round, name, err)
		}
		return err == nil
	}
	for name := range c.declared {
		if !exists(name) {
			t.Fatalf("round %d: durable queue %s was declared (declare-ok) before the crash but is gone", round, name)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Fatal(err)
		}
		ch.Close()
	}
	for name := range c.deleted {
		if exists(name) {
			t.Fatalf("round %d: durable queue %s was deleted (delete-ok) before the crash but came back", round, name)
		}
	}
	if round > 0 && len(c.declared)+len(c.deleted) == 0 {
		t.Fatalf("round %d: no durable queue was declared or deleted before the crash", round)
	}
	t.Logf("round %d: %d durable queues declared and %d deleted before the crash checked", round, len(c.declared), len(c.deleted))
	c.declared, c.deleted = map[string]bool{}, map[string]bool{}
}
