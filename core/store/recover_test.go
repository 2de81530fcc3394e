package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// writeRecords fills a log with n records of about size bytes and closes it.
func writeRecords(t *testing.T, fsys FS, dir string, o Options, n, size int) []uint64 {
	t.Helper()
	l, _ := mustOpen(t, fsys, dir, o)
	var ids []uint64
	for i := range n {
		ids = append(ids, l.Append(payload(i, size), 1+i%3, nil))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Truncating the last segment at every byte offset of its last record
// loses exactly that record, reports the cut and repairs the file.
func TestTornTail(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		o := Options{SegmentSize: 4 << 10}
		ids := writeRecords(t, fsys, dir, o, 120, 90)
		segs := segFiles(t, fsys, dir)
		if len(segs) < 3 {
			t.Fatalf("want several segments, got %v", segs)
		}
		lastPath := filepath.Join(dir, segs[len(segs)-1])
		recs := scanSegment(t, fsys, lastPath)
		last := recs[len(recs)-1]
		if last.id != ids[len(ids)-1] {
			t.Fatalf("last record in the last segment is %d, want %d", last.id, ids[len(ids)-1])
		}
		orig := readFile(t, fsys, lastPath)
		for cut := last.off; cut < last.off+int64(last.size); cut++ {
			work := fmt.Sprintf("%s-cut%d", dir, cut)
			copyDir(t, fsys, dir, work)
			writeFile(t, fsys, filepath.Join(work, segs[len(segs)-1]), orig[:cut])

			l, rep := mustOpen(t, fsys, work, o)
			if want := cut - last.off; rep.TruncatedBytes != want {
				t.Fatalf("cut at %d: TruncatedBytes %d, want %d", cut, rep.TruncatedBytes, want)
			}
			if len(rep.Corrupt) != 0 {
				t.Fatalf("cut at %d: torn tail reported as corruption: %v", cut, rep.Corrupt)
			}
			got := replayAll(t, l)
			if len(got) != len(ids)-1 || got[len(got)-1].id != ids[len(ids)-2] {
				t.Fatalf("cut at %d: replayed %d records, want all but the last", cut, len(got))
			}
			for i, r := range got {
				if !bytes.Equal(r.data, payload(i, 90)) {
					t.Fatalf("cut at %d: record %d data differs", cut, r.id)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// The file was repaired: a second open finds nothing to cut.
			l, rep = mustOpen(t, fsys, work, o)
			if rep.TruncatedBytes != 0 || rep.LiveRecords != len(ids)-1 {
				t.Fatalf("cut at %d: second open: %+v", cut, rep)
			}
			l.Close()
		}
	})
}

// A flipped bit in the middle of an older segment loses the rest of that
// segment only; other segments' records survive and the report says what
// was lost.
func TestCorruptOlderSegment(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		o := Options{SegmentSize: 4 << 10}
		// Records of 200 bytes: about 17 per segment.
		ids := writeRecords(t, fsys, dir, o, 100, 200)
		segs := segFiles(t, fsys, dir)
		victim := filepath.Join(dir, segs[1])
		recs := scanSegment(t, fsys, victim)
		mid := recs[len(recs)/2]
		b := readFile(t, fsys, victim)
		b[mid.off+int64(mid.size)/2] ^= 0x10
		writeFile(t, fsys, victim, b)

		lost := make(map[uint64]bool)
		for _, r := range recs[len(recs)/2:] {
			lost[r.id] = true
		}
		var logs logCapture
		o.Logger = logs.logger()
		l, rep, err := OpenLog(fsys, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if len(rep.Corrupt) != 1 || !strings.Contains(rep.Corrupt[0], segs[1]) ||
			!strings.Contains(rep.Corrupt[0], fmt.Sprintf("offset %d", mid.off)) {
			t.Fatalf("report: %q", rep.Corrupt)
		}
		if rep.TruncatedBytes != 0 {
			t.Fatalf("older segment damage reported as a torn tail: %+v", rep)
		}
		if !strings.Contains(logs.buf.String(), "level=ERROR") || !strings.Contains(logs.buf.String(), segs[1]) {
			t.Fatalf("damage not logged as an error:\n%s", logs.buf.String())
		}
		got := replayAll(t, l)
		if len(got) != len(ids)-len(lost) {
			t.Fatalf("replayed %d records, want %d (%d lost)", len(got), len(ids)-len(lost), len(lost))
		}
		for _, r := range got {
			if lost[r.id] {
				t.Fatalf("record %d from the lost part of %s replayed", r.id, segs[1])
			}
		}
	})
}

// A segment whose header is damaged is set aside and reported; a segment
// too short for a record (a crash while creating it) is removed quietly; a
// newer format version refuses to open.
func TestSegmentHeaders(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		o := Options{SegmentSize: 4 << 10}
		ids := writeRecords(t, fsys, dir, o, 60, 200)
		segs := segFiles(t, fsys, dir)
		first := filepath.Join(dir, segs[0])
		inFirst := len(scanSegment(t, fsys, first))
		b := readFile(t, fsys, first)
		b[3] ^= 1
		writeFile(t, fsys, first, b)
		// A torn creation after the last segment.
		writeFile(t, fsys, filepath.Join(dir, segName(1000)), make([]byte, 10))

		l, rep := mustOpen(t, fsys, dir, o)
		if len(rep.Corrupt) != 1 || !strings.Contains(rep.Corrupt[0], "bad magic") {
			t.Fatalf("report: %+v", rep)
		}
		if rep.TruncatedBytes != 10 {
			t.Fatalf("torn segment creation: TruncatedBytes %d, want 10", rep.TruncatedBytes)
		}
		if got := replayAll(t, l); len(got) != len(ids)-inFirst {
			t.Fatalf("replayed %d, want %d", len(got), len(ids)-inFirst)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		names, _ := fsys.ReadDir(dir)
		if !strings.Contains(strings.Join(names, " "), segs[0]+".corrupt") {
			t.Fatalf("damaged segment not set aside: %v", names)
		}
		// New segments are numbered after the removed one.
		if s := segFiles(t, fsys, dir); s[len(s)-1] <= segName(1000) {
			t.Fatalf("new segment %s not after 1000", s[len(s)-1])
		}

		// A future format version is an error, and nothing is touched.
		last := filepath.Join(dir, segFiles(t, fsys, dir)[0])
		b = readFile(t, fsys, last)
		le.PutUint32(b[8:12], formatVersion+1)
		le.PutUint32(b[28:32], crcOf(b[:28]))
		writeFile(t, fsys, last, b)
		if _, _, err := OpenLog(fsys, dir, Options{Logger: quiet}); !errors.Is(err, errVersion) {
			t.Fatalf("newer version: %v", err)
		}
	})
}

// A corrupt length never makes recovery allocate what it claims.
func TestCorruptLengthBoundsAllocation(t *testing.T) {
	fsys := NewMemFS()
	o := Options{SegmentSize: 1 << 20}
	writeRecords(t, fsys, "/l", o, 1000, 100)
	writeRecords(t, fsys, "/l", o, 10, 100) // a second segment, so the first is "older"
	segs := segFiles(t, fsys, "/l")
	for _, n := range []uint32{0xFFFFFFF0, maxBody, maxBody + 1, 1 << 29} {
		for _, seg := range []string{segs[0], segs[len(segs)-1]} {
			work := fmt.Sprintf("/w%d%s", n, seg)
			copyDir(t, fsys, "/l", work)
			path := filepath.Join(work, seg)
			recs := scanSegment(t, fsys, path)
			b := readFile(t, fsys, path)
			le.PutUint32(b[recs[len(recs)/2].off:], n)
			writeFile(t, fsys, path, b)

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			l, rep := mustOpen(t, fsys, work, o)
			runtime.ReadMemStats(&after)
			l.Close()
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Fatalf("length %d in %s: recovery allocated %d bytes", n, seg, grew)
			}
			if len(rep.Corrupt) == 0 && rep.TruncatedBytes == 0 {
				t.Fatalf("length %d in %s: not reported", n, seg)
			}
		}
	}
}

// FailSync: every record covered by the failed fsync gets the error, none
// gets nil, and the log stays stopped.
func TestFailSync(t *testing.T) {
	boom := errors.New("injected fsync failure")
	mem := NewMemFS()
	l, _ := mustOpen(t, mem, "/l", Options{SegmentSize: 4 << 10})
	before := appendSync(t, l, []byte("before"), 1)
	mem.FailSync(boom)

	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			var inner sync.WaitGroup
			for i := range each {
				inner.Add(1)
				l.Append(payload(w*each+i, 50), 1, func(err error) {
					errs <- err
					inner.Done()
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("done(nil) after a failed fsync")
		}
		if !errors.Is(err, boom) {
			t.Fatalf("done(%v), want the fsync error", err)
		}
	}
	mem.FailSync(nil) // even when the disk "recovers", the log stays stopped
	ch := make(chan error, 1)
	if id := l.Append([]byte("later"), 1, func(err error) { ch <- err }); id != 0 {
		t.Fatalf("append on a poisoned log got id %d", id)
	}
	if err := wait(t, ch); !errors.Is(err, ErrPoisoned) || !errors.Is(err, boom) {
		t.Fatalf("later append: %v", err)
	}
	if err := barrier(t, l); !errors.Is(err, boom) {
		t.Fatalf("barrier: %v", err)
	}
	if err := l.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}

	l, _ = mustOpen(t, mem.Crash(), "/l", Options{})
	defer l.Close()
	got := replayAll(t, l)
	if len(got) != 1 || got[0].id != before {
		t.Fatalf("after restart: %s", describe(got))
	}
}

// FailWrite behaves like FailSync.
func TestFailWrite(t *testing.T) {
	boom := errors.New("injected write failure")
	mem := NewMemFS()
	l, _ := mustOpen(t, mem, "/l", Options{})
	appendSync(t, l, []byte("before"), 1)
	mem.FailWrite(boom)
	ch := make(chan error, 1)
	l.Append([]byte("x"), 1, func(err error) { ch <- err })
	if err := wait(t, ch); !errors.Is(err, boom) {
		t.Fatalf("done(%v)", err)
	}
	mem.FailWrite(nil)
	l.Append([]byte("y"), 1, func(err error) { ch <- err })
	if err := wait(t, ch); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("after a failed write: %v", err)
	}
	if err := l.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}
}

// A failing fsync of the directory while starting a segment stops the log
// too, and a restart recovers everything acknowledged.
func TestFailSyncOnRotation(t *testing.T) {
	boom := errors.New("injected dir fsync failure")
	mem := NewMemFS()
	l, _ := mustOpen(t, mem, "/l", Options{SegmentSize: 4 << 10})
	var acked []uint64
	mem.hook = func(op, name string) {
		if op == "syncdir" {
			mem.FailSync(boom)
		}
	}
	for i := 0; ; i++ {
		ch := make(chan error, 1)
		id := l.Append(payload(i, 500), 1, func(err error) { ch <- err })
		if err := wait(t, ch); err != nil {
			if !errors.Is(err, boom) {
				t.Fatalf("append %d: %v", i, err)
			}
			break
		}
		acked = append(acked, id)
	}
	l.Close()
	mem.FailSync(nil)
	crashed := mem.Crash()
	l, _ = mustOpen(t, crashed, "/l", Options{})
	defer l.Close()
	if got := replayAll(t, l); len(got) != len(acked) {
		t.Fatalf("recovered %d records, %d were acknowledged", len(got), len(acked))
	}
}

// crcOf is the header checksum, for tests that forge headers.
func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
