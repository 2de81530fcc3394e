package test

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/testutil"
)

// memFSServer runs a broker whose stores write to fsys, so a test can fail
// or hold its fsyncs. Shutdown errors are ignored: a test that failed an
// fsync leaves a poisoned store behind on purpose.
func memFSServer(t testing.TB, fsys *store.MemFS) (s *server, dataDir string) {
	t.Helper()
	b := testutil.StartBroker(t, testutil.WithFS(fsys), testutil.WithProtocols(testutil.AMQP), testutil.IgnoreShutdownError())
	return newServer(b), b.DataDir
}

// syncGate holds every fsync of the message log until opened.
type syncGate struct {
	entered chan struct{} // receives when an fsync starts waiting
	open    chan struct{}
	once    sync.Once
}

func holdMessageSyncs(fsys *store.MemFS) *syncGate {
	g := &syncGate{entered: make(chan struct{}, 1), open: make(chan struct{})}
	fsys.SetHook(func(op, name string) {
		if op != "sync" || !strings.Contains(name, string(filepath.Separator)+"messages"+string(filepath.Separator)) {
			return
		}
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.open
	})
	return g
}

func (g *syncGate) release() { g.once.Do(func() { close(g.open) }) }

// commitHeld runs tx.commit while the message log's fsync is held and
// checks that commit-ok comes only after the fsync is let through.
func commitHeld(t *testing.T, fsys *store.MemFS, tx *amqp.Channel) {
	t.Helper()
	g := holdMessageSyncs(fsys)
	defer fsys.SetHook(nil)
	defer g.release()
	done := make(chan error, 1)
	go func() { done <- tx.TxCommit() }()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("tx.commit answered (%v) before the message log was synced", err)
	case <-time.After(waitFor):
		t.Fatal("the commit started no fsync of the message log")
	}
	// The fsync is held: commit-ok must not come now. Without the wait in
	// the server it arrives within a millisecond; give it ample time.
	select {
	case err := <-done:
		t.Fatalf("tx.commit answered (%v) while its fsync was still running", err)
	case <-time.After(300 * time.Millisecond):
	}
	g.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tx.commit: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("no commit-ok after the fsync finished")
	}
}

// TestTxCommitWaitsForFsync: tx.commit-ok goes out only after the fsync
// that covers the transaction's persistent publishes, and its acks of
// stored messages.
func TestTxCommitWaitsForFsync(t *testing.T) {
	fsys := store.NewMemFS()
	s, dataDir := memFSServer(t, fsys)
	conn := s.dial(t)
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare("tx.durable", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	tx := txChannel(t, conn)
	publishMsg(t, tx, "", "tx.durable", false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("1")})
	commitHeld(t, fsys, tx)

	// The committed message is durable: a crash right now keeps it.
	if n := storedRecords(t, fsys.Crash(), dataDir); n != 1 {
		t.Fatalf("%d stored messages survive a crash after commit-ok, want 1", n)
	}

	d, ok, err := tx.Get("tx.durable", false)
	if err != nil || !ok {
		t.Fatalf("basic.get: ok=%v err=%v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	commitHeld(t, fsys, tx)
	if n := storedRecords(t, fsys.Crash(), dataDir); n != 0 {
		t.Fatalf("%d stored messages survive a crash after the ack's commit-ok, want 0", n)
	}
}

// storedRecords opens the message log of a crashed copy of the file system
// and counts its live records.
func storedRecords(t *testing.T, fsys *store.MemFS, dataDir string) int {
	t.Helper()
	dir := filepath.Join(dataDir, "messages")
	l, _, err := store.OpenLog(fsys, dir, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open crashed log: %v", err)
	}
	defer l.Close()
	return int(l.Stats().LiveRecords)
}

// TestTxCommitFsyncFailure: when the fsync that should cover a transaction
// fails, the client gets no commit-ok: the connection closes with 541
// INTERNAL_ERROR, for a transaction of publishes and for one of acks.
func TestTxCommitFsyncFailure(t *testing.T) {
	for _, kind := range []string{"publish", "ack"} {
		t.Run(kind, func(t *testing.T) {
			fsys := store.NewMemFS()
			s, _ := memFSServer(t, fsys)
			conn := s.dial(t)
			ch := confirmChannel(t, conn)
			if _, err := ch.QueueDeclare("tx.fail", true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			tx := txChannel(t, conn)
			if kind == "ack" {
				publishConfirmed(t, ch, "", "tx.fail", amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("a")})
				d, ok, err := tx.Get("tx.fail", false)
				if err != nil || !ok {
					t.Fatalf("basic.get: ok=%v err=%v", ok, err)
				}
				if err := d.Ack(false); err != nil {
					t.Fatal(err)
				}
			} else {
				publishMsg(t, tx, "", "tx.fail", false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("p")})
			}
			closed := notifyConnClose(conn)
			fsys.FailSync(errors.New("injected fsync failure"))
			err := tx.TxCommit()
			if err == nil {
				t.Fatal("commit-ok although the transaction's fsync failed")
			}
			wantReply(t, err, amqp.InternalError, "INTERNAL_ERROR")
			closedWith(t, closed, amqp.InternalError, "INTERNAL_ERROR")
		})
	}
}
