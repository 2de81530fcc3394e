package pipeline

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/unifiedms/ums/notify"
)

// The job and webhook encoders write what json.Marshal writes.
func TestEncodersMatchMarshal(t *testing.T) {
	prio := 9
	n := &notify.Notification{Channels: []string{"webhook", "email"}, To: notify.Recipient{Email: "a@example.com",
		Webhook: "https://h.example/?a=<1>&b"}, Data: map[string]any{"x": []any{1.0, "y"}}, Priority: &prio,
		Content: &notify.Content{Subject: "s\u2028", HTML: "<p>"}, Tags: []string{"t"}, Tenant: "acme"}
	seoul := time.FixedZone("KST", 9*3600)
	for _, j := range []*job{
		{ID: "01", N: n, Channels: []string{"webhook", "email"}, Accepted: time.Unix(1700000000, 123456789).UTC()},
		{ID: "02", N: n, Channels: []string{"email"}, CI: 0, Attempt: 3, Hops: 4, Step: 7, LastError: "550 <no>",
			Accepted: time.Unix(1700000000, 0).In(seoul), ExpiresAt: time.Unix(1800000000, 5).In(seoul)},
		{ID: "03", N: nil, Channels: nil},
	} {
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := j.appendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("job %s:\nappendJSON   %s (%v)\njson.Marshal %s", j.ID, got, err, want)
		}
		w := webhookBody{ID: j.ID, Attempt: j.Attempt, Notification: j.N}
		if j.N != nil {
			w.Content = *j.N.Content
		}
		want, _ = json.Marshal(w)
		if got, err = w.appendJSON(nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("webhook body %s:\nappendJSON   %s (%v)\njson.Marshal %s", j.ID, got, err, want)
		}
	}
	// A time JSON cannot hold fails as json.Marshal fails.
	bad := &job{ID: "04", N: n, Channels: []string{"email"}, Accepted: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(bad); err == nil {
		t.Fatal("json.Marshal took year 10000")
	}
	if _, err := bad.appendJSON(nil); err == nil {
		t.Fatal("appendJSON took year 10000")
	}
}
