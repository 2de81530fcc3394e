package notify

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestEventKeyAndBody(t *testing.T) {
	if k := EventKey(StatusSent, ChannelEmail); k != "notification.sent.email" {
		t.Fatalf("key %q", k)
	}
	if k := EventKey(StatusDeduplicated, ""); k != "notification.deduplicated.none" {
		t.Fatalf("key %q", k)
	}
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	e := Event{ID: "n1", Status: StatusRetrying, Channel: ChannelWebhook, Attempt: 2, Error: "503", At: at, Tenant: "acme", Tags: []string{"otp"}}
	var got map[string]any
	if err := json.Unmarshal(e.Body(), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"id": "n1", "status": "retrying", "channel": "webhook", "attempt": 2.0,
		"error": "503", "at": "2026-12-05T12:00:00Z", "tenant": "acme"} {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v", k, got[k], v)
		}
	}
	if ChannelQueue(ChannelSMS) != "ums.notify.sms" {
		t.Fatal(ChannelQueue(ChannelSMS))
	}
}

func TestBackoff(t *testing.T) {
	top := Backoff{Base: time.Second, Max: 5 * time.Minute, Rand: func() float64 { return 0.999999 }}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 50: 5 * time.Minute} {
		if d := top.Delay(attempt, nil); d > want || d < want-want/1000 {
			t.Errorf("attempt %d: ceiling %v, want %v", attempt, d, want)
		}
	}
	zero := Backoff{Rand: func() float64 { return 0 }}
	if d := zero.Delay(3, nil); d != 0 {
		t.Errorf("full jitter may wait 0, got %v", d)
	}
	// A provider's Retry-After wins when longer than the jittered delay.
	if d := zero.Delay(1, Transient(429, 30*time.Second, errors.New("slow down"))); d != 30*time.Second {
		t.Errorf("Retry-After ignored: %v", d)
	}
	// Real randomness stays within [0, ceiling).
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for i := 0; i < 1000; i++ {
		if d := b.Delay(3, nil); d < 0 || d >= 400*time.Millisecond {
			t.Fatalf("delay %v outside [0, 400ms)", d)
		}
	}
}

// Body writes what json.Marshal writes.
func TestEventBodyIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 123, time.FixedZone("KST", 9*3600))
	for _, e := range []Event{
		{},
		{ID: "n1", Status: StatusQueued, At: at},
		{ID: "n2", Status: StatusFailed, Channel: ChannelEmail, Attempt: 3, Error: `550 "no" <user>` + "\n\xff", At: at,
			Tenant: "acme & co", Tags: []string{"otp", "", "é"}},
		{ID: "n3", Status: StatusSent, Tags: []string{}},
		{ID: "n4", At: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		want, _ := json.Marshal(&e)
		if got := e.Body(); string(got) != string(want) {
			t.Errorf("Body() = %s\njson.Marshal %s", got, want)
		}
	}
}

func BenchmarkEventBody(b *testing.B) {
	e := Event{ID: "01hzy3k9x2m4n6p8q0r2s4t6v8", Status: StatusSent, Channel: ChannelWebhook, Attempt: 1,
		At: time.Date(2026, 12, 5, 12, 0, 0, 123456789, time.UTC), Tenant: "acme", Tags: []string{"otp"}}
	b.ReportAllocs()
	for b.Loop() {
		e.Body()
	}
}

// ChannelQueue names every channel's queue alike, known or not.
func TestChannelQueue(t *testing.T) {
	for _, c := range []string{ChannelWebhook, ChannelEmail, ChannelSMS, ChannelPush, "kakao"} {
		if got := ChannelQueue(c); got != "ums.notify."+c {
			t.Fatalf("ChannelQueue(%q) = %q", c, got)
		}
	}
}
