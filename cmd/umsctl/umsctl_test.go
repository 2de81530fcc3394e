package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// result is what one umsctl run printed and returned.
type result struct {
	code   int
	stdout string
	stderr string
}

// umsctl runs a command line against b, as guest unless the arguments say
// otherwise.
func umsctl(t *testing.T, b *testutil.Broker, args ...string) result {
	t.Helper()
	return umsctlIn(t, b, "", args...)
}

// umsctlIn is umsctl with stdin.
func umsctlIn(t *testing.T, b *testutil.Broker, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "UMS_URL" {
			return b.HTTPURL
		}
		return ""
	}
	code := runIn(args, strings.NewReader(stdin), &out, &errOut, getenv)
	return result{code, out.String(), errOut.String()}
}

// ok runs a command line that must succeed and returns its output.
func ok(t *testing.T, b *testutil.Broker, args ...string) string {
	t.Helper()
	r := umsctl(t, b, args...)
	if r.code != 0 {
		t.Fatalf("umsctl %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command line with --format json and decodes its output.
func okJSON(t *testing.T, b *testutil.Broker, out any, args ...string) {
	t.Helper()
	s := ok(t, b, append(args, "--format", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("umsctl %q: %v in %q", args, err, s)
	}
}

func startBroker(t *testing.T, opts ...testutil.Option) *testutil.Broker {
	return testutil.StartBroker(t, append([]testutil.Option{testutil.WithProtocols(testutil.HTTP, testutil.AMQP)}, opts...)...)
}

// findByName returns the listed object with that name (nil when none).
func findByName(list []map[string]any, name string) map[string]any {
	for _, m := range list {
		if m["name"] == name {
			return m
		}
	}
	return nil
}

// tableRow returns the line of a table whose cells include all of want.
func tableRow(table string, want ...string) string {
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Fields(line)
		all := true
		for _, w := range want {
			all = all && contains(cells, w)
		}
		if all {
			return line
		}
	}
	return ""
}

func TestUmsctlQueueRoundTrip(t *testing.T) {
	b := startBroker(t)
	if out := ok(t, b, "declare", "queue", "name=orders", "durable=true", `arguments={"x-max-length": 100}`); out != "queue declared\n" {
		t.Fatalf("declare: %q", out)
	}
	if out := ok(t, b, "publish", "exchange=amq.default", "routing_key=orders", "payload=hello world",
		`properties={"content_type": "text/plain", "delivery_mode": 2}`); out != "message published\n" {
		t.Fatalf("publish: %q", out)
	}
	if out := ok(t, b, "publish", "routing_key=nowhere", "payload=x"); out != "message published but NOT routed\n" {
		t.Fatalf("unroutable publish: %q", out)
	}
	// From stdin, without payload=.
	if r := umsctlIn(t, b, "second", "publish", "routing_key=orders"); r.code != 0 {
		t.Fatalf("publish from stdin: %d %q", r.code, r.stderr)
	}

	// get with the default ackmode leaves the messages in the queue.
	out := ok(t, b, "get", "queue=orders")
	if row := tableRow(out, "orders", "hello", "world"); row == "" || !strings.Contains(row, "text/plain") {
		t.Fatalf("get table:\n%s", out)
	}
	var msgs []map[string]any
	okJSON(t, b, &msgs, "get", "queue=orders", "count=5")
	if len(msgs) != 2 || msgs[0]["payload"] != "hello world" || msgs[1]["payload"] != "second" {
		t.Fatalf("get json: %v", msgs)
	}

	out = ok(t, b, "list", "queues")
	if !strings.HasPrefix(out, "vhost") || tableRow(out, "/", "orders", "2", "true") == "" {
		t.Fatalf("list queues:\n%s", out)
	}
	var queues []map[string]any
	okJSON(t, b, &queues, "list", "queues", "--vhost", "/")
	q := findByName(queues, "orders")
	if q == nil || q["messages"] != float64(2) || q["durable"] != true {
		t.Fatalf("list queues json: %v", queues)
	}

	// An exchange and a binding, then the binding deleted by routing key.
	ok(t, b, "declare", "exchange", "name=shop", "type=topic")
	ok(t, b, "declare", "binding", "source=shop", "destination=orders", "routing_key=order.*")
	if out := ok(t, b, "publish", "exchange=shop", "routing_key=order.new", "payload=3"); out != "message published\n" {
		t.Fatalf("publish through binding: %q", out)
	}
	if out := ok(t, b, "list", "bindings"); tableRow(out, "shop", "orders", "queue", "order.*") == "" {
		t.Fatalf("list bindings:\n%s", out)
	}
	if out := ok(t, b, "list", "exchanges"); tableRow(out, "shop", "topic") == "" || tableRow(out, "amq.default") == "" {
		t.Fatalf("list exchanges:\n%s", out)
	}

	defs := filepath.Join(t.TempDir(), "defs.json")
	ok(t, b, "export_definitions", defs)
	data, err := os.ReadFile(defs)
	if err != nil {
		t.Fatal(err)
	}
	var exported struct {
		Queues   []map[string]any `json:"queues"`
		Bindings []map[string]any `json:"bindings"`
	}
	if err := json.Unmarshal(data, &exported); err != nil || findByName(exported.Queues, "orders") == nil {
		t.Fatalf("export: %v %s", err, data)
	}
	if out := ok(t, b, "export_definitions", "-"); out != string(data) {
		t.Fatalf("export to stdout differs:\n%s\n%s", out, data)
	}

	ok(t, b, "delete", "binding", "source=shop", "destination=orders", "routing_key=order.*")
	if out := ok(t, b, "list", "bindings"); tableRow(out, "shop", "orders") != "" {
		t.Fatalf("binding still listed:\n%s", out)
	}
	ok(t, b, "purge", "queue", "name=orders")
	ok(t, b, "delete", "queue", "name=orders")
	ok(t, b, "delete", "exchange", "name=shop")
	okJSON(t, b, &queues, "list", "queues")
	if findByName(queues, "orders") != nil {
		t.Fatalf("queue still listed: %v", queues)
	}

	if out := ok(t, b, "import_definitions", defs); out != "definitions imported\n" {
		t.Fatalf("import: %q", out)
	}
	okJSON(t, b, &queues, "list", "queues")
	if q := findByName(queues, "orders"); q == nil || q["durable"] != true {
		t.Fatalf("queue not imported: %v", queues)
	}
	if out := ok(t, b, "list", "bindings"); tableRow(out, "shop", "orders", "order.*") == "" {
		t.Fatalf("binding not imported:\n%s", out)
	}

	out = ok(t, b, "status")
	if !strings.Contains(out, "UMS") || tableRow(out, "queues") == "" || tableRow(out, "alarms", "none") == "" {
		t.Fatalf("status:\n%s", out)
	}
}

func TestUmsctlUsers(t *testing.T) {
	b := startBroker(t)
	ok(t, b, "add_user", "alice", "s3cret", "--tags", "management")
	ok(t, b, "set_permissions", "alice", "^alice-", ".*", ".*")
	ok(t, b, "set_topic_permissions", "alice", "amq.topic", "^sensors\\.", ".*")

	out := ok(t, b, "list", "users")
	if tableRow(out, "alice", "management") == "" || tableRow(out, "guest", "administrator") == "" {
		t.Fatalf("list users:\n%s", out)
	}
	var users []map[string]any
	okJSON(t, b, &users, "list", "users")
	if u := findByName(users, "alice"); u == nil {
		t.Fatalf("list users json: %v", users)
	}
	var perms []map[string]any
	if r := umsctl(t, b, "list", "vhosts", "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"name": "/"`) {
		t.Fatalf("list vhosts: %+v", r)
	}
	// The permissions as the API shows them.
	c := &client{base: b.HTTPURL, user: "guest", password: "guest", http: http.DefaultClient}
	if err := c.getJSON("/api/users/alice/permissions", &perms); err != nil || len(perms) != 1 ||
		perms[0]["configure"] != "^alice-" || perms[0]["vhost"] != "/" {
		t.Fatalf("permissions: %v %v", perms, err)
	}

	// alice may declare her own queues only, and may not manage users.
	as := func(args ...string) result {
		return umsctl(t, b, append([]string{"--user", "alice", "--password", "s3cret"}, args...)...)
	}
	if r := as("declare", "queue", "name=alice-q"); r.code != 0 {
		t.Fatalf("alice declares her queue: %+v", r)
	}
	if r := as("declare", "queue", "name=other"); r.code != 1 || !strings.Contains(r.stderr, "ACCESS_REFUSED") {
		t.Fatalf("alice declares another queue: %+v", r)
	}
	if r := as("list", "users"); r.code != 1 || r.stderr != "umsctl: Not administrator user\n" {
		t.Fatalf("alice lists users: %+v", r)
	}
	// After "--", an argument starting with "-" is a pattern, not a flag.
	ok(t, b, "set_permissions", "alice", "--vhost", "/", "--", "^alice-", "-w$", ".*")
	if err := c.getJSON("/api/users/alice/permissions", &perms); err != nil || len(perms) != 1 || perms[0]["write"] != "-w$" {
		t.Fatalf("permissions after --: %v %v", perms, err)
	}
	ok(t, b, "delete_user", "alice")
	okJSON(t, b, &users, "list", "users")
	if findByName(users, "alice") != nil {
		t.Fatalf("alice still listed: %v", users)
	}
}

func TestUmsctlErrors(t *testing.T) {
	b := startBroker(t)
	if r := umsctl(t, b, "--password", "wrong", "list", "queues"); r.code != 1 || r.stderr != "umsctl: Login failed\n" {
		t.Fatalf("bad credentials: %+v", r)
	}
	if r := umsctl(t, b, "get", "queue=missing"); r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Fatalf("get of a missing queue: %+v", r)
	}
	if r := umsctl(t, b, "declare", "exchange", "name=x", "type=no-such-type"); r.code != 1 || r.stderr == "" {
		t.Fatalf("bad exchange type: %+v", r)
	}
	for _, args := range [][]string{
		{"frobnicate"},
		{},
		{"list", "widgets"},
		{"list"},
		{"declare", "queue"},
		{"declare", "queue", "name=q", "colour=blue"},
		{"declare", "queue", "name=q", "durable=maybe"},
		{"declare", "queue", "nokey"},
		{"declare", "widget", "name=w"},
		{"get", "queue=q", "count=-1"},
		{"notify", "frob", "x"},
		{"close", "connection"},
		{"list", "queues", "--format", "yaml"},
		{"list", "queues", "--no-such-flag"},
	} {
		if r := umsctl(t, b, args...); r.code != 2 || r.stderr == "" {
			t.Errorf("umsctl %q: %+v, want exit 2", args, r)
		}
	}
	if r := umsctl(t, b, "help"); r.code != 0 || !strings.Contains(r.stdout, "usage: umsctl") {
		t.Fatalf("help: %+v", r)
	}
	// Nothing listens: exit 1.
	var out, errOut bytes.Buffer
	code := runIn([]string{"--url", "http://127.0.0.1:1", "status"}, strings.NewReader(""), &out, &errOut,
		func(string) string { return "" })
	if code != 1 || errOut.Len() == 0 {
		t.Fatalf("unreachable server: %d %q", code, errOut.String())
	}
}

func TestUmsctlCloseConnection(t *testing.T) {
	b := startBroker(t)
	conn, err := amqp.Dial(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	var conns []map[string]any
	okJSON(t, b, &conns, "list", "connections")
	var name string
	for _, c := range conns {
		if c["protocol"] == "AMQP 0-9-1" && c["user"] == "guest" {
			name = str(c["name"])
		}
	}
	if name == "" {
		t.Fatalf("connections: %v", conns)
	}
	if out := ok(t, b, "list", "connections"); tableRow(out, "guest", "/") == "" {
		t.Fatalf("list connections:\n%s", out)
	}
	ok(t, b, "close", "connection", name)
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Fatalf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	// The client saw the close; the server drops the connection from its
	// list as it finishes closing it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if out := ok(t, b, "list", "connections"); !strings.Contains(out, name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed connection is still listed")
		}
	}
	if r := umsctl(t, b, "close", "connection", name); r.code != 1 || r.stderr != "umsctl: Object Not Found\n" {
		t.Fatalf("close again: %+v", r)
	}
}

func TestUmsctlNotify(t *testing.T) {
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.Close)
	b := startBroker(t, testutil.WithConfig(func(c *config.Config) {
		c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = "umsctl-test-secret", true, true
	}))
	note := filepath.Join(t.TempDir(), "note.json")
	if err := os.WriteFile(note, []byte(`{"channel": "webhook", "to": {"webhook": "`+hook.URL+`"},
		"content": {"text": "hello"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := ok(t, b, "notify", "send", note)
	fields := strings.Fields(out)
	if len(fields) != 2 || fields[1] != "queued" {
		t.Fatalf("notify send: %q", out)
	}
	id := fields[0]

	deadline := time.Now().Add(20 * time.Second)
	var rec map[string]any
	for {
		okJSON(t, b, &rec, "notify", "status", id)
		if rec["status"] == "sent" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s: %v", id, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if calls.Load() != 1 {
		t.Fatalf("webhook called %d times", calls.Load())
	}
	if out := ok(t, b, "notify", "status", id); tableRow(out, id, "sent", "webhook") == "" {
		t.Fatalf("notify status:\n%s", out)
	}

	// The same idempotency key answers the first notification's id.
	first := ok(t, b, "notify", "send", note, "--idempotency-key", "order-1042")
	again := ok(t, b, "notify", "send", note, "--idempotency-key", "order-1042")
	if f := strings.Fields(first); len(f) != 2 || !strings.HasPrefix(again, f[0]+" ") || !strings.HasSuffix(again, " (deduplicated)\n") {
		t.Fatalf("idempotency key: %q then %q", first, again)
	}

	// Refusals carry the API's words.
	if r := umsctl(t, b, "notify", "retry", id); r.code != 1 || !strings.Contains(r.stderr, "not in the dead-letter queue") {
		t.Fatalf("retry of a sent one: %+v", r)
	}
	if r := umsctl(t, b, "notify", "status", "no-such-id"); r.code != 1 || !strings.Contains(r.stderr, "no notification") {
		t.Fatalf("status of an unknown id: %+v", r)
	}
	if r := umsctlIn(t, b, `{"channel": "webhook", "to": {}}`, "notify", "send", "-"); r.code != 1 ||
		!strings.Contains(r.stderr, "to.webhook") {
		t.Fatalf("invalid notification: %+v", r)
	}
}

// TestUmsctlDefinitionsRoundTrip imports RabbitMQ's export into one
// server, carries that server's export to a second one, and finds the
// second export the same as the first.
func TestUmsctlDefinitionsRoundTrip(t *testing.T) {
	sample, err := os.ReadFile("../../test/testdata/rabbitmq-definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := startBroker(t), startBroker(t)
	if r := umsctlIn(t, b1, string(sample), "import_definitions", "-"); r.code != 0 {
		t.Fatalf("import of RabbitMQ's export: %+v", r)
	}
	first := ok(t, b1, "export_definitions", "-")
	file := filepath.Join(t.TempDir(), "defs.json")
	if err := os.WriteFile(file, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, b2, "import_definitions", file)
	second := ok(t, b2, "export_definitions", "-")

	a, b := canonical(t, first), canonical(t, second)
	for _, key := range []string{"users", "vhosts", "permissions", "topic_permissions", "queues", "exchanges", "bindings"} {
		if len(a[key]) == 0 {
			t.Errorf("first export has no %s", key)
		}
		if strings.Join(a[key], "\n") != strings.Join(b[key], "\n") {
			t.Errorf("%s differ:\n%s\n--\n%s", key, strings.Join(a[key], "\n"), strings.Join(b[key], "\n"))
		}
	}
	// The sample's queues are there, in their vhosts.
	var queues []map[string]any
	okJSON(t, b2, &queues, "list", "queues", "--vhost", "shop")
	if len(queues) == 0 {
		t.Fatalf("no queues in vhost shop after the import")
	}
}

// canonical maps each list of a definitions document to its entries as
// JSON, sorted.
func canonical(t *testing.T, doc string) map[string][]string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("definitions: %v", err)
	}
	out := map[string][]string{}
	for k, v := range d {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		for _, e := range list {
			j, _ := json.Marshal(e) // map keys sorted
			out[k] = append(out[k], string(j))
		}
		sort.Strings(out[k])
	}
	return out
}
