package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/jsonenc"
	"github.com/unifiedms/ums/notify"
)

// The history journal keeps what a notification became (sent, delivered,
// failed, expired, dead-lettered) with its attempts, so that
// GET /api/v1/notifications/{id} and a deduplicated submission know it
// after a restart. It is a log of JSON lines written through a buffer
// flushed every historyFlush and fsynced at close: a crash loses at most
// the last moments of history, never a notification (those live in the
// queues). Two files bound it: when the current one passes historyMax
// bytes it becomes the old one, replacing the previous old one.
const (
	historyFile  = "history.jsonl"
	historyOld   = "history.old.jsonl"
	historyMax   = 64 << 20
	historyFlush = 200 * time.Millisecond
)

type history struct {
	fs  store.FS
	dir string
	log *slog.Logger

	mu   sync.Mutex
	f    store.File
	w    *bufio.Writer
	size int64
	err  error // the first write error: journaling stops, delivery goes on

	stop chan struct{}
	done chan struct{}
}

// finalStatus reports whether status ends a notification's delivery (or a
// channel's part of it) and goes to the journal.
func finalStatus(status string) bool {
	switch status {
	case notify.StatusSent, notify.StatusDelivered, notify.StatusFailed, notify.StatusExpired, notify.StatusDeadLettered:
		return true
	}
	return false
}

// openHistory reads the journal (old file first) into load, in order, and
// opens it for appending. A torn last line is cut off.
func openHistory(fsys store.FS, dir string, log *slog.Logger, load func(Record)) (*history, error) {
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	h := &history{fs: fsys, dir: dir, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := h.read(historyOld, load); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	good, err := h.read(historyFile, load)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := fsys.OpenFile(filepath.Join(dir, historyFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if size, err := f.Size(); err == nil && size > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, err
		}
	}
	f.Close()
	if f, err = fsys.OpenFile(filepath.Join(dir, historyFile), os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, err
	}
	h.f, h.w, h.size = f, bufio.NewWriterSize(f, 64<<10), good
	go h.flusher()
	return h, nil
}

// read loads the records of one file and returns the length of its whole
// lines.
func (h *history) read(name string, load func(Record)) (int64, error) {
	f, err := h.fs.OpenFile(filepath.Join(h.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	var good int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // torn last line
		}
		var r Record
		if json.Unmarshal(data[:i], &r) == nil && r.ID != "" {
			load(r)
		}
		good += int64(i + 1)
		data = data[i+1:]
	}
	return good, nil
}

// add journals r.
func (h *history) add(r Record) {
	sp := scratchBufs.Get().(*[]byte)
	line, ok := appendRecord((*sp)[:0], &r)
	defer putScratch(sp, line)
	if !ok {
		var err error
		if line, err = json.Marshal(r); err != nil {
			return // a time JSON cannot hold: not journaled, as before
		}
	}
	line = append(line, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil || h.w == nil {
		return
	}
	if _, err := h.w.Write(line); err != nil {
		h.fail(err)
		return
	}
	h.size += int64(len(line))
	if h.size > historyMax {
		h.rotateLocked()
	}
}

func (h *history) fail(err error) {
	h.err = err
	h.log.Error("notification history not written; delivery goes on, history after a restart will be incomplete", "err", err)
}

// rotateLocked makes the current file the old one and starts a new one.
func (h *history) rotateLocked() {
	if err := h.w.Flush(); err != nil {
		h.fail(err)
		return
	}
	h.f.Close()
	cur, old := filepath.Join(h.dir, historyFile), filepath.Join(h.dir, historyOld)
	if err := h.fs.Rename(cur, old); err != nil {
		h.fail(err)
		return
	}
	f, err := h.fs.OpenFile(cur, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		h.fail(err)
		return
	}
	h.f, h.size = f, 0
	h.w.Reset(f)
}

func (h *history) flusher() {
	defer close(h.done)
	t := time.NewTicker(historyFlush)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.mu.Lock()
			if h.err == nil && h.w.Buffered() > 0 {
				if err := h.w.Flush(); err != nil {
					h.fail(err)
				}
			}
			h.mu.Unlock()
		}
	}
}

// close flushes, fsyncs and closes the journal.
func (h *history) close() error {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.err
	if err == nil {
		if err = h.w.Flush(); err == nil {
			err = h.f.Sync()
		}
	}
	if cerr := h.f.Close(); err == nil {
		err = cerr
	}
	h.w = nil
	return err
}

// appendRecord appends r as json.Marshal writes it (a record is journaled
// at the end of every notification). It reports false for a time JSON
// cannot hold.
func appendRecord(b []byte, r *Record) ([]byte, bool) {
	ok := true
	t := func(b []byte, at time.Time) []byte {
		b, good := jsonenc.Time(b, at)
		ok = ok && good
		return b
	}
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, r.ID)
	b = append(b, `,"status":`...)
	b = jsonenc.String(b, r.Status)
	b = append(b, `,"channel":`...)
	b = jsonenc.String(b, r.Channel)
	b = append(b, `,"channels":`...)
	b = jsonenc.Strings(b, r.Channels)
	b = append(b, `,"class":`...)
	b = jsonenc.String(b, r.Class)
	b = append(b, `,"priority":`...)
	b = jsonenc.Int(b, r.Priority)
	if r.Tenant != "" {
		b = append(b, `,"tenant":`...)
		b = jsonenc.String(b, r.Tenant)
	}
	if len(r.Tags) > 0 {
		b = append(b, `,"tags":`...)
		b = jsonenc.Strings(b, r.Tags)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.String(b, r.Error)
	}
	b = append(b, `,"created_at":`...)
	b = t(b, r.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = t(b, r.UpdatedAt)
	b = append(b, `,"attempts":`...)
	if r.Attempts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Attempts {
			a := &r.Attempts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"channel":`...)
			b = jsonenc.String(b, a.Channel)
			b = append(b, `,"attempt":`...)
			b = jsonenc.Int(b, a.Attempt)
			b = append(b, `,"at":`...)
			b = t(b, a.At)
			b = append(b, `,"status":`...)
			b = jsonenc.String(b, a.Status)
			for _, f := range [...]struct{ key, v string }{{`,"provider":`, a.Provider},
				{`,"provider_id":`, a.ProviderID}, {`,"answer":`, a.Answer}} {
				if f.v != "" {
					b = append(b, f.key...)
					b = jsonenc.String(b, f.v)
				}
			}
			if a.Segments != 0 {
				b = append(b, `,"segments":`...)
				b = jsonenc.Int(b, a.Segments)
			}
			if a.Error != "" {
				b = append(b, `,"error":`...)
				b = jsonenc.String(b, a.Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"vhost":`...)
	b = jsonenc.String(b, r.Vhost)
	return append(b, '}'), ok
}
