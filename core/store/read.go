package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// ErrNoRecord is returned by Read for an id that is not a live record.
var ErrNoRecord = errors.New("store: no such live record")

// readers caches read-only handles on segment files for Read. A handle on
// a segment deleted meanwhile still reads the old file, which is only
// asked for records that were live in it when looked up.
type readers struct {
	mu    sync.Mutex
	files map[uint64]File
	order []uint64 // oldest first, for eviction
}

const maxReadHandles = 8

func (rs *readers) get(l *Log, seq uint64) (File, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if f, ok := rs.files[seq]; ok {
		return f, nil
	}
	f, err := l.fs.OpenFile(filepath.Join(l.dir, segName(seq)), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if rs.files == nil {
		rs.files = make(map[uint64]File)
	}
	if len(rs.order) >= maxReadHandles {
		old := rs.order[0]
		rs.order = rs.order[1:]
		rs.files[old].Close()
		delete(rs.files, old)
	}
	rs.files[seq] = f
	rs.order = append(rs.order, seq)
	return f, nil
}

func (rs *readers) drop(seq uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if f, ok := rs.files[seq]; ok {
		f.Close()
		delete(rs.files, seq)
		for i, s := range rs.order {
			if s == seq {
				rs.order = append(rs.order[:i], rs.order[i+1:]...)
				break
			}
		}
	}
}

func (rs *readers) closeAll() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, f := range rs.files {
		f.Close()
	}
	rs.files, rs.order = nil, nil
}

// Read returns a copy of the payload of the live record id, as appended.
// It serves paging: a queue that keeps only the head of a long backlog in
// memory reads the rest back when it nears the head. A record not yet in
// its segment file is waited for (one group commit at most).
func (l *Log) Read(id uint64) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		r, ok := l.mu.index.get(id)
		written := false
		if seg := l.mu.segs[uint64(r.seg)]; ok && r.seg != 0 && seg != nil {
			// Records are sealed to a segment just before the flusher
			// writes them: until the segment's size covers the record,
			// it is not in the file yet.
			written = r.off+int64(r.size) <= seg.size
		}
		l.mu.Unlock()
		if !ok || r.nlive == 0 {
			return nil, ErrNoRecord
		}
		if !written {
			if attempt > 0 {
				return nil, fmt.Errorf("store: record %d not sealed after a barrier", id)
			}
			done := make(chan error, 1)
			l.Barrier(func(err error) { done <- err })
			if err := <-done; err != nil {
				return nil, err
			}
			continue
		}
		data, err := l.readAt(r)
		if err != nil && attempt == 0 {
			// The record may have moved (compaction) between lookup and
			// read: look it up again once.
			l.readers.drop(uint64(r.seg))
			continue
		}
		return data, err
	}
}

func (l *Log) readAt(r recState) ([]byte, error) {
	f, err := l.readers.get(l, uint64(r.seg))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, r.size)
	if _, err := f.ReadAt(buf, r.off); err != nil {
		return nil, err
	}
	return checkedPayload(buf, r.off)
}

// checkedPayload checks the framed record buf, read at offset off, and
// returns its payload (a part of buf).
func checkedPayload(buf []byte, off int64) ([]byte, error) {
	if int(le.Uint32(buf[0:4])) != len(buf)-frameSize {
		return nil, &formatError{off: off, reason: "record length changed"}
	}
	if crc32.Checksum(buf[frameSize:], castagnoli) != le.Uint32(buf[4:8]) {
		return nil, &formatError{off: off, reason: "checksum mismatch"}
	}
	var e entry
	if reason := decodeBody(buf[frameSize:], &e); reason != "" {
		return nil, &formatError{off: off, reason: reason}
	}
	return e.payload, nil
}

// maxReadSpan bounds the bytes ReadMany reads with one call, and
// maxReadGap the bytes of other records it reads past between two of
// those asked for (a queue's backlog is interleaved with other queues'
// messages and with releases).
const (
	maxReadSpan = 256 << 10
	maxReadGap  = 8 << 10
)

// ReadMany is Read of each of ids, in order: it fills dst[i] (dst is at
// least as long as ids) with the payload of ids[i] and returns how many it
// read; when that is less than len(ids), err says why ids[n] could not be
// read. It looks the records up under one lock and reads records that lie
// in order close to each other in a segment (at most 8 KiB apart) with one
// read of up to 256 KiB, where Read takes the lock and makes a system call
// per record: the scheduler of delayed messages reads back thousands at a
// time, and a queue pages in hundreds, usually appended in that order.
// Payloads of one read share its buffer.
func (l *Log) ReadMany(ids []uint64, dst [][]byte) (n int, err error) {
	rs := make([]recState, len(ids))
	fast := 0 // ids[:fast] are live and written: read them in spans
	l.mu.Lock()
	for ; fast < len(ids); fast++ {
		r, ok := l.mu.index.get(ids[fast])
		seg := l.mu.segs[uint64(r.seg)]
		if !ok || r.nlive == 0 || r.seg == 0 || seg == nil || r.off+int64(r.size) > seg.size {
			break
		}
		rs[fast] = r
	}
	l.mu.Unlock()
	for n < fast {
		first, end := rs[n], rs[n].off+int64(rs[n].size)
		j := n + 1
		for j < fast && rs[j].seg == first.seg && rs[j].off >= end && rs[j].off-end <= maxReadGap &&
			rs[j].off+int64(rs[j].size)-first.off <= maxReadSpan {
			end = rs[j].off + int64(rs[j].size)
			j++
		}
		if !l.readSpan(uint64(first.seg), first.off, rs[n:j], dst[n:j]) {
			break // moved or unreadable: Read finds out which
		}
		n = j
	}
	for ; n < len(ids); n++ {
		if dst[n], err = l.Read(ids[n]); err != nil {
			return n, err
		}
	}
	return n, nil
}

// readSpan reads the records rs, which lie one after the other from
// offset off of segment seg, into dst. It reports false when a read or a
// check failed.
func (l *Log) readSpan(seg uint64, off int64, rs []recState, dst [][]byte) bool {
	f, err := l.readers.get(l, seg)
	if err != nil {
		return false
	}
	last := rs[len(rs)-1]
	buf := make([]byte, last.off+int64(last.size)-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return false
	}
	for i, r := range rs {
		at := r.off - off
		if dst[i], err = checkedPayload(buf[at:at+int64(r.size):at+int64(r.size)], r.off); err != nil {
			return false
		}
	}
	return true
}
