package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/unifiedms/ums/core/store"
)

// The journal gives back what was written before a clean close, and a
// crash's torn last line is cut off without losing the lines before it.
func TestHistoryReopens(t *testing.T) {
	fsys := store.NewMemFS()
	dir := "/data/notify/history"
	var loaded []Record
	load := func(r Record) { loaded = append(loaded, r) }
	h, err := openHistory(fsys, dir, slog.Default(), load)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.add(Record{ID: fmt.Sprintf("n%d", i), Status: "sent", Attempts: []Attempt{{Channel: "email", Status: "sent"}}})
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	// A torn line, as a crash in the middle of a write leaves it.
	f, err := fsys.OpenFile(filepath.Join(dir, historyFile), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(`{"id":"n3","sta`))
	f.Sync()
	f.Close()
	h, err = openHistory(fsys, dir, slog.Default(), load)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 || loaded[2].ID != "n2" || len(loaded[2].Attempts) != 1 {
		t.Fatalf("loaded %+v", loaded)
	}
	h.add(Record{ID: "n4", Status: "failed"})
	h.close()
	loaded = nil
	h, err = openHistory(fsys, dir, slog.Default(), load)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	if len(loaded) != 4 || loaded[3].ID != "n4" {
		t.Fatalf("after appending behind the cut: %+v", loaded)
	}
}
