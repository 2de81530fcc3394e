package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// OpenLog opens (creating if needed) the log in dir, recovers it and starts
// its flusher. See the package documentation for the recovery procedure.
// Damage is not an error: it is described in the report (and logged). An
// error means the log could not be opened (an I/O error, or a segment
// written by a newer format version).
func OpenLog(fsys FS, dir string, o Options) (*Log, RecoveryReport, error) {
	start := time.Now()
	o = o.withDefaults()
	l := &Log{
		fs:     fsys,
		dir:    dir,
		opts:   o,
		logger: o.Logger,
		kick:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		enough: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		ended:  make(chan struct{}),
		window: newTimer(),
		gather: gatherState{maxWait: gatherMaxWait},
	}
	l.mu.space.L = &l.mu.Mutex
	l.mu.index = newRecIndex()
	l.mu.big = make(map[uint64][]uint64)
	l.mu.segs = make(map[uint64]*segment)

	var rep RecoveryReport
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, rep, fmt.Errorf("store: %w", err)
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, rep, fmt.Errorf("store: %w", err)
	}
	var seqs []uint64
	rc := recovery{l: l, rep: &rep, nextID: 1}
	for _, name := range names {
		if seq, ok := parseSegName(name); ok {
			seqs = append(seqs, seq)
		} else if seq, ok := parseSegName(strings.TrimSuffix(name, ".corrupt")); ok {
			rc.maxSeq = max(rc.maxSeq, seq) // never reuse a number set aside
		}
	}
	slices.Sort(seqs)

	for i, seq := range seqs {
		if err := rc.segment(seq, i == len(seqs)-1); err != nil {
			return nil, rep, err
		}
	}
	if len(seqs) > 0 {
		rc.maxSeq = max(rc.maxSeq, seqs[len(seqs)-1])
	}

	// Per-segment live counts, from the records that survived.
	for _, r := range l.mu.index.all() {
		s := l.mu.segs[uint64(r.seg)]
		s.live++
		s.liveBytes += int64(r.size)
		l.mu.liveRecords++
		l.mu.liveBytes += int64(r.size)
	}
	l.mu.nextID = rc.nextID

	// Never append after a tail that was torn: always start a new segment.
	// Its creation also makes the removals and renames above durable.
	seq := rc.maxSeq + 1
	f, err := l.createSegment(seq, l.mu.nextID)
	if err != nil {
		return nil, rep, err
	}
	l.active, l.activeSeq, l.activeSize = f, seq, headerSize
	l.addSegmentLocked(seq, headerSize)
	if err := l.reclaim(false); err != nil {
		f.Close()
		return nil, rep, err
	}

	rep.LiveRecords = l.mu.liveRecords
	rep.Duration = time.Since(start)
	l.logger.Info("message log recovered", "dir", dir, "segments", rep.Segments, "records", rep.Records,
		"live_records", rep.LiveRecords, "truncated_bytes", rep.TruncatedBytes, "corrupt", len(rep.Corrupt),
		"duration", rep.Duration)
	for _, c := range rep.Corrupt {
		l.logger.Error("message log damage: data lost", "dir", dir, "detail", c)
	}
	go l.run()
	return l, rep, nil
}

// recovery is the state of OpenLog while it reads the segments.
type recovery struct {
	l      *Log
	rep    *RecoveryReport
	scan   scanner
	e      entry
	nextID uint64 // smallest id never used, as far as seen
	maxSeq uint64 // highest segment number seen
}

// segment reads one segment file into the log's index and segment table.
func (rc *recovery) segment(seq uint64, last bool) error {
	l := rc.l
	name := segName(seq)
	path := filepath.Join(l.dir, name)
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("store: open segment: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return fmt.Errorf("store: segment %s: %w", name, err)
	}

	var h [headerSize]byte
	n, rerr := f.ReadAt(h[:], 0)
	if rerr != nil && rerr != io.EOF {
		f.Close()
		return fmt.Errorf("store: read segment %s: %w", name, rerr)
	}
	hseq, hnext, herr := parseHeader(h[:n], segMagic)
	if errors.Is(herr, errVersion) {
		f.Close()
		return fmt.Errorf("store: segment %s: %w", name, herr)
	}
	if herr == nil && hseq != seq {
		herr = fmt.Errorf("header says segment %d", hseq)
	}
	if herr != nil {
		f.Close()
		rc.maxSeq = max(rc.maxSeq, seq)
		if size <= headerSize {
			// No room for a record: created, but its header never fully
			// reached the disk (a crash while starting a segment). Nothing
			// in it was ever acknowledged.
			rc.rep.TruncatedBytes += size
			l.logger.Warn("message log: removing segment with a torn header", "segment", name, "bytes", size)
			if err := l.fs.Remove(path); err != nil {
				return fmt.Errorf("store: remove torn segment: %w", err)
			}
			return nil
		}
		// Set it aside for inspection; everything in it is lost.
		aside := path + ".corrupt"
		rc.rep.Corrupt = append(rc.rep.Corrupt, fmt.Sprintf(
			"segment %s: unreadable header (%v); its %d bytes are lost and the file was renamed to %s",
			name, herr, size, filepath.Base(aside)))
		if err := l.fs.Rename(path, aside); err != nil {
			return fmt.Errorf("store: set aside corrupt segment: %w", err)
		}
		return nil
	}
	rc.nextID = max(rc.nextID, hnext)
	rc.rep.Segments++

	s := newSegment(seq, size)
	l.mu.segs[seq] = s
	l.mu.seqs = append(l.mu.seqs, seq)

	rc.scan.reset(f, size, headerSize)
	for {
		err := rc.scan.next(&rc.e)
		if err == io.EOF {
			break
		}
		if err != nil {
			var ferr *formatError
			if !errors.As(err, &ferr) {
				f.Close()
				return fmt.Errorf("store: read segment %s: %w", name, err)
			}
			good := rc.scan.off
			lost := size - good
			s.validEnd = good
			zeros, zerr := zeroFrom(f, good, size)
			if zerr != nil {
				f.Close()
				return fmt.Errorf("store: read segment %s: %w", name, zerr)
			}
			if zeros {
				// The preallocated space after the last record
				// (Log.allocate): nothing was lost.
				f.Close()
				if err := truncateFile(l.fs, path, good); err != nil {
					return err
				}
				s.size = good
				return nil
			}
			if last {
				// A torn tail: the crash interrupted the last batch. Cut it
				// off so the file ends at its last good record.
				f.Close()
				rc.rep.TruncatedBytes += lost
				l.logger.Warn("message log: truncating torn tail", "segment", name,
					"offset", good, "bytes", lost, "reason", ferr.reason)
				if err := truncateFile(l.fs, path, good); err != nil {
					return err
				}
				s.size = good
				return nil
			}
			// Corruption inside an older segment. Records are not framed
			// with a resync marker, so nothing after this point can be
			// trusted: the rest of the segment is lost.
			rc.rep.Corrupt = append(rc.rep.Corrupt, fmt.Sprintf(
				"segment %s: %v; the remaining %d bytes of the segment (records and releases after offset %d) are lost",
				name, ferr, lost, good))
			break
		}
		rc.apply(seq, s)
	}
	return f.Close()
}

// apply adds one decoded record or tombstone of segment seq to the index.
func (rc *recovery) apply(seq uint64, s *segment) {
	l, e := rc.l, &rc.e
	rc.nextID = max(rc.nextID, e.id+1)
	switch e.typ {
	case typeRecord, typeMoved:
		rc.rep.Records++
		// Ids are unique, so only a moved record can meet its id again;
		// skipping the lookup for the others halves the map work.
		var r recState
		ok := false
		if e.typ == typeMoved {
			r, ok = l.mu.index.get(e.id)
		}
		if !ok || r.parts != e.parts {
			// A new record (or a copy whose original is gone).
			if ok {
				delete(l.mu.big, e.id)
			}
			r = recState{parts: e.parts, nlive: e.parts}
			if e.parts <= 64 {
				r.live = fullMask64(int(e.parts))
			} else {
				m := make([]uint64, (e.parts+63)/64)
				for i := range m {
					m[i] = ^uint64(0)
				}
				if rem := e.parts % 64; rem != 0 {
					m[len(m)-1] = fullMask64(int(rem))
				}
				l.mu.big[e.id] = m
			}
		}
		if e.mask != nil {
			// A copy carries the parts live when it was made; releases
			// seen before it are already reflected, so intersect.
			l.applyMask(e.id, &r, e.mask)
		}
		r.seg, r.off, r.size = segSeq(seq), e.off, uint32(e.size)
		if r.nlive == 0 {
			l.mu.index.del(e.id)
			delete(l.mu.big, e.id)
			return
		}
		l.mu.index.set(e.id, r)
	case typeRelease:
		l.addDepLocked(s, e.target)
		r, ok := l.mu.index.get(e.id)
		if !ok || e.part >= r.parts {
			return // released earlier, or its record is gone
		}
		if l.clearPartLocked(e.id, &r, e.part) && r.nlive == 0 {
			l.mu.index.del(e.id)
			delete(l.mu.big, e.id)
			return
		}
		l.mu.index.set(e.id, r)
	}
}

// zeroFrom reports whether every byte of f from off to size is zero.
func zeroFrom(f File, off, size int64) (bool, error) {
	const chunk = 256 << 10
	buf := make([]byte, min(size-off, chunk))
	zero := make([]byte, len(buf))
	for off < size {
		n := int(min(int64(len(buf)), size-off))
		got, err := f.ReadAt(buf[:n], off)
		if got < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			return false, nil
		}
		off += int64(n)
	}
	return true, nil
}

// truncateFile cuts the file at path to size and syncs it.
func truncateFile(fsys FS, path string, size int64) error {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: truncate: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: truncate %s: %w", filepath.Base(path), err)
	}
	return nil
}
