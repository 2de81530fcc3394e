package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestAmqplibCloseWithPublishesInFlight runs node/close_in_flight.js with
// npm's amqplib: 2,000 small publishes fill the client's socket buffer,
// then it closes the connection at once, and its close callback must run
// within 5 s. amqplib sends connection.close ahead of the queued publishes;
// a broker that closes the socket right after its close-ok, with those
// publishes unread, makes the kernel answer with RST and the client never
// hears the close-ok. scripts/test.sh installs node and amqplib.
func TestAmqplibCloseWithPublishesInFlight(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		msg := "node not installed: apt-get install -y nodejs npm, then npm install in test/interop/node (scripts/test.sh does both)"
		fmt.Fprintf(os.Stderr, "%s: %s\n", t.Name(), msg)
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "amqplib", "package.json")); err != nil {
		t.Fatalf("amqplib is not installed in test/interop/node: run npm install there (scripts/test.sh does): %v", err)
	}
	url, _ := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "close_in_flight.js")
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "AMQP_URL="+url, "ROUNDS=5", "CLOSE_WITHIN_MS=5000")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil || testing.Verbose() {
		t.Logf("node close_in_flight.js (%v):\n%s", took, out.String())
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("close_in_flight.js did not finish within %v", scriptTimeout)
	case err != nil:
		t.Fatalf("close_in_flight.js failed: %v", err)
	}
}
