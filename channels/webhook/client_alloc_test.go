//go:build !race

package webhook

import (
	"context"
	"testing"
)

// The lean client's allocations per send. The server allocates nothing
// per request, so that only the client's count.
func TestLeanAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	to := quickServer(t)
	s := leanSender(t, nil)
	m := leanMessage(to, "n-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	})
	// Parsing the URL (1), and a cancellable context's AfterFunc (2).
	if allocs > 3 {
		t.Errorf("%.0f allocations per send", allocs)
	}
}
