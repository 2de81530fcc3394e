package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/internal/testutil"
)

// mgmtJSON calls the management API as user and decodes the answer.
func mgmtJSON(t *testing.T, b *testutil.Broker, user, pass, method, path, body string, out any) int {
	t.Helper()
	code, text := api(t, method, b.HTTPURL+path, user, pass, body)
	if out != nil && code == http.StatusOK {
		if err := json.Unmarshal(text, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, text)
		}
	}
	return code
}

// Channels, consumers and the node, as RabbitMQ's UI and tools read them.
func TestMgmtAPIChannelsConsumersNodes(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP))
	conn := dialBroker(t, b.Broker)
	ch := openChannel(t, conn)
	if _, err := conn.Channel(); err != nil { // a second, idle channel
		t.Fatal(err)
	}
	if err := ch.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("work", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("work", "worker-1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "work", false, false, amqp.Publishing{Body: []byte("job")}); err != nil {
		t.Fatal(err)
	}

	type channel struct {
		Name, User, Vhost string
		Consumers         int `json:"consumer_count"`
		Prefetch          int `json:"prefetch_count"`
		Unacked           int `json:"messages_unacknowledged"`
		Details           struct {
			Name string `json:"name"`
		} `json:"connection_details"`
	}
	var chans []channel
	waitUntil(t, 10*time.Second, "the consumer's delivery to be unacked", func() bool {
		var all []channel
		mgmtJSON(t, b, "guest", "guest", "GET", "/api/channels", "", &all)
		chans = nil
		for _, c := range all { // the server's own connection has channels too
			if c.User == "guest" {
				chans = append(chans, c)
			}
		}
		return len(chans) == 2 && chans[0].Unacked == 1
	})
	c := chans[0]
	if c.Consumers != 1 || c.Prefetch != 7 || c.User != "guest" || c.Vhost != "/" || !strings.HasPrefix(c.Name, c.Details.Name+" (") {
		t.Fatalf("channels %+v", chans)
	}
	var ofConn []channel
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/connections/"+url.PathEscape(c.Details.Name)+"/channels", "", &ofConn); code != http.StatusOK || len(ofConn) != 2 {
		t.Fatalf("channels of the connection: %d %+v", code, ofConn)
	}
	var inVhost []channel
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/vhosts/%2F/channels", "", &inVhost); code != http.StatusOK || len(inVhost) < 2 {
		t.Fatalf("channels of vhost /: %d %+v", code, inVhost)
	}

	var cons []struct {
		Tag      string `json:"consumer_tag"`
		Ack      bool   `json:"ack_required"`
		Prefetch int    `json:"prefetch_count"`
		Queue    struct{ Name, Vhost string }
		Channel  struct {
			Conn string `json:"connection_name"`
			User string
		} `json:"channel_details"`
	}
	for _, path := range []string{"/api/consumers", "/api/consumers/%2F"} {
		cons = nil
		if code := mgmtJSON(t, b, "guest", "guest", "GET", path, "", &cons); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		var mine int
		for _, x := range cons {
			if x.Tag == "worker-1" {
				mine++
				if !x.Ack || x.Prefetch != 7 || x.Queue.Name != "work" || x.Queue.Vhost != "/" || x.Channel.Conn != c.Details.Name || x.Channel.User != "guest" {
					t.Fatalf("consumer %+v", x)
				}
			}
		}
		if mine != 1 {
			t.Fatalf("GET %s: worker-1 listed %d times in %+v", path, mine, cons)
		}
	}

	var nodes []struct {
		Name    string
		Running bool
		MemUsed uint64 `json:"mem_used"`
		FDUsed  int    `json:"fd_used"`
		Disk    int64  `json:"disk_free"`
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/nodes", "", &nodes); code != http.StatusOK || len(nodes) != 1 ||
		!strings.HasPrefix(nodes[0].Name, "ums@") || !nodes[0].Running || nodes[0].MemUsed == 0 || nodes[0].FDUsed == 0 || nodes[0].Disk <= 0 {
		t.Fatalf("nodes: %d %+v", code, nodes)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/nodes/"+url.PathEscape(nodes[0].Name), "", nil); code != http.StatusOK {
		t.Fatalf("GET the node: %d", code)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/nodes/rabbit@elsewhere", "", nil); code != http.StatusNotFound {
		t.Fatalf("GET another node: %d", code)
	}
	for _, path := range []string{"/api/policies", "/api/policies/%2F", "/api/parameters", "/api/parameters/shovel"} {
		var list []any
		if code := mgmtJSON(t, b, "guest", "guest", "GET", path, "", &list); code != http.StatusOK || list == nil || len(list) != 0 {
			t.Fatalf("GET %s: %d %v", path, code, list)
		}
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/policies/nope", "", nil); code != http.StatusNotFound {
		t.Fatalf("policies of a missing vhost: %d", code)
	}
}

// A vhost created over the API is usable at once and survives a restart.
func TestMgmtAPIPutVhost(t *testing.T) {
	dir := t.TempDir()
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.WithDataDir(dir))
	if code := mgmtJSON(t, b, "guest", "guest", "PUT", "/api/vhosts/tenant-a", `{"description": "tenant A"}`, nil); code != http.StatusCreated {
		t.Fatalf("PUT vhost: %d", code)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "PUT", "/api/vhosts/tenant-a", "", nil); code != http.StatusNoContent {
		t.Fatalf("PUT existing vhost: %d", code)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "PUT", "/api/vhosts/bad", `{"description": `, nil); code != http.StatusBadRequest {
		t.Fatalf("PUT vhost with a malformed body: %d", code)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "PUT", "/api/users/watcher", `{"password": "w", "tags": "monitoring"}`, nil); code != http.StatusCreated {
		t.Fatalf("PUT user: %d", code)
	}
	if code := mgmtJSON(t, b, "watcher", "w", "PUT", "/api/vhosts/by-watcher", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("PUT vhost as a monitoring user: %d, want 401", code)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "PUT", "/api/permissions/tenant-a/guest", `{"configure": ".*", "write": ".*", "read": ".*"}`, nil); code/100 != 2 {
		t.Fatalf("PUT permissions: %d", code)
	}
	vhostURL := strings.TrimSuffix(b.AMQPURL, "/") + "/tenant-a"
	conn, err := amqp.Dial(vhostURL)
	if err != nil {
		t.Fatalf("AMQP to the new vhost: %v", err)
	}
	conn.Close()

	b.Stop()
	b = testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.WithDataDir(dir))
	var v struct{ Name string }
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/vhosts/tenant-a", "", &v); code != http.StatusOK || v.Name != "tenant-a" {
		t.Fatalf("the vhost after a restart: %d %+v", code, v)
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/vhosts/bad", "", nil); code != http.StatusNotFound {
		t.Fatalf("the refused vhost exists: %d", code)
	}
	conn, err = amqp.Dial(strings.TrimSuffix(b.AMQPURL, "/") + "/tenant-a")
	if err != nil {
		t.Fatalf("AMQP to the vhost after a restart: %v", err)
	}
	conn.Close()
}

// A queue's message counters, which the console turns into rates.
func TestMgmtAPIQueueMessageStats(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP))
	conn := dialBroker(t, b.Broker)
	ch := openChannel(t, conn)
	if _, err := ch.QueueDeclare("counted", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := ch.Publish("", "counted", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		var m amqp.Delivery
		ok, err := false, error(nil)
		for !ok {
			if m, ok, err = ch.Get("counted", false); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			if err := m.Nack(false, true); err != nil { // back, then delivered again
				t.Fatal(err)
			}
			continue
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	type stats struct {
		Publish    uint64 `json:"publish"`
		DeliverGet uint64 `json:"deliver_get"`
		Redeliver  uint64 `json:"redeliver"`
		Ack        uint64 `json:"ack"`
	}
	var q struct {
		Stats stats `json:"message_stats"`
	}
	waitUntil(t, 10*time.Second, "the ack to be counted", func() bool {
		mgmtJSON(t, b, "guest", "guest", "GET", "/api/queues/%2F/counted", "", &q)
		return q.Stats.Ack == 1
	})
	if want := (stats{Publish: 3, DeliverGet: 2, Redeliver: 1, Ack: 1}); q.Stats != want {
		t.Fatalf("message_stats %+v, want %+v", q.Stats, want)
	}
}

// Deleting a vhost takes everything in it, for good: its clients are
// disconnected, its queues, messages, exchanges and permissions are gone
// after a restart too, and a vhost made again under the name starts empty
// with notification delivery working.
func TestMgmtAPIDeleteVhost(t *testing.T) {
	dir := t.TempDir()
	e := startNotify(t, testutil.WithDataDir(dir))
	b := e.b
	admin := func(method, path, body string) int { return mgmtJSON(t, b, "guest", "guest", method, path, body, nil) }
	if code := admin("PUT", "/api/vhosts/doomed", ""); code != http.StatusCreated {
		t.Fatalf("PUT vhost: %d", code)
	}
	if code := admin("PUT", "/api/permissions/doomed/guest", `{"configure": ".*", "write": ".*", "read": ".*"}`); code/100 != 2 {
		t.Fatalf("PUT permissions: %d", code)
	}
	conn, err := amqp.Dial(strings.TrimSuffix(b.AMQPURL, "/") + "/doomed")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch := openChannel(t, conn)
	if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("later", "x-delayed-message", true, false, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("orders", "k", "later", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 2))
	for _, p := range []struct {
		exchange, key string
		headers       amqp.Table
	}{{"", "orders", nil}, {"later", "k", amqp.Table{"x-delay": int32(3600000)}}} {
		if err := ch.Publish(p.exchange, p.key, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Headers: p.headers, Body: []byte("kept?")}); err != nil {
			t.Fatal(err)
		}
		if c := <-confirms; !c.Ack {
			t.Fatal("publish nacked")
		}
	}

	if code := admin("DELETE", "/api/vhosts/doomed", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE vhost: %d", code)
	}
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.ConnectionForced {
			t.Fatalf("the client was closed with %v, want 320", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the vhost's client stayed connected")
	}
	if code := admin("DELETE", "/api/vhosts/doomed", ""); code != http.StatusNotFound {
		t.Fatalf("DELETE a deleted vhost: %d", code)
	}
	if code := admin("GET", "/api/permissions/doomed/guest", ""); code != http.StatusNotFound {
		t.Fatalf("permissions on the deleted vhost: %d", code)
	}
	if _, err := amqp.Dial(strings.TrimSuffix(b.AMQPURL, "/") + "/doomed"); err == nil {
		t.Fatal("AMQP connected to a deleted vhost")
	}

	// Gone after a restart too.
	b.Stop()
	e = startNotify(t, testutil.WithDataDir(dir))
	b = e.b
	if code := admin("GET", "/api/vhosts/doomed", ""); code != http.StatusNotFound {
		t.Fatalf("the deleted vhost after a restart: %d", code)
	}
	// Made again: empty, and notification delivery works in it.
	if code := admin("PUT", "/api/vhosts/doomed", ""); code != http.StatusCreated {
		t.Fatalf("PUT vhost again: %d", code)
	}
	if code := admin("PUT", "/api/permissions/doomed/guest", `{"configure": ".*", "write": ".*", "read": ".*"}`); code/100 != 2 {
		t.Fatalf("PUT permissions: %d", code)
	}
	if code := admin("GET", "/api/queues/doomed/orders", ""); code != http.StatusNotFound {
		t.Fatalf("the old queue in the new vhost: %d", code)
	}
	var x struct {
		Delayed int `json:"messages_delayed"`
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/exchanges/doomed/later", "", &x); code != http.StatusNotFound {
		t.Fatalf("the old delayed exchange in the new vhost: %d %+v", code, x)
	}
	a := submit(t, b, webhookNote(e.hook.URL, nil), http.StatusAccepted, map[string]string{"X-UMS-Vhost": "doomed"})
	waitStatus(t, b, a.ID, "sent")
}

// Each connection counts what it published and what was delivered to it,
// whatever its protocol: the console's connection rates.
func TestMgmtAPIConnectionMessageStats(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.STOMP, testutil.HTTP))
	conn := dialBroker(t, b.Broker)
	ch := openChannel(t, conn)
	if _, err := ch.QueueDeclare("seen", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("seen", "stats.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := ch.Publish("amq.topic", "stats.amqp", false, false, amqp.Publishing{Body: []byte("a")}); err != nil {
			t.Fatal(err)
		}
	}
	mc, _, _ := mqtt5(t, b.Broker, "stats-mqtt", true, 0)
	for i := 0; i < 3; i++ {
		mqttPub5(t, mc, &paho.Publish{Topic: "stats/mqtt", QoS: 1, Payload: []byte("m")})
	}
	sc, err := stompAs(t, b.STOMPAddr, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := sc.Send("/topic/stats.stomp", "text/plain", []byte("s"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	// The AMQP connection takes 9 deliveries (2 + 3 + 4).
	for n := 0; n < 9; {
		_, ok, err := ch.Get("seen", true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			n++
		}
	}
	var conns []struct {
		Protocol string
		Stats    struct {
			Publish    uint64 `json:"publish"`
			DeliverGet uint64 `json:"deliver_get"`
		} `json:"message_stats"`
	}
	if code := mgmtJSON(t, b, "guest", "guest", "GET", "/api/connections", "", &conns); code != http.StatusOK {
		t.Fatalf("GET connections: %d", code)
	}
	want := map[string][2]uint64{"AMQP": {2, 9}, "MQTT": {3, 0}, "STOMP": {4, 0}}
	for _, c := range conns {
		family := strings.Fields(c.Protocol)[0]
		if w, ok := want[family]; ok {
			if got := [2]uint64{c.Stats.Publish, c.Stats.DeliverGet}; got != w {
				t.Errorf("%s connection: published, delivered %v, want %v", c.Protocol, got, w)
			}
			delete(want, family)
		}
	}
	if len(want) != 0 {
		t.Fatalf("no connection of %v listed", want)
	}
}
