package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
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

// ReadMany returns what Read returns, in order, across segments, for
// records still queued for the flusher and records compaction moved, and
// stops at the first record that cannot be read.
func TestReadMany(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _, err := OpenLog(fsys, dir, Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var ids []uint64
		want := func(i int) string { return fmt.Sprintf("record-%d-%s", i, bytes.Repeat([]byte{'x'}, i%300)) }
		for i := 0; i < 3000; i++ {
			ids = append(ids, l.Append([]byte(want(i)), 1, func(error) {}))
		}
		check := func(what string, idx []int) {
			t.Helper()
			q := make([]uint64, len(idx))
			for k, i := range idx {
				q[k] = ids[i]
			}
			dst := make([][]byte, len(q))
			n, err := l.ReadMany(q, dst)
			if err != nil || n != len(q) {
				t.Fatalf("%s: read %d of %d: %v", what, n, len(q), err)
			}
			for k, i := range idx {
				if string(dst[k]) != want(i) {
					t.Fatalf("%s: record %d: %q", what, i, dst[k])
				}
			}
		}
		all := make([]int, 3000)
		for i := range all {
			all[i] = i
		}
		check("before sync", all)
		waitDurable(t, l)
		check("written", all)
		check("out of order", []int{2999, 5, 4, 1500, 6, 7, 8, 0})
		// Release most of the early segments so that compaction moves the
		// rest, then read the survivors.
		var kept []int
		for i := range 2000 {
			if i%10 == 0 {
				kept = append(kept, i)
			} else {
				l.Release(ids[i], 0)
			}
		}
		waitDurable(t, l)
		waitDurable(t, l)
		check("after compaction", kept)
		q := []uint64{ids[0], ids[10], ids[11], ids[20]}
		dst := make([][]byte, len(q))
		if n, err := l.ReadMany(q, dst); n != 2 || !errors.Is(err, ErrNoRecord) || string(dst[1]) != want(10) {
			t.Fatalf("released record: read %d, %v", n, err)
		}
	})
}

// countingFS counts the ReadAt calls made on the files it opens.
type countingFS struct {
	FS
	reads *atomic.Int64
}

func (c countingFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countingFile{f, c.reads}, nil
}

type countingFile struct {
	File
	reads *atomic.Int64
}

func (f countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	return f.File.ReadAt(p, off)
}

// ReadMany reads records that lie close together, with others between
// them (a queue's backlog interleaved with another's), in a few reads,
// not one each; records far apart are read on their own.
func TestReadManyAcrossGaps(t *testing.T) {
	var reads atomic.Int64
	l, _, err := OpenLog(countingFS{NewMemFS(), &reads}, "log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := func(i int) string { return fmt.Sprintf("mine-%d", i) }
	var mine []uint64
	for i := range 1000 {
		mine = append(mine, l.Append([]byte(want(i)), 1, func(error) {}))
		l.Append(bytes.Repeat([]byte{'o'}, 200+i%50), 1, func(error) {}) // another queue's
		if i%100 == 99 {
			l.Append(bytes.Repeat([]byte{'b'}, 3*maxReadGap), 1, func(error) {}) // too far to read past
		}
	}
	waitDurable(t, l)
	dst := make([][]byte, len(mine))
	reads.Store(0)
	if n, err := l.ReadMany(mine, dst); err != nil || n != len(mine) {
		t.Fatalf("read %d of %d: %v", n, len(mine), err)
	}
	for i := range mine {
		if string(dst[i]) != want(i) {
			t.Fatalf("record %d: %q", i, dst[i])
		}
	}
	// 10 runs of 100 records about 250 bytes apart (25 KiB each): one
	// read per run, where Read makes 1,000.
	if got := reads.Load(); got > 12 {
		t.Fatalf("%d reads for %d records in 10 runs", got, len(mine))
	}
}
