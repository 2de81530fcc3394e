package pipeline

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// A journal line is what json.Marshal writes.
func TestAppendRecordIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 5, time.UTC)
	for _, r := range []Record{
		{},
		{ID: "n1", Status: "sent", Channel: "webhook", Channels: []string{"webhook"}, Class: "transactional",
			Priority: 5, CreatedAt: at, UpdatedAt: at, Attempts: []Attempt{}, Vhost: "/"},
		{ID: "n2", Status: "failed", Channel: "email", Channels: []string{"webhook", "email"}, Class: "advertising",
			Priority: 9, Tenant: "acme <&>", Tags: []string{"a", "\u2028"}, Error: "550 \"no\"\n", CreatedAt: at,
			UpdatedAt: at.Add(time.Second), Vhost: "v", Attempts: []Attempt{
				{Channel: "webhook", Attempt: 1, At: at, Status: "failed", Error: "410 gone"},
				{Channel: "email", Attempt: 1, At: at, Status: "sent", Provider: "smtp", ProviderID: "id\xff",
					Answer: "250 ok", Segments: 2},
			}},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := appendRecord(nil, &r); !ok || string(got) != string(want) {
			t.Errorf("appendRecord = %s, %v\njson.Marshal  %s", got, ok, want)
		}
	}
	if _, ok := appendRecord(nil, &Record{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); ok {
		t.Error("a year JSON cannot hold was taken")
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 5, time.UTC)
	r := Record{ID: "01hzy3k9x2m4n6p8q0r2s4t6v8", Status: "sent", Channel: "webhook", Channels: []string{"webhook"},
		Class: "transactional", Priority: 5, CreatedAt: at, UpdatedAt: at, Vhost: "/", Attempts: []Attempt{
			{Channel: "webhook", Attempt: 1, At: at, Status: "sent", Answer: "200 OK"}}}
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		appendRecord(buf[:0], &r)
	}
}
