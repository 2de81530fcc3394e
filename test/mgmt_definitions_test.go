package test

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// defsDoc is a definitions document, each list sorted so that two
// documents compare by content.
type defsDoc map[string]any

func parseDefs(t *testing.T, data []byte) defsDoc {
	t.Helper()
	var d defsDoc
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("definitions: %v: %s", err, data)
	}
	for k, v := range d {
		if l, ok := v.([]any); ok {
			slices.SortFunc(l, func(a, b any) int {
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				return slices.Compare(ja, jb)
			})
		}
		d[k] = v
	}
	return d
}

// has reports whether list key of d holds an entry with all of want's
// fields (compared as JSON values).
func (d defsDoc) has(key string, want map[string]any) bool {
	l, _ := d[key].([]any)
	for _, e := range l {
		m, _ := e.(map[string]any)
		ok := true
		for k, v := range want {
			if !reflect.DeepEqual(m[k], v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestMgmtAPIDefinitionsRoundTrip imports a RabbitMQ 3.13 export, checks
// that every object and user came in (the users with their passwords),
// then exports, imports that into a fresh node and exports again: the two
// exports are the same.
func TestMgmtAPIDefinitionsRoundTrip(t *testing.T) {
	fixture, err := os.ReadFile("testdata/rabbitmq-definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	const g = "guest"
	s1, base1 := startMgmt(t)
	apiWant(t, http.StatusNoContent, "POST", base1+"/api/definitions", g, g, string(fixture))
	first := apiWant(t, http.StatusOK, "GET", base1+"/api/definitions", g, g, "")
	exp := parseDefs(t, first)
	src := parseDefs(t, fixture)
	for _, key := range []string{"permissions", "topic_permissions", "queues", "exchanges", "bindings"} {
		for _, e := range src[key].([]any) {
			if !exp.has(key, e.(map[string]any)) {
				t.Errorf("export lacks %s %v", key, e)
			}
		}
	}
	for _, e := range src["users"].([]any) {
		u := e.(map[string]any)
		delete(u, "limits")
		if !exp.has("users", u) {
			t.Errorf("export lacks user %v", u)
		}
	}
	for _, name := range []string{"/", "shop"} {
		if !exp.has("vhosts", map[string]any{"name": name}) {
			t.Errorf("export lacks vhost %q", name)
		}
	}
	if exp["rabbit_version"] == nil || exp["parameters"] == nil || exp["policies"] == nil {
		t.Errorf("export lacks rabbit_version, parameters or policies: %s", first)
	}

	// The imported users log in with their RabbitMQ passwords, and their
	// permissions apply.
	conn, err := amqp.Dial("amqp://orders-svc:orders-pass@" + s1.Addr("amqp").String() + "/shop")
	if err != nil {
		t.Fatalf("imported user: %v", err)
	}
	conn.Close()
	apiWant(t, http.StatusOK, "GET", base1+"/api/queues/shop/orders.created", "grafana", "watch-only", "")
	apiError(t, http.StatusUnauthorized, "read-only", "PUT", base1+"/api/queues/shop/x", "grafana", "watch-only", "{}")
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "PUT", base1+"/api/queues/shop/billing", "orders-svc", "orders-pass", "{}")
	var routed struct{ Routed bool }
	decodeInto(t, apiWant(t, http.StatusOK, "POST", base1+"/api/exchanges/shop/shop.events/publish", "orders-svc", "orders-pass",
		`{"properties":{},"routing_key":"order.created.eu","payload":"{}","payload_encoding":"string"}`), &routed)
	if !routed.Routed {
		t.Error("publish through the imported topology was not routed")
	}
	apiError(t, http.StatusUnauthorized, "ACCESS_REFUSED", "POST", base1+"/api/exchanges/shop/shop.events/publish", "orders-svc", "orders-pass",
		`{"properties":{},"routing_key":"invoice.paid","payload":"{}","payload_encoding":"string"}`)

	// Round trip through a fresh node.
	_, base2 := startMgmt(t)
	apiWant(t, http.StatusNoContent, "POST", base2+"/api/definitions", g, g, string(first))
	second := apiWant(t, http.StatusOK, "GET", base2+"/api/definitions", "ops-admin", "s3cret-admin", "")
	if a, b := parseDefs(t, first), parseDefs(t, second); !reflect.DeepEqual(a, b) {
		t.Errorf("export after import differs:\nfirst:  %s\nsecond: %s", first, second)
	}

	// One vhost's definitions: no vhost field, loaded into the vhost named.
	shop := parseDefs(t, apiWant(t, http.StatusOK, "GET", base1+"/api/definitions/shop", g, g, ""))
	if shop["users"] != nil || !shop.has("queues", map[string]any{"name": "orders.audit"}) ||
		shop.has("queues", map[string]any{"vhost": "shop"}) {
		t.Errorf("vhost export: %v", shop)
	}
	data, _ := json.Marshal(shop)
	apiWant(t, http.StatusNoContent, "POST", base2+"/api/definitions/%2F", g, g, string(data))
	apiWant(t, http.StatusOK, "GET", base2+"/api/queues/%2F/orders.audit", g, g, "")
	apiWant(t, http.StatusOK, "GET", base2+"/api/bindings/%2F/e/shop.events/e/shop.audit", g, g, "")

	// Errors: not JSON, an unknown user's permission, non-administrators.
	apiError(t, http.StatusBadRequest, "invalid", "POST", base2+"/api/definitions", g, g, "{")
	apiError(t, http.StatusBadRequest, "nobody", "POST", base2+"/api/definitions", g, g,
		`{"permissions":[{"user":"nobody","vhost":"/","configure":"","write":"","read":""}]}`)
	apiError(t, http.StatusUnauthorized, "", "GET", base1+"/api/definitions", "orders-svc", "orders-pass", "")
	apiError(t, http.StatusUnauthorized, "", "POST", base1+"/api/definitions", "grafana", "watch-only", "{}")
}
