package store

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fsCase is one file system every store test runs against, in the manner of
// nats' testAllStoreAllPermutations: the in-memory one and the real one.
type fsCase struct {
	name string
	// open returns a file system and a directory in it for one test.
	open func(t testing.TB) (FS, string)
	// crashable reports whether the file system is a *MemFS.
	crashable bool
}

var fsCases = []fsCase{
	{name: "mem", crashable: true, open: func(t testing.TB) (FS, string) { return NewMemFS(), "/data/log" }},
	{name: "os", open: func(t testing.TB) (FS, string) { return OS(), filepath.Join(t.TempDir(), "log") }},
}

// forEachFS runs fn once per file system in fsCases.
func forEachFS(t *testing.T, fn func(t *testing.T, fsys FS, dir string)) {
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			fsys, dir := c.open(t)
			fn(t, fsys, dir)
		})
	}
}

// quiet is a logger that drops everything below error level; tests that
// expect damage use capture instead.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// logCapture is a logger that records lines.
type logCapture struct {
	buf bytes.Buffer
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mustOpen opens a log or fails the test.
func mustOpen(t testing.TB, fsys FS, dir string, o Options) (*Log, RecoveryReport) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	l, rep, err := OpenLog(fsys, dir, o)
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	return l, rep
}

// replayed is one record seen by Replay.
type replayed struct {
	id   uint64
	live []int
	data []byte
}

// replayAll returns every live record.
func replayAll(t testing.TB, l *Log) []replayed {
	t.Helper()
	var out []replayed
	err := l.Replay(func(id uint64, live []int, data []byte) error {
		out = append(out, replayed{id, slices.Clone(live), bytes.Clone(data)})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return out
}

// appendSync appends a record and waits for its done.
func appendSync(t testing.TB, l *Log, data []byte, parts int) uint64 {
	t.Helper()
	ch := make(chan error, 1)
	id := l.Append(data, parts, func(err error) { ch <- err })
	if err := wait(t, ch); err != nil {
		t.Fatalf("append: %v", err)
	}
	return id
}

// barrier waits for a Barrier and returns its error.
func barrier(t testing.TB, l *Log) error {
	t.Helper()
	ch := make(chan error, 1)
	l.Barrier(func(err error) { ch <- err })
	return wait(t, ch)
}

// settle waits until reclaiming has nothing left to do: each Barrier's
// batch runs after the previous batch's reclaim pass, and compaction needs
// a batch of its own. Draining must read zero twice in a row: a pass that
// has just picked a draining segment for compaction reports zero while the
// copies it queued are not yet written.
func settle(t testing.TB, l *Log) LogStats {
	t.Helper()
	prev := l.Stats()
	for range 20 {
		if err := barrier(t, l); err != nil {
			t.Fatalf("barrier: %v", err)
		}
		if err := barrier(t, l); err != nil {
			t.Fatalf("barrier: %v", err)
		}
		st := l.Stats()
		if st.Draining == 0 && prev.Draining == 0 && st.Segments == prev.Segments && st.DiskBytes == prev.DiskBytes && st.Compactions == prev.Compactions {
			checkInvariants(t, l)
			return st
		}
		prev = st
	}
	return prev
}

// wait receives from ch with a deadline.
func wait(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a callback")
		return nil
	}
}

// payload returns deterministic test data for n.
func payload(n, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(n*31 + i*7)
	}
	return b
}

// segFiles returns the segment file names in dir, sorted.
func segFiles(t testing.TB, fsys FS, dir string) []string {
	t.Helper()
	names, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".seg") {
			out = append(out, n)
		}
	}
	return out
}

// readFile returns a file's contents.
func readFile(t testing.TB, fsys FS, path string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile replaces a file's contents and syncs it.
func writeFile(t testing.TB, fsys FS, path string, data []byte) {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies every file of src into dst (created) on the same FS.
func copyDir(t testing.TB, fsys FS, src, dst string) {
	t.Helper()
	if err := fsys.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := fsys.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		writeFile(t, fsys, filepath.Join(dst, n), readFile(t, fsys, filepath.Join(src, n)))
	}
	if err := fsys.SyncDir(dst); err != nil {
		t.Fatal(err)
	}
}

// scanSegment lists the records and tombstones of a segment file.
func scanSegment(t testing.TB, fsys FS, path string) []entry {
	t.Helper()
	b := readFile(t, fsys, path)
	var sc scanner
	sc.reset(bytes.NewReader(b), int64(len(b)), headerSize)
	var out []entry
	for {
		var e entry
		err := sc.next(&e)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("scan %s: %v", path, err)
		}
		e.mask = slices.Clone(e.mask)
		e.payload = slices.Clone(e.payload)
		out = append(out, e)
	}
}

// describe formats a replay result for failure messages.
func describe(rs []replayed) string {
	var sb strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&sb, "%d%v ", r.id, r.live)
	}
	return sb.String()
}

// checkInvariants recomputes the log's bookkeeping from its index and
// compares it with the running counts.
func checkInvariants(t testing.TB, l *Log) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	type counts struct {
		live  int
		bytes int64
	}
	want := make(map[uint64]*counts)
	liveRecords, liveBytes := 0, int64(0)
	for id, r := range l.mu.index.all() {
		if r.nlive == 0 {
			continue
		}
		liveRecords++
		liveBytes += int64(r.size)
		if r.seg == 0 {
			continue // not sealed yet
		}
		if l.mu.segs[uint64(r.seg)] == nil {
			t.Fatalf("live record %d in deleted segment %d", id, r.seg)
		}
		c := want[uint64(r.seg)]
		if c == nil {
			c = &counts{}
			want[uint64(r.seg)] = c
		}
		c.live++
		c.bytes += int64(r.size)
		n := 0
		if r.parts <= 64 {
			n = bits.OnesCount64(r.live)
		} else {
			for _, w := range l.mu.big[id] {
				n += bits.OnesCount64(w)
			}
		}
		if n != int(r.nlive) {
			t.Fatalf("record %d: nlive %d, mask has %d", id, r.nlive, n)
		}
	}
	if liveRecords != l.mu.liveRecords || liveBytes != l.mu.liveBytes {
		t.Fatalf("totals: %d records %d bytes counted, %d %d recomputed",
			l.mu.liveRecords, l.mu.liveBytes, liveRecords, liveBytes)
	}
	if len(l.mu.seqs) != len(l.mu.segs) {
		t.Fatalf("segment list %v, table of %d", l.mu.seqs, len(l.mu.segs))
	}
	for _, seq := range l.mu.seqs {
		s := l.mu.segs[seq]
		c := want[seq]
		if c == nil {
			c = &counts{}
		}
		if s.live != c.live || s.liveBytes != c.bytes {
			t.Fatalf("segment %d: live %d/%d bytes counted, %d/%d recomputed", seq, s.live, s.liveBytes, c.live, c.bytes)
		}
		need := 0
		for target, n := range s.deps {
			if l.mu.segs[target] == nil {
				t.Fatalf("segment %d depends on deleted segment %d", seq, target)
			}
			if l.mu.segs[target].dependents[seq] != n {
				t.Fatalf("segment %d: %d tombstones into %d, reverse index says %d", seq, n, target, l.mu.segs[target].dependents[seq])
			}
			need += n
		}
		if need != s.needTombs {
			t.Fatalf("segment %d: needTombs %d, deps sum %d", seq, s.needTombs, need)
		}
	}
}
