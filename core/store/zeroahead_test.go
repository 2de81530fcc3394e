package store

import (
	"os"
	"sync"
	"testing"
)

// zeroWrite is one WriteAt of zeros seen by zeroRecorder.
type zeroWrite struct{ off, n int64 }

// zeroRecorder wraps a file system and records the zeros written with
// WriteAt, and the order of writes and syncs.
type zeroRecorder struct {
	FS
	mu     sync.Mutex
	zeros  []zeroWrite
	events []string // "zeros", "write", "sync"
}

type zeroRecFile struct {
	File
	r *zeroRecorder
}

func (r *zeroRecorder) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := r.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return zeroRecFile{f, r}, nil
}

func (r *zeroRecorder) event(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (f zeroRecFile) WriteAt(p []byte, off int64) (int, error) {
	if allZero(p) {
		f.r.mu.Lock()
		f.r.zeros = append(f.r.zeros, zeroWrite{off, int64(len(p))})
		f.r.events = append(f.r.events, "zeros")
		f.r.mu.Unlock()
	} else {
		f.r.event("write")
	}
	return f.File.WriteAt(p, off)
}

func (f zeroRecFile) Write(p []byte) (int, error) {
	f.r.event("write")
	return f.File.Write(p)
}

func (f zeroRecFile) Sync() error {
	f.r.event("sync")
	return f.File.Sync()
}

// Small batches find the blocks they go into already written: the zeros
// ahead of the records are written a chunk at a time, with the batch that
// finds less than zeroLow of them left and before its fsync, each chunk
// right after the last, never past the segment's end. A large batch does
// not wait for zeros.
func TestZeroAheadOfSmallBatches(t *testing.T) {
	const seg = 3<<20 + 512<<10 // three whole chunks and a part
	rec := &zeroRecorder{FS: NewMemFS()}
	l, _ := mustOpen(t, rec, "/l", Options{SegmentSize: seg})
	defer l.Close()
	if !l.allocated {
		t.Fatal("MemFS segment not preallocated")
	}
	// Batches of one 2,000-byte record each, as clients waiting for each
	// receipt make them, until the segment is nearly full.
	for i := 0; l.activeSize < seg-16<<10; i++ {
		rec.mu.Lock()
		rec.events = rec.events[:0]
		rec.mu.Unlock()
		appendSync(t, l, payload(i, 2000), 1)
		// The flusher is idle here: appendSync waited for the callback.
		if ahead := l.zeroed - l.activeSize; ahead < zeroLow && l.zeroed < seg {
			t.Fatalf("after batch %d only %d written bytes ahead of the records (at %d)", i, ahead, l.activeSize)
		}
		rec.mu.Lock()
		ev := append([]string(nil), rec.events...)
		rec.mu.Unlock()
		for j, e := range ev {
			if e == "zeros" && (j == 0 || ev[j-1] != "write" || j+1 == len(ev) || ev[j+1] != "sync") {
				t.Fatalf("batch %d: zeros not written between the batch's write and its fsync: %v", i, ev)
			}
		}
	}
	rec.mu.Lock()
	zeros := append([]zeroWrite(nil), rec.zeros...)
	rec.mu.Unlock()
	if len(zeros) != 4 {
		t.Fatalf("zeros written %d times for a %d-byte segment, want 4: %v", len(zeros), seg, zeros)
	}
	for i, z := range zeros {
		if i > 0 && z.off != zeros[i-1].off+zeros[i-1].n {
			t.Fatalf("zero chunk %d at %d, not right after the last (%v)", i, z.off, zeros)
		}
		if z.n > zeroChunk || z.off+z.n > seg {
			t.Fatalf("zero chunk %v: larger than a chunk or past the segment's end", z)
		}
	}
	if last := zeros[len(zeros)-1]; last.off+last.n != seg {
		t.Fatalf("zeros end at %d, not at the segment's end %d", last.off+last.n, seg)
	}

	// A new segment, then one large batch: no zeros with it.
	l2, _ := mustOpen(t, &zeroRecorder{FS: NewMemFS()}, "/l2", Options{SegmentSize: seg})
	defer l2.Close()
	rec2 := l2.fs.(*zeroRecorder)
	appendSync(t, l2, payload(1, zeroBigBatch), 1)
	rec2.mu.Lock()
	n := len(rec2.zeros)
	rec2.mu.Unlock()
	if n != 0 || l2.zeroed != headerSize {
		t.Fatalf("a %d-byte batch waited for zeros: %d writes, written up to %d", zeroBigBatch, n, l2.zeroed)
	}
	// The small batch after it writes zeros from the end of its records.
	appendSync(t, l2, payload(2, 100), 1)
	rec2.mu.Lock()
	z := append([]zeroWrite(nil), rec2.zeros...)
	rec2.mu.Unlock()
	if len(z) != 1 || z[0].off != l2.activeSize {
		t.Fatalf("after a large batch, zeros %v, want one chunk from the records' end %d", z, l2.activeSize)
	}
}
