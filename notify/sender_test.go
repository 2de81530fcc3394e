package notify

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestErrorClassification(t *testing.T) {
	base := errors.New("boom")
	p := fmt.Errorf("webhook: %w", Permanent(410, base))
	if !IsPermanent(p) || !errors.Is(p, base) {
		t.Fatalf("wrapped permanent error not recognised: %v", p)
	}
	if _, ok := RetryAfterOf(p); ok {
		t.Fatal("a permanent failure has no retry time")
	}
	tr := Transient(429, 3*time.Second, base)
	if IsPermanent(tr) {
		t.Fatal("transient error classified permanent")
	}
	if d, ok := RetryAfterOf(tr); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfterOf = %v, %v", d, ok)
	}
	if IsPermanent(base) {
		t.Fatal("an unclassified error must count as transient")
	}
	if got := tr.Error(); got != "transient failure (429): boom" {
		t.Fatalf("message %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"30", 30 * time.Second}, {" 5 ", 5 * time.Second}, {"-1", 0}, {"soon", 0},
		{"999999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := RetryAfter(c.in, now); got != c.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
