package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// segFileSize returns the size of segment seq in dir.
func segFileSize(t testing.TB, fsys FS, dir string, seq uint64) int64 {
	t.Helper()
	f, err := fsys.OpenFile(filepath.Join(dir, segName(seq)), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The active segment is preallocated to SegmentSize; a full segment and
// the last one at Close keep only their records; reopening finds nothing
// torn.
func TestSegmentsPreallocated(t *testing.T) {
	const seg = 64 << 10
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _ := mustOpen(t, fsys, dir, Options{SegmentSize: seg})
		if l.noAllocate {
			t.Skipf("the file system under %s cannot preallocate", dir)
		}
		data := make([]byte, 1000)
		for range 10 {
			l.Append(data, 1, nil)
		}
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		first := l.Stats()
		if n := segFileSize(t, fsys, dir, l.activeSeq); n != seg {
			t.Fatalf("active segment is %d bytes on disk, want %d preallocated", n, seg)
		}
		for range 100 { // past the first segment
			l.Append(data, 1, nil)
		}
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		full := l.mu.seqs[0]
		fullSize := l.mu.segs[full].size
		l.mu.Unlock()
		if full == l.activeSeq || first.Segments != 1 {
			t.Fatalf("no rotation: segments %v, active %d", l.Stats().Segments, l.activeSeq)
		}
		if n := segFileSize(t, fsys, dir, full); n != fullSize || n >= seg {
			t.Fatalf("full segment is %d bytes on disk, its records %d", n, fullSize)
		}
		last, lastSize := l.activeSeq, l.activeSize
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if n := segFileSize(t, fsys, dir, last); n != lastSize {
			t.Fatalf("closed segment is %d bytes on disk, its records %d", n, lastSize)
		}
		l, rep := mustOpen(t, fsys, dir, Options{SegmentSize: seg})
		defer l.Close()
		if rep.LiveRecords != 110 || rep.TruncatedBytes != 0 || len(rep.Corrupt) != 0 {
			t.Fatalf("reopened: %+v", rep)
		}
	})
}

// A crash leaves the zeros after the last record in the segment being
// written, and in a full one whose trim was not yet durable. Recovery
// cuts them off without reporting damage, and keeps every synced record.
func TestCrashLeavesPreallocatedZeros(t *testing.T) {
	const seg = 64 << 10
	mem := NewMemFS()
	l, _ := mustOpen(t, mem, "/l", Options{SegmentSize: seg})
	var want [][]byte
	for i := range 100 {
		want = append(want, payload(i, 1000))
		l.Append(want[i], 1, nil)
		if i%10 == 9 {
			if err := barrier(t, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := l.Stats(); st.Segments < 2 {
		t.Fatalf("no rotation: %+v", st)
	}
	crashed := mem.Crash()
	if n := segFileSize(t, crashed, "/l", 1); n != seg {
		t.Fatalf("the full segment's trim was durable without a sync: %d bytes", n)
	}
	l.Close()

	var logs bytes.Buffer
	o := Options{SegmentSize: seg, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	l2, rep := mustOpen(t, crashed, "/l", o)
	defer l2.Close()
	if rep.TruncatedBytes != 0 || len(rep.Corrupt) != 0 || logs.Len() != 0 {
		t.Fatalf("recovery reported damage: %+v\n%s", rep, logs.String())
	}
	got := replayAll(t, l2)
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if !bytes.Equal(r.data, want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if n := segFileSize(t, crashed, "/l", 1); n >= seg {
		t.Fatalf("recovery left the zeros after the records: %d bytes", n)
	}
}

// A batch torn inside the preallocated space (a prefix of its bytes on
// disk, zeros after) is a torn tail as before: cut off and reported, and
// every record synced before it is kept.
func TestTornWriteIntoPreallocatedSpace(t *testing.T) {
	const seg = 64 << 10
	mem := NewMemFS()
	l, _ := mustOpen(t, mem, "/l", Options{SegmentSize: seg})
	for i := range 5 {
		l.Append(payload(i, 500), 1, nil)
	}
	if err := barrier(t, l); err != nil {
		t.Fatal(err)
	}
	mem.FailSync(errors.New("disk gone"))
	for i := range 5 {
		l.Append(payload(100+i, 500), 1, nil)
	}
	if err := barrier(t, l); err == nil {
		t.Fatal("a batch whose fsync failed was confirmed")
	}
	torn := 0
	for seed := range uint64(32) {
		l2, rep := mustOpen(t, mem.CrashTorn(seed), "/l", Options{SegmentSize: seg})
		got := replayAll(t, l2)
		l2.Close()
		if len(rep.Corrupt) != 0 || len(got) < 5 || len(got) > 10 {
			t.Fatalf("seed %d: %d records, report %+v", seed, len(got), rep)
		}
		for i, r := range got[:5] {
			if !bytes.Equal(r.data, payload(i, 500)) {
				t.Fatalf("seed %d: synced record %d differs", seed, i)
			}
		}
		if rep.TruncatedBytes > 0 {
			torn++
		}
	}
	if torn == 0 {
		t.Fatal("no crash tore the unsynced batch")
	}
	l.Close()
}
