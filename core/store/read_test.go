package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// Read returns what was appended, before and after the record is durable,
// after a restart and after compaction moved it; released records are gone.
func TestReadRecords(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _, err := OpenLog(fsys, dir, Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for i := 0; i < 2000; i++ {
			ids = append(ids, l.Append([]byte(fmt.Sprintf("record-%d", i)), 1, func(error) {}))
		}
		// Straight away: possibly still queued for the flusher.
		got, err := l.Read(ids[1999])
		if err != nil || string(got) != "record-1999" {
			t.Fatalf("read before sync: %q, %v", got, err)
		}
		for i, id := range ids {
			if i != 0 && i%7 != 0 {
				l.Release(id, 0)
			}
		}
		waitDurable(t, l)
		if _, err := l.Read(ids[1]); !errors.Is(err, ErrNoRecord) {
			t.Fatalf("released record: got %v, want ErrNoRecord", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, _, err = OpenLog(fsys, dir, Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Replay(func(uint64, []int, []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i += 7 {
			got, err := l.Read(ids[i])
			if err != nil || !bytes.Equal(got, []byte(fmt.Sprintf("record-%d", i))) {
				t.Fatalf("record %d after restart: %q, %v", i, got, err)
			}
		}
	})
}

func waitDurable(t *testing.T, l *Log) {
	t.Helper()
	done := make(chan error, 1)
	l.Barrier(func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
