package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/unifiedms/ums/internal/testutil"
)

// The idle mode opens its STOMP connections against a real broker and
// reports them ready; a wrong passcode counts as failures.
func TestStompIdle(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.STOMP))
	var out bytes.Buffer
	if code := run([]string{"stomp", "-addr", b.STOMPAddr, "-idle", "20", "-parallel", "4", "-hold", "1ms"}, &out, &out); code != 0 ||
		!strings.Contains(out.String(), "READY 20\n") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	out.Reset()
	run([]string{"stomp", "-addr", b.STOMPAddr, "-idle", "3", "-passcode", "wrong", "-hold", "1ms"}, &out, &out)
	if !strings.Contains(out.String(), "READY 0\n") || !strings.Contains(out.String(), "3 failed") {
		t.Fatalf("with a wrong passcode:\n%s", out.String())
	}
}
