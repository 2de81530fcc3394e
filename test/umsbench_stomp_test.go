package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// umsbench's STOMP publishers with a window of receipts: every SEND is
// receipted by the real server, every message arrives once, and the queue
// is left empty.
func TestUmsbenchStompReceiptWindow(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "umsbench")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/umsbench").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	br := startStomp(t)
	const n = 3000
	cmd := exec.Command(bin, "stomp", "-addr", br.STOMPAddr, "-dest", "/queue/window", "-persistent", "-receipt",
		"-receipt-window", "64", "-publishers", "2", "-count", "3000", "-ack", "client-individual", "-prefetch", "100")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("umsbench: %v\n%s%s", err, out, stderr.String())
	}
	var r struct {
		Published, Receipts, Consumed, Lost, Duplicated int64
		ReceiptWindow                                   int `json:"receipt_window"`
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	if r.ReceiptWindow != 64 || r.Published != n || r.Receipts != n || r.Consumed != n || r.Lost != 0 || r.Duplicated != 0 {
		t.Fatalf("got %+v; want %d published, receipted and consumed once each\n%s", r, n, out)
	}
	// Nothing is left behind: a message sent now is the next one delivered.
	c := stompDial(t, br.STOMPAddr)
	s := stompSubscribe(t, c, "/queue/window", stomp.AckAuto)
	if err := c.Send("/queue/window", "text/plain", []byte("last")); err != nil {
		t.Fatal(err)
	}
	if m := stompRecv(t, s); string(m.Body) != "last" {
		t.Fatalf("left in the queue: %q", m.Body)
	}
}
