package store

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
)

func mustOpenMeta(t testing.TB, fsys FS, dir string) *Meta {
	t.Helper()
	m, err := OpenMetaWith(fsys, dir, MetaOptions{Logger: quiet})
	if err != nil {
		t.Fatalf("OpenMeta: %v", err)
	}
	return m
}

func equalMaps(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func TestMetaPutDeleteReopen(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		m := mustOpenMeta(t, fsys, dir)
		if len(m.All()) != 0 {
			t.Fatal("new map not empty")
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(m.Put("exchange/a", []byte("direct")))
		must(m.Put("queue/b", []byte("durable")))
		must(m.Put("binding/c", nil))
		must(m.Put("exchange/a", []byte("topic")))
		must(m.Delete("queue/b"))
		must(m.Delete("missing"))
		want := map[string][]byte{"exchange/a": []byte("topic"), "binding/c": {}}
		got := m.All()
		if !equalMaps(got, want) {
			t.Fatalf("All: %q", got)
		}
		got["exchange/a"][0] = 'X' // a copy
		if string(m.All()["exchange/a"]) != "topic" {
			t.Fatal("All returned shared memory")
		}
		must(m.Close())
		if err := m.Put("x", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Put after Close: %v", err)
		}

		m = mustOpenMeta(t, fsys, dir)
		defer m.Close()
		if got := m.All(); !equalMaps(got, want) {
			t.Fatalf("after reopen: %q", got)
		}
		if r := m.Report(); r.Keys != 2 || r.Records != 5 || r.TruncatedBytes != 0 {
			t.Fatalf("report: %+v", r)
		}
		if err := m.Put(string(make([]byte, MaxMetaKey+1)), nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("oversized key: %v", err)
		}
	})
}

// Every Put and Delete is durable when it returns: a crash right after
// keeps all of them.
func TestMetaCrash(t *testing.T) {
	mem := NewMemFS()
	m := mustOpenMeta(t, mem, "/defs")
	for i := range 20 {
		if err := m.Put(fmt.Sprint("k", i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i += 3 {
		if err := m.Delete(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := m.All()
	crashed := mem.Crash() // no Close
	m2 := mustOpenMeta(t, crashed, "/defs")
	defer m2.Close()
	if got := m2.All(); !equalMaps(got, want) {
		t.Fatalf("after crash: %q, want %q", got, want)
	}
	m.Close()
}

// Rewriting keeps the file small and loses nothing.
func TestMetaCompaction(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys FS, dir string) {
		m := mustOpenMeta(t, fsys, dir)
		for i := range 10 {
			if err := m.Put(fmt.Sprint("stable", i), payload(i, 50)); err != nil {
				t.Fatal(err)
			}
		}
		val := make([]byte, 200)
		for i := range 3000 {
			val[0] = byte(i)
			if err := m.Put("churn", val); err != nil {
				t.Fatal(err)
			}
		}
		want := m.All()
		size := fileSize(t, fsys, filepath.Join(dir, metaFile))
		if size > 2*metaRewriteMin+int64(len(val))*4 {
			t.Fatalf("meta file is %d bytes after 3000 overwrites", size)
		}
		m.Close()
		names, _ := fsys.ReadDir(dir)
		if !slices.Equal(names, []string{metaFile}) {
			t.Fatalf("files left: %v", names)
		}
		m = mustOpenMeta(t, fsys, dir)
		defer m.Close()
		if got := m.All(); !equalMaps(got, want) {
			t.Fatal("contents changed by compaction")
		}
	})
}

func fileSize(t testing.TB, fsys FS, path string) int64 {
	t.Helper()
	return int64(len(readFile(t, fsys, path)))
}

// Crash at every file system operation of a sequence of Puts that includes
// rewrites: the map is always the state before or after the Put in flight.
func TestMetaCrashEveryStep(t *testing.T) {
	const puts = 60
	val := func(i int) []byte { return payload(i, 300) }
	base := NewMemFS()
	m := mustOpenMeta(t, base, "/d")
	if err := m.Put("other", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	m.Close()
	rewrites := 0
	for step := 1; ; step++ {
		fsys := base.Crash() // a copy of the prepared state
		m := mustOpenMeta(t, fsys, "/d")
		var snap *MemFS
		ops, inFlight := 0, -1
		fsys.hook = func(op, name string) {
			ops++
			if op == "rename" {
				rewrites++
			}
			if ops == step && snap == nil {
				snap = fsys.CrashTorn(uint64(step))
			}
		}
		for i := range puts {
			inFlight = i
			if err := m.Put("x", val(i)); err != nil {
				t.Fatal(err)
			}
			if snap != nil {
				break
			}
		}
		m.Close()
		if snap == nil {
			break // step is past the last operation
		}
		m2 := mustOpenMeta(t, snap, "/d")
		got := m2.All()
		m2.Close()
		if string(got["other"]) != "kept" {
			t.Fatalf("step %d: lost another key", step)
		}
		x, ok := got["x"]
		okPrev := inFlight == 0 && !ok || inFlight > 0 && string(x) == string(val(inFlight-1))
		okNow := string(x) == string(val(inFlight))
		if !okPrev && !okNow {
			t.Fatalf("step %d (put %d in flight): x is neither the old nor the new value", step, inFlight)
		}
	}
	if rewrites == 0 {
		t.Fatal("the sequence never rewrote the file")
	}
}

// A torn last record is cut off and reported.
func TestMetaTornTail(t *testing.T) {
	mem := NewMemFS()
	m := mustOpenMeta(t, mem, "/d")
	m.Put("a", []byte("1"))
	m.Put("b", []byte("2"))
	before := m.All()
	m.Put("c", []byte("three"))
	m.Close()
	path := "/d/" + metaFile
	full := readFile(t, mem, path)
	last := int64(len(full)) - metaPutSize("c", []byte("three"))
	for cut := last + 1; cut < int64(len(full)); cut++ {
		fsys := mem.Crash()
		writeFile(t, fsys, path, full[:cut])
		m := mustOpenMeta(t, fsys, "/d")
		if got := m.All(); !equalMaps(got, before) {
			t.Fatalf("cut %d: %q", cut, got)
		}
		if r := m.Report(); r.TruncatedBytes != cut-last {
			t.Fatalf("cut %d: report %+v", cut, r)
		}
		// Writing after the repair works and survives.
		if err := m.Put("d", []byte("4")); err != nil {
			t.Fatal(err)
		}
		m.Close()
		m = mustOpenMeta(t, fsys, "/d")
		if string(m.All()["d"]) != "4" || m.Report().TruncatedBytes != 0 {
			t.Fatalf("cut %d: after repair: %q %+v", cut, m.All(), m.Report())
		}
		m.Close()
	}
	// A damaged header is an error, not an empty map.
	fsys := mem.Crash()
	b := readFile(t, fsys, path)
	b[0] ^= 0xff
	writeFile(t, fsys, path, b)
	if _, err := OpenMetaWith(fsys, "/d", MetaOptions{Logger: quiet}); err == nil {
		t.Fatal("opened a meta file with a bad header")
	}
}

func TestMetaFailSync(t *testing.T) {
	boom := errors.New("injected")
	mem := NewMemFS()
	m := mustOpenMeta(t, mem, "/d")
	if err := m.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	mem.FailSync(boom)
	if err := m.Put("b", []byte("2")); !errors.Is(err, boom) {
		t.Fatalf("Put with failing fsync: %v", err)
	}
	mem.FailSync(nil)
	if err := m.Put("c", []byte("3")); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Put after a failed fsync: %v", err)
	}
	if err := m.Delete("a"); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Delete after a failed fsync: %v", err)
	}
	if err := m.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}
	m = mustOpenMeta(t, mem.Crash(), "/d")
	defer m.Close()
	if got := m.All(); string(got["a"]) != "1" || got["c"] != nil {
		t.Fatalf("after restart: %q", got)
	}
}
