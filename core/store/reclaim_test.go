package store

import (
	"bytes"
	"slices"
	"testing"
)

// After appending many segments' worth of records and releasing them all,
// disk use returns to about one segment, even though long-lived records
// sit in the first segment and in the middle: compaction moves them.
func TestReclaimReleaseEverything(t *testing.T) {
	const seg = 1 << 20
	total := 64 << 20
	if testing.Short() {
		total = 16 << 20
		t.Logf("-short: %d MiB of records instead of 64", total>>20)
	}
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		o := Options{SegmentSize: seg}
		l, _ := mustOpen(t, fsys, dir, o)
		data := make([]byte, 1000)
		long := map[uint64][]byte{}
		longID := func(i int) {
			d := payload(i, 3000)
			long[l.Append(d, 3, nil)] = d
		}
		longID(-1) // in the first segment
		var ids []uint64
		for i := 0; len(ids)*len(data) < total; i++ {
			ids = append(ids, l.Append(data, 1+i%3, nil))
			if i == 30000 {
				longID(i) // in the middle
			}
		}
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		peak := l.Stats()
		if peak.DiskBytes < int64(total) || peak.Segments < total/seg {
			t.Fatalf("before releasing: %+v", peak)
		}
		for i, id := range ids {
			for p := range 1 + i%3 {
				l.Release(id, p)
			}
		}
		for id := range long {
			l.Release(id, 1)
		}
		st := settle(t, l)
		t.Logf("peak %+v; after releasing %+v", peak, st)
		if st.Segments > 2 || st.DiskBytes > 2*seg {
			t.Fatalf("disk use after releasing everything: %+v", st)
		}
		if st.Compactions == 0 || st.LiveRecords != len(long) {
			t.Fatalf("long-lived records were not moved: %+v", st)
		}
		check := func(l *Log) {
			t.Helper()
			got := replayAll(t, l)
			if len(got) != len(long) {
				t.Fatalf("replayed %s", describe(got))
			}
			for i, r := range got {
				if i > 0 && r.id <= got[i-1].id {
					t.Fatalf("replay out of id order: %s", describe(got))
				}
				if !slices.Equal(r.live, []int{0, 2}) || !bytes.Equal(r.data, long[r.id]) {
					t.Fatalf("record %d: live %v, data ok %v", r.id, r.live, bytes.Equal(r.data, long[r.id]))
				}
			}
		}
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, rep := mustOpen(t, fsys, dir, o)
		defer l.Close()
		if rep.LiveRecords != len(long) || len(rep.Corrupt) != 0 {
			t.Fatalf("reopen: %+v", rep)
		}
		check(l)
		if st := settle(t, l); st.DiskBytes > 2*seg {
			t.Fatalf("after reopen: %+v", st)
		}
	})
}

// A queue with a backlog that drains slowly while other traffic churns
// spreads tombstones for the backlog's segment over many segments. Those
// segments are compacted (their few tombstones copied forward), so disk use
// stays bounded instead of growing with the churn.
func TestReclaimScatteredTombstones(t *testing.T) {
	const seg = 256 << 10
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _ := mustOpen(t, fsys, dir, Options{SegmentSize: seg})
		defer l.Close()
		data := make([]byte, 500)
		var backlog []uint64
		for range 1000 { // about 2 segments
			backlog = append(backlog, l.Append(data, 1, nil))
		}
		var maxDisk int64
		for i := range 40000 { // about 80 segments of churn
			id := l.Append(data, 1, nil)
			l.Release(id, 0)
			if i%100 == 0 && len(backlog) > 0 {
				l.Release(backlog[0], 0)
				backlog = backlog[1:]
			}
			if i%2000 == 0 {
				if err := barrier(t, l); err != nil {
					t.Fatal(err)
				}
				maxDisk = max(maxDisk, l.Stats().DiskBytes)
			}
		}
		st := settle(t, l)
		t.Logf("max disk %d bytes; at the end %+v", maxDisk, st)
		// Live backlog (< 2 segments), plus what the last batches wrote before
		// reclaiming caught up (compaction lags a batch or two); without
		// compacting the tombstones forward this grows to about 80 segments.
		if maxDisk > 16*seg || st.DiskBytes > 4*seg {
			t.Fatalf("disk use not bounded: max %d, end %+v", maxDisk, st)
		}
		if st.LiveRecords != len(backlog) {
			t.Fatalf("live records %d, backlog %d", st.LiveRecords, len(backlog))
		}
	})
}

// Replay sees moved records in id order with the parts that were live when
// they were copied, minus later releases.
func TestCompactionKeepsPartsAndOrder(t *testing.T) {
	mem := NewMemFS()
	o := Options{SegmentSize: 8 << 10}
	l, _ := mustOpen(t, mem, "/l", o)
	type rec struct {
		id   uint64
		live []int
	}
	var keep []rec
	for i := range 400 {
		parts := []int{3, 5, 70}[i%3]
		id := l.Append(payload(i, 100), parts, nil)
		if i%40 == 0 {
			// Keep it, with part 1 released before compaction.
			l.Release(id, 1)
			var live []int
			for p := range parts {
				if p != 1 {
					live = append(live, p)
				}
			}
			keep = append(keep, rec{id, live})
			continue
		}
		for p := range parts {
			l.Release(id, p)
		}
	}
	if st := settle(t, l); st.Compactions == 0 {
		t.Fatalf("nothing compacted: %+v", st)
	}
	// Release part 0 after the move.
	for i := range keep {
		l.Release(keep[i].id, 0)
		keep[i].live = keep[i].live[1:]
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ = mustOpen(t, mem.Crash(), "/l", o)
	defer l.Close()
	got := replayAll(t, l)
	if len(got) != len(keep) {
		t.Fatalf("replayed %s", describe(got))
	}
	for i, r := range got {
		if r.id != keep[i].id || !slices.Equal(r.live, keep[i].live) {
			t.Fatalf("record %d: got %d %v, want %d %v", i, r.id, r.live, keep[i].id, keep[i].live)
		}
	}
}

// Records released in the order they were written (a queue drained in
// order, scheduled messages falling due) free their segments whole: a
// segment being drained is not compacted on the way, which would copy its
// remaining records forward for nothing. A segment that stops draining
// below the threshold is compacted as before.
func TestReclaimLeavesDrainingSegments(t *testing.T) {
	const seg = 64 << 10
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		l, _ := mustOpen(t, fsys, dir, Options{SegmentSize: seg})
		defer l.Close()
		data := make([]byte, 200)
		var ids []uint64
		for range 2000 { // about 7 segments
			ids = append(ids, l.Append(data, 1, nil))
		}
		if err := barrier(t, l); err != nil {
			t.Fatal(err)
		}
		// Drain the first 1,700 in order, 10 per batch: every reclaim
		// pass sees the oldest segment lose records.
		for i := 0; i < 1700; i += 10 {
			l.ReleaseAll(ids[i:i+10], 0)
			if err := barrier(t, l); err != nil {
				t.Fatal(err)
			}
			if c := l.Stats().Compactions; c != 0 {
				t.Fatalf("after releasing %d records in order: %d segments compacted, want none", i+10, c)
			}
		}
		// The drain stops in the middle of a segment below half live:
		// once it has been quiet, that segment is compacted.
		st := settle(t, l)
		if st.Compactions == 0 || st.Draining != 0 {
			t.Fatalf("after the drain stopped: %+v, want a compaction and nothing draining", st)
		}
		if st.LiveRecords != 300 {
			t.Fatalf("live records %d, want 300", st.LiveRecords)
		}
	})
}
