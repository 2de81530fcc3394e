package webhook_test

import (
	"fmt"
	"time"

	"github.com/unifiedms/ums/channels/webhook"
)

// A receiver checks each request's X-UMS-Signature against the raw body
// before trusting it.
func ExampleVerify() {
	secret := []byte("shared-secret")
	sent := time.Unix(1700000000, 0)
	body := []byte(`{"id":"n-1"}`)
	header := webhook.Sign(secret, sent, body) // what the sender put in X-UMS-Signature

	received := sent.Add(3 * time.Second)
	fmt.Println(webhook.Verify(secret, header, body, received, 5*time.Minute))
	fmt.Println(webhook.Verify(secret, header, []byte(`{"id":"n-2"}`), received, 5*time.Minute))
	fmt.Println(webhook.Verify(secret, header, body, sent.Add(time.Hour), 5*time.Minute))
	// Output:
	// <nil>
	// signature does not match
	// signature timestamp outside tolerance
}
