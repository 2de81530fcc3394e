package notify

import (
	"errors"
	"fmt"
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
