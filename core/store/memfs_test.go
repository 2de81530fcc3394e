package store

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The FS behaviour the store relies on, checked on both implementations.
func TestFSConformance(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := func(n string) string { return filepath.Join(dir, n) }
		if _, err := fsys.OpenFile(p("missing"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("open missing: %v", err)
		}
		f, err := fsys.OpenFile(p("b"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.OpenFile(p("b"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("O_EXCL on existing: %v", err)
		}
		if _, err := f.Write([]byte("hello world")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); n != 5 || string(buf) != "world" || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt: %d %q %v", n, buf, err)
		}
		if n, err := f.ReadAt(buf, 8); n != 3 || err != io.EOF {
			t.Fatalf("ReadAt past the end: %d %v", n, err)
		}
		if err := f.Truncate(5); err != nil {
			t.Fatal(err)
		}
		if sz, _ := f.Size(); sz != 5 {
			t.Fatalf("size after truncate: %d", sz)
		}
		if err := f.Truncate(8); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := readFile(t, fsys, p("b")); string(got) != "hello\x00\x00\x00" {
			t.Fatalf("contents %q", got)
		}
		// O_APPEND writes at the end.
		f, err = fsys.OpenFile(p("b"), os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("!"))
		f.Close()
		if got := readFile(t, fsys, p("b")); string(got) != "hello\x00\x00\x00!" {
			t.Fatalf("after append %q", got)
		}
		writeFile(t, fsys, p("a"), []byte("A"))
		if err := fsys.Rename(p("a"), p("b")); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, fsys, p("b")); string(got) != "A" {
			t.Fatalf("rename did not replace: %q", got)
		}
		writeFile(t, fsys, p("c"), nil)
		names, err := fsys.ReadDir(dir)
		if err != nil || !slices.Equal(names, []string{"b", "c"}) {
			t.Fatalf("ReadDir: %v %v", names, err)
		}
		if err := fsys.Remove(p("c")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove(p("c")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("remove missing: %v", err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			t.Fatal(err)
		}
	})
}

// Crash keeps exactly the synced state.
func TestMemFSCrash(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d", 0o755)
	create := func(name string) File {
		f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	contents := func(fsys *MemFS, name string) (string, bool) {
		f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		if err != nil {
			return "", false
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		return string(b), true
	}

	a := create("/d/a")
	a.Write([]byte("unsynced"))
	if _, ok := contents(m.Crash(), "/d/a"); ok {
		t.Fatal("file survived without SyncDir")
	}
	m.SyncDir("/d")
	if got, ok := contents(m.Crash(), "/d/a"); !ok || got != "" {
		t.Fatalf("entry synced, data not: %q %v", got, ok)
	}
	a.Sync()
	a.Write([]byte(" more"))
	if got, _ := contents(m.Crash(), "/d/a"); got != "unsynced" {
		t.Fatalf("after sync and an unsynced write: %q", got)
	}
	// Torn: a prefix of the unsynced append may survive.
	seen := map[string]bool{}
	for seed := range uint64(64) {
		got, _ := contents(m.CrashTorn(seed), "/d/a")
		seen[got] = true
		if len(got) < len("unsynced") || got != "unsynced more"[:len(got)] {
			t.Fatalf("torn crash gave %q", got)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("torn crashes gave only %v", seen)
	}
	// Truncating and overwriting below the synced size never changes what
	// a crash keeps.
	a.Truncate(2)
	a.Write([]byte("XYZ"))
	if got, _ := contents(m.Crash(), "/d/a"); got != "unsynced" {
		t.Fatalf("after truncate+write: %q", got)
	}
	a.Sync()
	// The handle's position stayed at 13, so the write left a hole of zeros.
	if got, _ := contents(m.Crash(), "/d/a"); got != "un"+string(make([]byte, 11))+"XYZ" {
		t.Fatalf("after sync: %q", got)
	}
	// Rename and remove count only after SyncDir.
	m.Rename("/d/a", "/d/b")
	c := m.Crash()
	if _, ok := contents(c, "/d/b"); ok {
		t.Fatal("rename durable without SyncDir")
	}
	if _, ok := contents(c, "/d/a"); !ok {
		t.Fatal("old name lost without SyncDir")
	}
	m.SyncDir("/d")
	m.Remove("/d/b")
	if _, ok := contents(m.Crash(), "/d/b"); !ok {
		t.Fatal("remove durable without SyncDir")
	}
	m.SyncDir("/d")
	if _, ok := contents(m.Crash(), "/d/b"); ok {
		t.Fatal("removed file survived SyncDir")
	}
	// Open handles keep working after a remove.
	if _, err := a.Write([]byte("?")); err != nil {
		t.Fatal(err)
	}
	// Failure injection.
	boom := errors.New("boom")
	m.FailSync(boom)
	if err := a.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync: %v", err)
	}
	if err := m.SyncDir("/d"); !errors.Is(err, boom) {
		t.Fatalf("SyncDir: %v", err)
	}
	m.FailSync(nil)
	m.FailWrite(boom)
	if _, err := a.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("Write: %v", err)
	}
	m.FailWrite(nil)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Allocate extends a file with zeros that writes fill as appends would:
// the size counts once synced, and a torn crash keeps a prefix of the
// writes with zeros after it.
func TestMemFSAllocate(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d", 0o755)
	f, err := m.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	m.SyncDir("/d")
	f.Write([]byte("head"))
	if err := f.Allocate(16); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Size(); n != 16 {
		t.Fatalf("size after Allocate(16): %d", n)
	}
	read := func(fsys *MemFS) string {
		g, err := fsys.OpenFile("/d/a", os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		b, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(m); got != "head"+string(make([]byte, 12)) {
		t.Fatalf("read after Allocate: %q", got)
	}
	if got := read(m.Crash()); got != "" {
		t.Fatalf("unsynced allocation survived a crash: %q", got)
	}
	f.Sync()
	f.Write([]byte("records"))
	if n, _ := f.Size(); n != 16 {
		t.Fatalf("size after writing inside the allocation: %d", n)
	}
	zeros := string(make([]byte, 12))
	seen := map[string]bool{}
	for seed := range uint64(64) {
		got := read(m.CrashTorn(seed))
		seen[got] = true
		if len(got) != 16 || got[:4] != "head" {
			t.Fatalf("torn crash gave %q", got)
		}
		k := len(strings.TrimRight(got[4:], "\x00"))
		if got[4:4+k] != "records"[:k] || got[4+k:] != zeros[:12-k] {
			t.Fatalf("torn crash gave %q", got)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("torn crashes gave only %d shapes", len(seen))
	}
	if err := f.Truncate(11); err != nil {
		t.Fatal(err)
	}
	if got := read(m); got != "headrecords" {
		t.Fatalf("after trimming: %q", got)
	}
	if got := read(m.Crash()); len(got) != 16 {
		t.Fatalf("an unsynced trim changed the size after a crash: %q", got)
	}
	boom := errors.New("boom")
	m.FailWrite(boom)
	if err := f.Allocate(64); !errors.Is(err, boom) {
		t.Fatalf("Allocate with writes failing: %v", err)
	}
}
