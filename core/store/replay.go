package store

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
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

	// Snapshot the live records: iterating the map walks memory in order,
	// where a lookup per id would miss the cache every time. Masks of more
	// than 64 parts are copied into one arena.
	l.mu.Lock()
	items := make([]replayItem, 0, l.mu.index.len())
	var arena []uint64
	for id, r := range l.mu.index.all() {
		if r.nlive == 0 || r.seg == 0 {
			continue
		}
		it := replayItem{id: id, seg: uint64(r.seg), off: r.off, size: r.size, parts: r.parts, live: r.live, big: -1}
		if r.parts > 64 {
			it.big = int32(len(arena))
			arena = append(arena, l.mu.big[id]...)
		}
		items = append(items, it)
	}
	gen := l.mu.releases
	l.mu.Unlock()
	items = sortByID(items)

	rd := segReader{fs: l.fs, dir: l.dir, files: make(map[uint64]File)}
	defer rd.close()
	var parts []int
	for i := range items {
		it := &items[i]
		parts = parts[:0]
		if l.releaseGen() != gen {
			// fn released parts since the snapshot: ask the index.
			l.mu.Lock()
			if r, ok := l.mu.index.get(it.id); ok && r.nlive > 0 {
				parts = l.livePartsLocked(it.id, &r, parts)
			}
			l.mu.Unlock()
			if len(parts) == 0 {
				continue // released by fn meanwhile
			}
		} else if it.big < 0 {
			parts = appendBits(parts, it.live, 0)
		} else {
			words := arena[it.big : int(it.big)+(int(it.parts)+63)/64]
			for w, m := range words {
				parts = appendBits(parts, m, w*64)
			}
		}
		e, err := rd.read(it.seg, it.off, int(it.size))
		if err == nil && e.id != it.id {
			err = fmt.Errorf("found record %d at its offset", e.id)
		}
		if err != nil {
			return fmt.Errorf("store: replay record %d (segment %s, offset %d): %w", it.id, segName(it.seg), it.off, err)
		}
		if e.parts != it.parts {
			return fmt.Errorf("store: replay record %d: parts count changed on disk", it.id)
		}
		if err := fn(it.id, parts, e.payload); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.mu.dirty = true // reclaiming was held off; let the flusher look again
	l.mu.Unlock()
	signal(l.kick)
	return nil
}

// replayItem is a live record as Replay found it in the index.
type replayItem struct {
	id    uint64
	seg   uint64
	off   int64
	live  uint64 // the live mask, when parts <= 64
	size  uint32
	parts uint32
	big   int32 // index of the live mask in the arena when parts > 64, else -1
}

// appendBits appends base+i for every set bit i of m.
func appendBits(dst []int, m uint64, base int) []int {
	for ; m != 0; m &= m - 1 {
		dst = append(dst, base+bits.TrailingZeros64(m))
	}
	return dst
}

// sortByID sorts items by id with a least-significant-digit radix sort,
// skipping the bytes that are the same in every id: for a million items
// this is several times faster than a comparison sort.
func sortByID(items []replayItem) []replayItem {
	if len(items) < 256 {
		slices.SortFunc(items, func(a, b replayItem) int { return cmp.Compare(a.id, b.id) })
		return items
	}
	var or, and uint64 = 0, ^uint64(0)
	for i := range items {
		or |= items[i].id
		and &= items[i].id
	}
	tmp := make([]replayItem, len(items))
	for shift := uint(0); shift < 64; shift += 8 {
		if (or^and)>>shift&0xff == 0 {
			continue // this byte is the same in every id
		}
		var count [256]int
		for i := range items {
			count[items[i].id>>shift&0xff]++
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for i := range items {
			d := items[i].id >> shift & 0xff
			tmp[count[d]] = items[i]
			count[d]++
		}
		items, tmp = tmp, items
	}
	return items
}

// releaseGen returns the number of parts released so far.
func (l *Log) releaseGen() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.releases
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
