package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/testutil"
)

// A RECEIPT for a persistent SEND to a durable queue goes out only after
// the fsync that covers the message; a transient SEND's does not wait.
// When the fsync fails, the client gets an ERROR instead.
func TestStompReceiptAfterFsync(t *testing.T) {
	fsys := store.NewMemFS()
	b := startStomp(t, testutil.WithFS(fsys), testutil.IgnoreShutdownError())
	c := stompDial(t, b.STOMPAddr)
	stompSend(t, c, "/queue/durable", "declare", stomp.SendOpt.Receipt)

	g := holdMessageSyncs(fsys)
	done := make(chan error, 1)
	go func() {
		done <- c.Send("/queue/durable", "text/plain", []byte("p"), stomp.SendOpt.Receipt, stomp.SendOpt.Header("persistent", "true"))
	}()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("RECEIPT (%v) before the message log was synced", err)
	case <-time.After(waitFor):
		t.Fatal("the persistent SEND started no fsync")
	}
	// Meanwhile a transient SEND on another connection is answered.
	c2 := stompDial(t, b.STOMPAddr)
	stompSend(t, c2, "/queue/durable", "transient", stomp.SendOpt.Receipt)
	select {
	case err := <-done:
		t.Fatalf("RECEIPT (%v) while its fsync is held", err)
	case <-time.After(300 * time.Millisecond):
	}
	g.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("no RECEIPT after the fsync")
	}
	fsys.SetHook(nil)

	// A failed fsync: ERROR with the receipt-id, never a RECEIPT.
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	fsys.FailSync(errors.New("injected fsync failure"))
	r.write("SEND\ndestination:/queue/durable\npersistent:true\nreceipt:p2\n\nlost\x00")
	f := r.expectError("internal_error")
	if f.Header.Get("receipt-id") != "p2" || !strings.Contains(string(f.Body), "fsync") && len(f.Body) == 0 {
		t.Fatalf("ERROR %v %q", headers(f), f.Body)
	}
}

// DISCONNECT's receipt comes after the receipts of every persistent SEND
// before it, so a client that saw it knows all of them are stored.
func TestStompDisconnectReceiptAfterStores(t *testing.T) {
	b := startStomp(t)
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	var sb strings.Builder
	for i := range 50 {
		sb.WriteString("SEND\ndestination:/queue/bye\npersistent:true\nreceipt:" + itoa(i) + "\n\nm\x00")
	}
	sb.WriteString("DISCONNECT\nreceipt:last\n\n\x00")
	r.write(sb.String())
	seen := map[string]bool{}
	for {
		f := r.expect("RECEIPT")
		id := f.Header.Get("receipt-id")
		if id == "last" {
			break
		}
		seen[id] = true
	}
	if len(seen) != 50 {
		t.Fatalf("%d receipts before DISCONNECT's, want 50", len(seen))
	}
	r.expectEOF()
	_, ch := newServer(b).channel(t)
	if q, err := ch.QueueDeclarePassive("bye", true, false, false, false, nil); err != nil || q.Messages != 50 {
		t.Fatalf("%+v %v", q, err)
	}
}

// Receipts of persistent SENDs reach a client that stops reading for a
// while, every one, whole and in order: the store's flusher writes a
// receipt itself when the socket takes it at once, leaves what it does
// not take to the connection's writer, and queues the rest behind it.
func TestStompReceiptsToSlowReader(t *testing.T) {
	b := startStomp(t)
	r := dialRawStomp(t, b.STOMPAddr)
	if tc, ok := r.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	r.connect("accept-version:1.2")
	r.write("SUBSCRIBE\nid:0\ndestination:/queue/slow-reader\nack:client-individual\n\n\x00")
	r.write("UNSUBSCRIBE\nid:0\nreceipt:declared\n\n\x00")
	if f := r.expect("RECEIPT"); f.Header.Get("receipt-id") != "declared" {
		t.Fatalf("RECEIPT %v", headers(f))
	}
	const n = 4000
	pad := strings.Repeat("x", 3000)
	sent := make(chan error, 1)
	go func() {
		var sb strings.Builder
		for i := range n {
			sb.Reset()
			fmt.Fprintf(&sb, "SEND\ndestination:/queue/slow-reader\npersistent:true\nreceipt:r-%d-%s\n\n%d\x00", i, pad, i)
			if _, err := io.WriteString(r.nc, sb.String()); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	time.Sleep(500 * time.Millisecond) // the server's socket fills meanwhile
	for i := range n {
		f := r.expect("RECEIPT")
		if want := fmt.Sprintf("r-%d-%s", i, pad); f.Header.Get("receipt-id") != want {
			got := f.Header.Get("receipt-id")
			t.Fatalf("receipt %d: got receipt-id %.12q... (%d bytes), want %.12q... (%d bytes)", i, got, len(got), want, len(want))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}
