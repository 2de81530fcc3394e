package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// maybeReclaim reclaims space if something changed since the last pass and
// Replay is not reading segments. Called by the flusher between batches.
func (l *Log) maybeReclaim() {
	l.mu.Lock()
	skip := !l.mu.dirty || l.mu.closing || l.mu.err != nil
	l.mu.Unlock()
	if skip || !l.reclaimMu.TryLock() {
		return
	}
	defer l.reclaimMu.Unlock()
	if err := l.reclaim(true); err != nil {
		l.poison(err)
	}
}

// reclaim deletes the segments that are no longer needed and, if compact is
// set, starts compacting the segments worth it.
//
// Deletion goes in waves: a segment whose tombstones release records of
// another segment is deleted only once that segment's removal is durable
// (the removals of one wave are made durable by one SyncDir), so that a
// crash can never bring back a record without its tombstones.
//
// REQUIRES: l.reclaimMu; called by the flusher, or by OpenLog before it starts.
func (l *Log) reclaim(compact bool) error {
	for {
		l.mu.Lock()
		l.mu.dirty = false
		dels, victims := l.planLocked()
		l.mu.Unlock()
		if len(dels) > 0 {
			if err := l.deleteSegments(dels); err != nil {
				return err
			}
			continue // the next wave may have been waiting for these
		}
		if compact {
			for _, seq := range victims {
				l.compact(seq)
			}
		}
		return nil
	}
}

// compactScanBudget bounds the bytes of segments one reclaim pass scans for
// compaction (at least one segment is always taken). Writers wait while
// the flusher scans, so this trades disk space for latency. At four times
// the default MaxPendingBytes (the most one batch writes), compaction keeps
// up with a writer that fills segments as fast as the flusher can.
const compactScanBudget = 16 << 20

// drainPasses is how many reclaim passes in a row a segment that lost
// records must lose no more before it is compacted. A segment whose records are being
// released (a queue drained in order, scheduled messages falling due in
// the order they were written) is about to be freed whole; copying its
// remaining records forward would write them again for nothing, and reads
// of moved records wait for their copies to be durable. Passes run after
// each of the flusher's batches, so under load this is a few milliseconds.
const drainPasses = 8

// planLocked returns the segments that can be deleted now and the segments
// worth compacting.
//
// A non-active segment can be deleted when it has no live record and none
// of its tombstones is still needed, that is, every segment they point
// into is gone (or is the segment itself); or when compaction has copied
// everything it still needed forward. It is worth compacting when what it
// still needs (live records plus needed tombstones) is below compactPercent
// of its size, and it has lost no record for drainPasses passes; while one
// is draining, dirty stays set so that the next batch's pass looks again.
//
// REQUIRES: l.mu
func (l *Log) planLocked() (dels, victims []uint64) {
	var scan int64
	draining := 0
	for _, seq := range l.mu.seqs {
		if seq == l.mu.active {
			continue
		}
		s := l.mu.segs[seq]
		if s.compacted {
			if s.live == 0 {
				dels = append(dels, seq)
			}
			continue
		}
		tombs := s.needTombs
		if s.live == 0 && tombs == 0 {
			dels = append(dels, seq)
			continue
		}
		if s.live < s.passLive {
			s.hold = drainPasses
		} else if s.hold > 0 {
			s.hold--
		}
		s.passLive = s.live
		if s.compacting || s.noCompact || len(victims) > 0 && scan+s.validEnd > compactScanBudget {
			continue
		}
		need := s.liveBytes + int64(tombs)*releaseSize
		if need*100 < s.size*compactPercent {
			if s.hold > 0 && s.live > 0 {
				draining++
				continue
			}
			victims = append(victims, seq)
			scan += s.validEnd
		}
	}
	l.mu.draining = draining
	if draining > 0 {
		l.mu.dirty = true
	}
	return dels, victims
}

// deleteSegments removes segment files and makes the removals durable.
//
// REQUIRES: l.reclaimMu
func (l *Log) deleteSegments(seqs []uint64) error {
	for _, seq := range seqs {
		l.readers.drop(seq)
		err := l.fs.Remove(filepath.Join(l.dir, segName(seq)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: remove segment %s: %w", segName(seq), err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("store: fsync directory after removing segments: %w", err)
	}
	l.mu.Lock()
	for _, seq := range seqs {
		l.dropSegmentLocked(seq)
	}
	l.mu.seqs = slices.DeleteFunc(l.mu.seqs, func(s uint64) bool { return !l.segExistsLocked(s) })
	l.mu.Unlock()
	return nil
}

// segExistsLocked reports whether segment seq exists.
//
// REQUIRES: l.mu
func (l *Log) segExistsLocked(seq uint64) bool {
	_, ok := l.mu.segs[seq]
	return ok
}

// compact copies what segment seq still needs to the active segment through
// the normal write path: its live records (as typeMoved records carrying
// their remaining live parts, with the same ids) and its tombstones that
// point into segments that still exist. It queues a marker behind them; once
// the marker's batch is durable the segment is flagged compacted, and the
// next reclaim pass deletes it.
//
// The scan runs on the flusher goroutine; writers keep queueing meanwhile
// and their records go into the next batch.
func (l *Log) compact(seq uint64) {
	l.mu.Lock()
	s := l.mu.segs[seq]
	end := s.validEnd
	s.compacting = true
	l.mu.Unlock()

	fail := func(err error) {
		l.logger.Error("message log: compaction failed; the segment stays", "segment", segName(seq), "err", err)
		l.mu.Lock()
		s.noCompact = true
		s.compacting = false
		l.mu.Unlock()
	}
	f, err := l.fs.OpenFile(filepath.Join(l.dir, segName(seq)), os.O_RDONLY, 0)
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	l.scan.reset(f, end, headerSize)
	var e entry
	moved, copied := 0, 0
	for {
		err := l.scan.next(&e)
		if err == io.EOF {
			break
		}
		if err != nil {
			// Whatever was queued so far are correct copies; the marker is
			// not queued, so the segment is kept.
			fail(err)
			return
		}
		l.mu.Lock()
		switch e.typ {
		case typeRecord, typeMoved:
			r, ok := l.mu.index.get(e.id)
			if ok && uint64(r.seg) == seq && r.off == e.off && r.nlive > 0 {
				l.maskBuf = l.maskBytesLocked(e.id, &r, l.maskBuf)
				start := len(l.mu.buf)
				l.mu.buf = appendRecord(l.mu.buf, typeMoved, e.id, r.parts, l.maskBuf, e.payload)
				l.enqueueLocked(op{kind: opMoved, id: e.id, start: start, end: len(l.mu.buf)})
				moved++
			}
		case typeRelease:
			if e.target != 0 && e.target != seq && l.segExistsLocked(e.target) {
				start := len(l.mu.buf)
				l.mu.buf = appendRelease(l.mu.buf, e.id, e.part, e.target)
				l.enqueueLocked(op{kind: opReleaseCopy, id: e.id, seg: e.target, start: start, end: len(l.mu.buf)})
				copied++
			}
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.enqueueLocked(op{kind: opCompacted, seg: seq})
	l.mu.Unlock()
	l.compactions.Add(1)
	l.logger.Debug("message log: compacting segment", "segment", segName(seq),
		"size", end, "moved_records", moved, "copied_tombstones", copied)
}
