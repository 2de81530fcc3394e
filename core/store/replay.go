package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Replay calls fn once per live record, in append order (ascending id),
// with the indexes of its parts not yet released, ascending. live and data
// are only valid during the call. Call it after OpenLog and before the
// first Append; fn may call Release. Replay stops at the first error of fn
// and returns it. Segments are neither deleted nor compacted while Replay
// runs.
func (l *Log) Replay(fn func(id uint64, live []int, data []byte) error) error {
	l.reclaimMu.Lock()
	defer l.reclaimMu.Unlock()

	l.mu.Lock()
	ids := make([]uint64, 0, len(l.mu.index))
	for id, r := range l.mu.index {
		if r.nlive > 0 && r.seg != 0 {
			ids = append(ids, id)
		}
	}
	l.mu.Unlock()
	slices.Sort(ids)

	rd := segReader{fs: l.fs, dir: l.dir, files: make(map[uint64]File)}
	defer rd.close()
	var parts []int
	for _, id := range ids {
		l.mu.Lock()
		r, ok := l.mu.index[id]
		if !ok || r.nlive == 0 {
			l.mu.Unlock()
			continue // released by fn meanwhile
		}
		parts = l.livePartsLocked(id, &r, parts[:0])
		l.mu.Unlock()
		e, err := rd.read(r.seg, r.off, int(r.size))
		if err == nil && e.id != id {
			err = fmt.Errorf("found record %d at its offset", e.id)
		}
		if err != nil {
			return fmt.Errorf("store: replay record %d (segment %s, offset %d): %w", id, segName(r.seg), r.off, err)
		}
		if err := fn(id, parts, e.payload); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.mu.dirty = true // reclaiming was held off; let the flusher look again
	l.mu.Unlock()
	signal(l.kick)
	return nil
}

// replayWindow is the read size of each of segReader's windows.
const replayWindow = 256 << 10

// segReader reads records at known offsets. Records mostly come in file
// order, so it keeps a few read windows (least recently used is replaced).
type segReader struct {
	fs      FS
	dir     string
	files   map[uint64]File
	wins    [4]readWindow
	tick    uint64
	scratch []byte
	e       entry
}

// readWindow is a buffered range of one segment.
type readWindow struct {
	seq  uint64
	off  int64
	n    int
	buf  []byte
	used uint64
}

// read returns the record of size bytes at off in segment seq, after
// checking its frame and checksum. The result is valid until the next call.
func (rd *segReader) read(seq uint64, off int64, size int) (*entry, error) {
	b, err := rd.bytes(seq, off, size)
	if err != nil {
		return nil, err
	}
	if n := int(le.Uint32(b[0:4])); n+frameSize != size {
		return nil, errors.New("record length changed on disk")
	}
	if crc32.Checksum(b[frameSize:], castagnoli) != le.Uint32(b[4:8]) {
		return nil, errors.New("checksum mismatch")
	}
	if reason := decodeBody(b[frameSize:], &rd.e); reason != "" {
		return nil, errors.New(reason)
	}
	return &rd.e, nil
}

// bytes returns the n bytes at off in segment seq.
func (rd *segReader) bytes(seq uint64, off int64, n int) ([]byte, error) {
	rd.tick++
	lru := &rd.wins[0]
	for i := range rd.wins {
		w := &rd.wins[i]
		if w.seq == seq && off >= w.off && off+int64(n) <= w.off+int64(w.n) {
			w.used = rd.tick
			i := int(off - w.off)
			return w.buf[i : i+n], nil
		}
		if w.used < lru.used {
			lru = w
		}
	}
	f, err := rd.file(seq)
	if err != nil {
		return nil, err
	}
	if n > replayWindow/2 {
		if cap(rd.scratch) < n {
			rd.scratch = make([]byte, n)
		}
		b := rd.scratch[:n]
		if got, err := f.ReadAt(b, off); got < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	if lru.buf == nil {
		lru.buf = make([]byte, replayWindow)
	}
	got, err := f.ReadAt(lru.buf, off)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		lru.n = 0
		return nil, err
	}
	lru.seq, lru.off, lru.n, lru.used = seq, off, got, rd.tick
	return lru.buf[:n], nil
}

// file returns an open handle of segment seq.
func (rd *segReader) file(seq uint64) (File, error) {
	if f, ok := rd.files[seq]; ok {
		return f, nil
	}
	f, err := rd.fs.OpenFile(filepath.Join(rd.dir, segName(seq)), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	rd.files[seq] = f
	return f, nil
}

// close closes every handle.
func (rd *segReader) close() {
	for _, f := range rd.files {
		f.Close()
	}
}
