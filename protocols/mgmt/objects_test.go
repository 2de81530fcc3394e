package mgmt

import (
	"testing"
	"time"

	"github.com/unifiedms/ums/core"
)

func TestPropertiesKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		args core.Table
		want string
	}{
		{"", nil, "~"},
		{"orders", nil, "orders"},
		{"order.*.eu", nil, "order.%252A.eu"},
		{"a b/c%", nil, "a+b%252Fc%2525"},
		{"#", core.Table{}, "%2523"},
	} {
		if got := propertiesKey(c.key, c.args); got != c.want {
			t.Errorf("propertiesKey(%q, %v) = %q, want %q", c.key, c.args, got, c.want)
		}
	}
	a := propertiesKey("k", core.Table{"x-match": "any", "n": int64(1)})
	b := propertiesKey("k", core.Table{"n": int64(1), "x-match": "any"})
	if a != b || len(a) < 3 || a[:2] != "k~" || a == propertiesKey("k", core.Table{"x-match": "all"}) {
		t.Errorf("keys with arguments: %q %q", a, b)
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	raw := `{"content_type":"text/plain","delivery_mode":2,"priority":0,"headers":{"n":3,"s":"x"},` +
		`"timestamp":1700000000,"message_id":"m1","user_id":"","expiration":"60000"}`
	p, err := decodeProperties([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if p.ContentType != "text/plain" || p.DeliveryMode != 2 || p.Headers["n"] != int64(3) ||
		!p.Timestamp.Equal(time.Unix(1700000000, 0)) || p.Expiration != "60000" {
		t.Fatalf("decoded %+v", p)
	}
	out := propertiesJSON(p)
	for _, k := range []string{"content_type", "delivery_mode", "priority", "headers", "timestamp", "message_id", "user_id", "expiration"} {
		if _, ok := out[k]; !ok {
			t.Errorf("%s missing from %v", k, out)
		}
	}
	if _, ok := out["reply_to"]; ok {
		t.Errorf("reply_to shown though absent: %v", out)
	}
	for _, bad := range []string{`{"delivery_mode":300}`, `{"colour":"red"}`, `{"headers":[1]}`, `[]`} {
		if _, err := decodeProperties([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
