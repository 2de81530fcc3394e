package test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/unifiedms/ums/internal/testutil"
)

// startMgmt runs a broker with AMQP and HTTP on loopback ports.
func startMgmt(t *testing.T) (s *server, base string) {
	t.Helper()
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP))
	return newServer(b), b.HTTPURL
}

func TestMgmtAPIQueuesExchangesBindings(t *testing.T) {
	_, base := startMgmt(t)
	const g = "guest"
	q := base + "/api/queues/%2F/orders"
	apiWant(t, http.StatusCreated, "PUT", q, g, g, `{"durable":true,"auto_delete":false,"arguments":{"x-max-length":10}}`)
	apiWant(t, http.StatusNoContent, "PUT", q, g, g, `{"durable":"true","arguments":{"x-max-length":10}}`)
	apiError(t, http.StatusBadRequest, "406 PRECONDITION_FAILED", "PUT", q, g, g, `{"durable":false}`)
	var qi struct {
		Name      string         `json:"name"`
		Durable   bool           `json:"durable"`
		Arguments map[string]any `json:"arguments"`
	}
	decodeInto(t, apiWant(t, http.StatusOK, "GET", q, g, g, ""), &qi)
	if qi.Name != "orders" || !qi.Durable || qi.Arguments["x-max-length"] != float64(10) {
		t.Fatalf("queue: %+v", qi)
	}
	apiError(t, http.StatusNotFound, "", "GET", base+"/api/queues/%2F/nope", g, g, "")
	apiError(t, http.StatusNotFound, "", "GET", base+"/api/queues/novhost/orders", g, g, "")

	x := base + "/api/exchanges/%2F/events"
	apiWant(t, http.StatusCreated, "PUT", x, g, g, `{"type":"topic","durable":true}`)
	apiWant(t, http.StatusNoContent, "PUT", x, g, g, `{"type":"topic","durable":true}`)
	apiError(t, http.StatusBadRequest, "406 PRECONDITION_FAILED", "PUT", x, g, g, `{"type":"fanout","durable":true}`)
	var xi struct{ Name, Type string }
	decodeInto(t, apiWant(t, http.StatusOK, "GET", x, g, g, ""), &xi)
	if xi.Name != "events" || xi.Type != "topic" {
		t.Fatalf("exchange: %+v", xi)
	}
	decodeInto(t, apiWant(t, http.StatusOK, "GET", base+"/api/exchanges/%2F/amq.default", g, g, ""), &xi)
	if xi.Name != "" || xi.Type != "direct" {
		t.Fatalf("default exchange: %+v", xi)
	}

	// Bindings: queue and exchange destinations, with Location.
	bq := base + "/api/bindings/%2F/e/events/q/orders"
	code, _ := api(t, "POST", bq, g, g, `{"routing_key":"order.*.eu","arguments":{}}`)
	if code != http.StatusCreated {
		t.Fatalf("bind: %d", code)
	}
	req, _ := http.NewRequest("POST", bq, stringsReader(`{"routing_key":"a b/c"}`))
	req.SetBasicAuth(g, g)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || loc != "/api/bindings/%2F/e/events/q/orders/a+b%25252Fc" {
		t.Fatalf("bind: %d, Location %q", resp.StatusCode, loc)
	}
	var bs []struct {
		RoutingKey    string `json:"routing_key"`
		PropertiesKey string `json:"properties_key"`
	}
	decodeInto(t, apiWant(t, http.StatusOK, "GET", bq, g, g, ""), &bs)
	if len(bs) != 2 || bs[0].RoutingKey != "a b/c" || bs[0].PropertiesKey != "a+b%252Fc" || bs[1].PropertiesKey != "order.%252A.eu" {
		t.Fatalf("bindings: %+v", bs)
	}
	apiWant(t, http.StatusOK, "GET", base+loc, g, g, "")
	apiWant(t, http.StatusNoContent, "DELETE", base+loc, g, g, "")
	apiError(t, http.StatusNotFound, "", "DELETE", base+loc, g, g, "")
	apiWant(t, http.StatusCreated, "POST", base+"/api/bindings/%2F/e/events/e/amq.fanout", g, g, `{"routing_key":"#"}`)
	decodeInto(t, apiWant(t, http.StatusOK, "GET", base+"/api/exchanges/%2F/amq.fanout/bindings/destination", g, g, ""), &bs)
	if len(bs) != 1 || bs[0].RoutingKey != "#" {
		t.Fatalf("exchange bindings: %+v", bs)
	}
	apiWant(t, http.StatusNoContent, "DELETE", base+"/api/bindings/%2F/e/events/e/amq.fanout/%252523", g, g, "")
	apiError(t, http.StatusNotFound, "", "POST", base+"/api/bindings/%2F/e/events/q/missing", g, g, `{"routing_key":"k"}`)

	// Publish through the topic exchange, get with each ack mode.
	pub := x + "/publish"
	var routed struct{ Routed bool }
	decodeInto(t, apiWant(t, http.StatusOK, "POST", pub, g, g,
		`{"properties":{"delivery_mode":2,"headers":{"h":1},"content_type":"text/plain"},"routing_key":"order.1.eu","payload":"hello","payload_encoding":"string"}`), &routed)
	if !routed.Routed {
		t.Fatal("not routed")
	}
	decodeInto(t, apiWant(t, http.StatusOK, "POST", pub, g, g,
		`{"properties":{},"routing_key":"order.2.eu","payload":"`+base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1})+`","payload_encoding":"base64"}`), &routed)
	decodeInto(t, apiWant(t, http.StatusOK, "POST", pub, g, g,
		`{"properties":{},"routing_key":"nowhere","payload":"x","payload_encoding":"string"}`), &routed)
	if routed.Routed {
		t.Fatal("routed to nowhere")
	}
	get := q + "/get"
	type msg struct {
		PayloadBytes    int            `json:"payload_bytes"`
		Redelivered     bool           `json:"redelivered"`
		Exchange        string         `json:"exchange"`
		RoutingKey      string         `json:"routing_key"`
		MessageCount    int            `json:"message_count"`
		Properties      map[string]any `json:"properties"`
		Payload         string         `json:"payload"`
		PayloadEncoding string         `json:"payload_encoding"`
	}
	var ms []msg
	decodeInto(t, apiWant(t, http.StatusOK, "POST", get, g, g, `{"count":5,"ackmode":"ack_requeue_true","encoding":"auto","truncate":50000}`), &ms)
	if len(ms) != 2 || ms[0].Payload != "hello" || ms[0].PayloadEncoding != "string" || ms[0].MessageCount != 1 ||
		ms[0].Exchange != "events" || ms[0].RoutingKey != "order.1.eu" || ms[0].Properties["delivery_mode"] != float64(2) ||
		ms[0].Properties["content_type"] != "text/plain" || ms[1].PayloadEncoding != "base64" || ms[1].Payload != "/wAB" {
		t.Fatalf("get: %+v", ms)
	}
	decodeInto(t, apiWant(t, http.StatusOK, "POST", get, g, g, `{"count":"1","ackmode":"ack_requeue_false","encoding":"base64","truncate":2}`), &ms)
	if len(ms) != 1 || !ms[0].Redelivered || ms[0].Payload != base64.StdEncoding.EncodeToString([]byte("he")) || ms[0].PayloadBytes != 5 {
		t.Fatalf("get ack: %+v", ms)
	}
	apiError(t, http.StatusBadRequest, "ackmode", "POST", get, g, g, `{"count":1,"ackmode":"bogus","encoding":"auto"}`)

	// Purge, conditional delete, delete.
	apiError(t, http.StatusBadRequest, "406 PRECONDITION_FAILED", "DELETE", q+"?if-empty=true", g, g, "")
	apiWant(t, http.StatusNoContent, "DELETE", q+"/contents", g, g, "")
	decodeInto(t, apiWant(t, http.StatusOK, "POST", get, g, g, `{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}`), &ms)
	if len(ms) != 0 {
		t.Fatalf("after purge: %+v", ms)
	}
	apiWant(t, http.StatusNoContent, "DELETE", q+"?if-empty=true&if-unused=true", g, g, "")
	apiError(t, http.StatusNotFound, "", "DELETE", q, g, g, "")
	apiWant(t, http.StatusNoContent, "DELETE", x, g, g, "")
	apiError(t, http.StatusNotFound, "", "GET", x, g, g, "")
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// TestMgmtAPIPermissions checks RabbitMQ's rules for the acting user:
// configure to declare and delete, write to publish, read to get and
// purge; monitoring users read-only; management users only in their
// vhosts.
func TestMgmtAPIPermissions(t *testing.T) {
	s, base := startMgmt(t)
	const g = "guest"
	s.Core.AddVhost("other")
	apiWant(t, http.StatusCreated, "PUT", base+"/api/users/alice", g, g, `{"password":"pw","tags":"management"}`)
	apiWant(t, http.StatusCreated, "PUT", base+"/api/users/mon", g, g, `{"password":"pw","tags":"monitoring"}`)
	apiWant(t, http.StatusCreated, "PUT", base+"/api/permissions/%2F/alice", g, g,
		`{"configure":"^alice\\.","write":"^(alice\\..*|amq\\.default)$","read":"^$"}`)
	apiWant(t, http.StatusCreated, "PUT", base+"/api/permissions/%2F/mon", g, g, `{"configure":".*","write":".*","read":".*"}`)

	q := base + "/api/queues/%2F/"
	apiWant(t, http.StatusCreated, "PUT", q+"alice.q", "alice", "pw", `{}`)
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "PUT", q+"bob.q", "alice", "pw", `{}`)
	apiWant(t, http.StatusCreated, "PUT", q+"bob.q", g, g, `{}`)
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "DELETE", q+"bob.q", "alice", "pw", "")
	var routed struct{ Routed bool }
	decodeInto(t, apiWant(t, http.StatusOK, "POST", base+"/api/exchanges/%2F/amq.default/publish", "alice", "pw",
		`{"properties":{},"routing_key":"alice.q","payload":"p","payload_encoding":"string"}`), &routed)
	if !routed.Routed {
		t.Fatal("not routed")
	}
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "POST", base+"/api/exchanges/%2F/amq.direct/publish", "alice", "pw",
		`{"properties":{},"routing_key":"alice.q","payload":"p","payload_encoding":"string"}`)
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "POST", q+"alice.q/get", "alice", "pw",
		`{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}`)
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "DELETE", q+"alice.q/contents", "alice", "pw", "")
	apiError(t, http.StatusBadRequest, "user_id", "POST", base+"/api/exchanges/%2F/amq.default/publish", "alice", "pw",
		`{"properties":{"user_id":"guest"},"routing_key":"alice.q","payload":"p","payload_encoding":"string"}`)

	// Another vhost: neither seen nor changed by alice.
	apiError(t, http.StatusUnauthorized, "virtual host", "PUT", base+"/api/queues/other/alice.q", "alice", "pw", `{}`)
	apiError(t, http.StatusUnauthorized, "virtual host", "GET", base+"/api/queues/other", "alice", "pw", "")
	var vhosts []struct{ Name string }
	decodeInto(t, apiWant(t, http.StatusOK, "GET", base+"/api/vhosts", "alice", "pw", ""), &vhosts)
	if len(vhosts) != 1 || vhosts[0].Name != "/" {
		t.Fatalf("alice sees vhosts %+v", vhosts)
	}

	// Monitoring: sees everything, changes nothing.
	apiWant(t, http.StatusOK, "GET", q+"alice.q", "mon", "pw", "")
	apiWant(t, http.StatusOK, "GET", base+"/api/queues/other", "mon", "pw", "")
	apiError(t, http.StatusUnauthorized, "read-only", "PUT", q+"mon.q", "mon", "pw", `{}`)
	apiError(t, http.StatusUnauthorized, "read-only", "DELETE", q+"alice.q", "mon", "pw", "")
	apiError(t, http.StatusUnauthorized, "read-only", "POST", q+"alice.q/get", "mon", "pw",
		`{"count":1,"ackmode":"ack_requeue_true","encoding":"auto"}`)
}
