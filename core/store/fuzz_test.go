package store

import (
	"path/filepath"
	"testing"
)

// seedSegment returns the bytes of a real segment holding records and a
// release, for the fuzzer to mutate.
func seedSegment(f *testing.F) []byte {
	fsys := NewMemFS()
	l, _, err := OpenLog(fsys, "log", Options{})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 4)
	id := l.Append([]byte("first record"), 2, func(err error) { done <- err })
	l.Append([]byte("second"), 1, func(err error) { done <- err })
	l.Release(id, 1)
	l.Barrier(func(err error) { done <- err })
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	names, err := fsys.ReadDir("log")
	if err != nil || len(names) == 0 {
		f.Fatalf("no segment: %v", err)
	}
	return readFile(f, fsys, filepath.Join("log", names[0]))
}

// FuzzSegment: any segment content opens without a panic, recovery keeps
// allocations bounded by the file, and replay hands out only what decodes.
func FuzzSegment(f *testing.F) {
	seg := seedSegment(f)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append(append([]byte{}, seg...), 0xff, 0xff, 0xff, 0x7f))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := NewMemFS()
		if err := fsys.MkdirAll("log", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fsys, filepath.Join("log", segName(1)), data)
		l, _, err := OpenLog(fsys, "log", Options{})
		if err != nil {
			return // a bad header is refused: fine
		}
		defer l.Close()
		err = l.Replay(func(id uint64, live []int, payload []byte) error {
			if len(payload) > len(data) {
				t.Fatalf("replayed %d bytes from a %d-byte file", len(payload), len(data))
			}
			return nil
		})
		if err != nil {
			t.Logf("replay: %v", err)
		}
	})
}
