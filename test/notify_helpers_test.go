package test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/channels/webhook"
	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
	"github.com/unifiedms/ums/internal/testutil/redisserver"
	"github.com/unifiedms/ums/internal/testutil/smtpserver"
)

const hookSecret = "test-webhook-secret"

// hookCall is one request a test webhook received.
type hookCall struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// hookServer is a local HTTP server standing for a customer's webhook
// endpoint. answer decides each response (nil: 200).
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer func(n int, body []byte) (status int, header http.Header)
	wake   chan struct{}
}

func startHook(t testing.TB) *hookServer {
	h := &hookServer{wake: make(chan struct{}, 1)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(h.calls)
		answer := h.answer
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
		status := http.StatusOK
		if answer != nil {
			var hdr http.Header
			status, hdr = answer(n, body)
			for k, v := range hdr {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) setAnswer(f func(n int, body []byte) (int, http.Header)) {
	h.mu.Lock()
	h.answer = f
	h.mu.Unlock()
}

func (h *hookServer) received() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// wait waits for n calls.
func (h *hookServer) wait(t testing.TB, n int) []hookCall {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if c := h.received(); len(c) >= n {
			return c
		}
		select {
		case <-h.wake:
		case <-deadline:
			t.Fatalf("webhook: %d of %d calls", len(h.received()), n)
		}
	}
}

// verify checks a call's signature with the shared secret and returns the
// notification id it carries.
func (c hookCall) verify(t testing.TB) string {
	t.Helper()
	if err := webhook.Verify([]byte(hookSecret), c.Header.Get(webhook.HeaderSignature), c.Body, c.At, time.Hour); err != nil {
		t.Fatalf("webhook signature: %v (header %q)", err, c.Header.Get(webhook.HeaderSignature))
	}
	if ct := c.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("webhook Content-Type %q", ct)
	}
	return c.Header.Get(webhook.HeaderID)
}

// notifyEnv is a broker with both channels configured: email to a real
// SMTP server, webhooks (signed, http and loopback allowed) to hook.
type notifyEnv struct {
	b    *testutil.Broker
	smtp *smtpserver.Server
	hook *hookServer
}

func startNotify(t testing.TB, opts ...testutil.Option) *notifyEnv {
	t.Helper()
	e := &notifyEnv{smtp: smtpserver.Start(t), hook: startHook(t)}
	base := []testutil.Option{
		testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) {
			c.SMTPURL, c.SMTPTLS, c.SMTPFrom = e.smtp.URL(), "none", "UMS <noreply@ums.test>"
			c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = hookSecret, true, true
			c.NotifyBackoffBase, c.NotifyBackoffMax = 10*time.Millisecond, 50*time.Millisecond
		}),
	}
	e.b = testutil.StartBroker(t, append(base, opts...)...)
	return e
}

// apiCall sends a request to the notification API as guest and decodes a
// JSON answer into out (when not nil).
func apiCall(t testing.TB, b *testutil.Broker, method, path string, body any, hdr map[string]string, out any) int {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.HTTPURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// accepted is the answer to a submission.
type accepted struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Deduplicated bool   `json:"deduplicated"`
	Error        string `json:"error"`
	Field        string `json:"field"`
	Reason       string `json:"reason"`
}

// submit posts one notification and expects status want.
func submit(t testing.TB, b *testutil.Broker, n any, want int, hdr map[string]string) accepted {
	t.Helper()
	var a accepted
	if got := apiCall(t, b, "POST", "/api/v1/notifications", n, hdr, &a); got != want {
		t.Fatalf("POST /api/v1/notifications: %d %+v, want %d", got, a, want)
	}
	return a
}

// record is GET /api/v1/notifications/{id}.
type record struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Channel  string `json:"channel"`
	Error    string `json:"error"`
	Attempts []struct {
		Channel string `json:"channel"`
		Attempt int    `json:"attempt"`
		Status  string `json:"status"`
		Error   string `json:"error"`
	} `json:"attempts"`
}

// waitStatus polls a notification until it has status want.
func waitStatus(t testing.TB, b *testutil.Broker, id, want string) record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var r record
	for time.Now().Before(deadline) {
		r = record{}
		apiCall(t, b, "GET", "/api/v1/notifications/"+id, nil, nil, &r)
		if r.Status == want {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("notification %s: status %q, want %q (%+v)", id, r.Status, want, r)
	return r
}

// event is a status event's body.
type event struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Channel string `json:"channel"`
	Attempt int    `json:"attempt"`
	Error   string `json:"error"`
	Tenant  string `json:"tenant"`
}

// eventQueue binds a new queue to ums.events for every event.
func eventQueue(t testing.TB, url string) <-chan amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := newChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	bindQueue(t, ch, q.Name, "ums.events", "notification.#", nil)
	return consume(t, ch, q.Name, true)
}

// eventsOf reads events until one of id has status last, and returns the
// statuses of id's events in order.
func eventsOf(t testing.TB, d <-chan amqp.Delivery, id, last string) []string {
	t.Helper()
	var out []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-d:
			var e event
			if err := json.Unmarshal(m.Body, &e); err != nil {
				t.Fatalf("event body %q: %v", m.Body, err)
			}
			if e.ID != id {
				continue
			}
			if m.CorrelationId != id || m.RoutingKey != "notification."+e.Status+"."+e.Channel {
				t.Fatalf("event %+v with correlation-id %q and routing key %q", e, m.CorrelationId, m.RoutingKey)
			}
			out = append(out, e.Status)
			if e.Status == last {
				return out
			}
		case <-timeout:
			t.Fatalf("events of %s: %v, no %q", id, out, last)
		}
	}
}

func webhookNote(url string, extra map[string]any) map[string]any {
	n := map[string]any{"channel": "webhook", "to": map[string]any{"webhook": url},
		"content": map[string]any{"text": "hello"}}
	for k, v := range extra {
		n[k] = v
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// forEachGuards runs f on the embedded guards (redisURL "") and on a
// redis-server started for it.
func forEachGuards(t *testing.T, f func(t *testing.T, redisURL string)) {
	t.Run("embedded", func(t *testing.T) { f(t, "") })
	t.Run("redis", func(t *testing.T) { f(t, "redis://"+redisserver.Start(t).Addr+"/0") })
}

// queueDepth returns the ready and unacknowledged messages of a queue of
// vhost /, from the management API.
func queueDepth(t testing.TB, b *testutil.Broker, name string) (ready, unacked int) {
	t.Helper()
	var q struct {
		Ready   int `json:"messages_ready"`
		Unacked int `json:"messages_unacknowledged"`
	}
	apiCall(t, b, "GET", "/api/queues/%2F/"+name, nil, nil, &q)
	return q.Ready, q.Unacked
}
