package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// run is the flusher goroutine: it owns the active segment file. Each turn
// it takes everything queued, writes it with one Write (one per segment if
// it fills the active one), fsyncs, and then runs the callbacks of the
// batch in order. A queue of tombstones alone waits first
// (Options.ReleaseSyncDelay). Between batches it reclaims space.
func (l *Log) run() {
	defer close(l.ended)
	for {
		l.mu.Lock()
		for len(l.mu.ops) == 0 {
			if l.mu.closing {
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			l.maybeReclaim()
			select {
			case <-l.kick:
			case <-l.stop:
			}
			l.mu.Lock()
		}
		for l.mu.lazyOnly && !l.mu.closing && l.mu.err == nil {
			// Tombstones alone, not due yet (a batch just written found
			// them queued): wait for them to be due, or for anything
			// else to be queued.
			l.mu.Unlock()
			select {
			case <-l.kick:
			case <-l.stop:
			}
			l.mu.Lock()
		}
		if w := l.opts.SyncWindow; w > 0 && !l.mu.closing && l.mu.err == nil &&
			int64(len(l.mu.buf)) < l.opts.MaxPendingBytes/2 {
			// Group commit with a window: let more writers join this batch.
			l.mu.Unlock()
			l.window.Reset(w)
			select {
			case <-l.window.C:
			case <-l.full:
			case <-l.stop:
			}
			l.window.Stop()
			l.mu.Lock()
		} else if l.opts.SyncWindow == 0 {
			l.gatherLocked()
		}
		buf, ops := l.mu.buf, l.mu.ops
		l.mu.buf, l.mu.ops = l.spareBuf[:0], l.spareOps[:0]
		l.mu.lazyOnly = false
		l.gather.lastWaiters = l.mu.waiters
		l.mu.waiters = 0
		err := l.mu.err
		l.mu.space.Broadcast()
		l.mu.Unlock()

		if err == nil && len(buf) > 0 {
			start := time.Now() // the wall clock: this measures the disk
			if err = l.commit(buf, ops); err != nil {
				l.poison(err)
			}
			l.gather.observe(time.Since(start))
		}
		l.complete(ops, err)
		if len(ops) > 1 {
			// Writers woken by these callbacks usually append again at
			// once; yielding lets them join the next batch instead of
			// waiting a whole fsync for the one after (measured: +60 %
			// records/s with 16 writers waiting for each confirm).
			runtime.Gosched()
		}

		if cap(buf) <= 2*int(l.opts.MaxPendingBytes) {
			l.spareBuf = buf[:0]
		} else {
			l.spareBuf = nil // do not keep a buffer grown by one huge record
		}
		clear(ops) // drop the callbacks
		if cap(ops) <= 1<<16 {
			l.spareOps = ops[:0]
		} else {
			l.spareOps = nil // do not keep the ops of one huge burst
		}
		if err == nil {
			l.maybeReclaim()
		}
	}
}

// commit writes one batch to the active segment and fsyncs it. A batch that
// would take the active segment past SegmentSize is split: the part that
// fits is written and synced, a new segment is started, and the rest goes
// there (a single record larger than a segment gets a segment to itself).
func (l *Log) commit(buf []byte, ops []op) error {
	for i := 0; i < len(ops); {
		if l.activeSize > l.opts.SegmentSize ||
			l.activeSize > headerSize && int64(ops[i].end-ops[i].start) > l.opts.SegmentSize-l.activeSize {
			if err := l.rotate(); err != nil {
				return err
			}
		}
		room := l.opts.SegmentSize - l.activeSize
		j := i + 1
		for j < len(ops) && int64(ops[j].end-ops[i].start) <= room {
			j++
		}
		if err := l.writeChunk(buf[ops[i].start:ops[j-1].end], ops[i:j], ops[i].start); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// sealPiece is how many ops writeChunk seals per hold of Log.mu.
const sealPiece = 512

// writeChunk seals ops, whose bytes are chunk (starting at index first of
// the batch buffer), writes chunk to the active segment and fsyncs it.
func (l *Log) writeChunk(chunk []byte, ops []op, first int) error {
	if len(chunk) == 0 {
		return nil
	}
	// Seal in pieces, so that writers are not held up for long by a
	// batch of many small records. Each op is sealed atomically, and
	// only the flusher seals, so the pieces need not be.
	for i := 0; i < len(ops); i += sealPiece {
		l.mu.Lock()
		l.sealLocked(chunk, ops[i:min(i+sealPiece, len(ops))], first)
		l.mu.Unlock()
	}
	for i := range ops {
		if o := &ops[i]; o.end > o.start {
			setChecksum(chunk[o.start-first : o.end-first])
		}
	}
	// The wall clock, not an injected one: this measures the disk.
	var start time.Time
	if l.opts.OnSync != nil {
		start = time.Now()
	}
	n, err := l.active.Write(chunk)
	l.activeSize += int64(n)
	l.mu.Lock()
	s := l.mu.segs[l.activeSeq]
	s.size, s.validEnd = l.activeSize, l.activeSize
	l.mu.Unlock()
	if err == nil {
		err = l.zeroAhead(len(chunk))
	}
	if err != nil {
		return fmt.Errorf("store: write segment %s: %w", segName(l.activeSeq), err)
	}
	if err := l.active.Sync(); err != nil {
		return fmt.Errorf("store: fsync segment %s: %w", segName(l.activeSeq), err)
	}
	l.syncs.Add(1)
	if l.opts.OnSync != nil {
		l.opts.OnSync(time.Since(start), len(ops))
	}
	return nil
}

// sealLocked assigns the batch's records to the active segment and fills
// in the targets of its tombstones. It runs before the batch is written,
// but only the flusher reads what it sets (for compaction and deletion,
// after the batch is durable), and a failed write poisons the log.
//
// chunk holds the ops' bytes; op offsets are relative to first.
//
// REQUIRES: l.mu; called by the flusher.
func (l *Log) sealLocked(chunk []byte, ops []op, first int) {
	seq := l.mu.active
	seg := l.mu.segs[seq]
	base := l.activeSize - int64(first)
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opRecord, opMoved:
			r, ok := l.mu.index.get(o.id)
			if !ok {
				continue
			}
			size := uint32(o.end - o.start)
			if r.nlive > 0 {
				if old := l.mu.segs[uint64(r.seg)]; r.seg != 0 && old != nil {
					old.live--
					old.liveBytes -= int64(r.size)
					l.mu.dirty = true
				}
				seg.live++
				seg.liveBytes += int64(size)
				l.mu.liveBytes += int64(size) - int64(r.size)
			}
			r.seg, r.off, r.size = segSeq(seq), base+int64(o.start), size
			l.mu.index.set(o.id, r)
		case opRelease:
			var target uint64
			if r, ok := l.mu.index.get(o.id); ok {
				target = uint64(r.seg)
			}
			setReleaseTarget(chunk[o.start-first:o.end-first], target)
			l.addDepLocked(seg, target)
			if o.last {
				l.mu.index.del(o.id)
				delete(l.mu.big, o.id)
			}
		case opReleaseCopy:
			l.addDepLocked(seg, o.seg)
		}
	}
}

// complete runs the callbacks of a batch: done(nil) if it is durable, or
// done(err) with the error that kept it from being so.
func (l *Log) complete(ops []op, err error) {
	if err == nil {
		l.mu.Lock()
		for i := range ops {
			if o := &ops[i]; o.kind == opCompacted {
				if s := l.mu.segs[o.seg]; s != nil {
					s.compacted, s.compacting = true, false
				}
				l.mu.dirty = true
			}
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.mu.inCallbacks = true
	l.gather.early = l.mu.waiters
	l.mu.Unlock()
	for i := range ops {
		o := &ops[i]
		if o.done == nil {
			continue
		}
		if o.kind == opFailed {
			o.done(o.err)
		} else {
			o.done(err)
		}
	}
	l.mu.Lock()
	l.mu.inCallbacks = false
	l.mu.Unlock()
}

// poison stops the log after a failed write or fsync.
//
// After a failed fsync the state of the file is unknown, and retrying is
// not safe: Linux (since 4.13) reports a writeback error to fsync once and
// then marks the dirty pages clean, so a second fsync can succeed although
// the data never reached the disk ("fsyncgate": PostgreSQL lost data this
// way in 2018 and now panics instead). The only safe course is to stop
// acknowledging and let a restart recover from what is really on disk. A
// failed write is treated the same way: its batch may hold tombstones, and
// dropping them while later records are acknowledged would break the
// promise that a release is durable once a later done(nil) has run.
func (l *Log) poison(err error) {
	l.mu.Lock()
	if l.mu.err == nil {
		l.mu.err = fmt.Errorf("%w: %w", ErrPoisoned, err)
	}
	l.mu.space.Broadcast()
	l.mu.Unlock()
	l.logger.Error("message log stopped: every later append fails until restart", "dir", l.dir, "err", err)
}

// rotate closes the active segment (already synced) and starts a new one.
func (l *Log) rotate() error {
	seq := l.activeSeq + 1
	if seq > math.MaxUint32 {
		// The index keeps 32-bit segment numbers (segSeq): at 64 MiB a
		// segment this is 256 PiB written.
		return errors.New("message log: segment sequence numbers exhausted")
	}
	l.mu.Lock()
	nextID := l.mu.nextID
	l.mu.Unlock()
	l.trimActive()
	f, err := l.createSegment(seq, nextID)
	if err != nil {
		return err
	}
	if err := l.active.Close(); err != nil {
		l.logger.Warn("message log: closing full segment", "err", err)
	}
	l.active, l.activeSeq, l.activeSize = f, seq, headerSize
	l.mu.Lock()
	l.addSegmentLocked(seq, headerSize)
	l.mu.Unlock()
	return nil
}

// addSegmentLocked makes the new segment seq the active one.
//
// REQUIRES: l.mu (or OpenLog before the flusher starts)
func (l *Log) addSegmentLocked(seq uint64, size int64) {
	l.mu.segs[seq] = newSegment(seq, size)
	l.mu.seqs = append(l.mu.seqs, seq)
	l.mu.active = seq
	l.mu.dirty = true
}

// newSegment returns the bookkeeping of a segment of size bytes.
func newSegment(seq uint64, size int64) *segment {
	return &segment{seq: seq, size: size, validEnd: size,
		deps: make(map[uint64]int), dependents: make(map[uint64]int)}
}

// createSegment creates segment seq with its header and makes both the
// file and its directory entry durable before any record goes in. The
// header is durable before the file is extended to SegmentSize with zeros
// (see allocate), so a crash cannot leave a full-size file without one.
func (l *Log) createSegment(seq, nextID uint64) (File, error) {
	path := filepath.Join(l.dir, segName(seq))
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: create segment: %w", err)
	}
	var h [headerSize]byte
	putHeader(h[:], segMagic, seq, nextID)
	if _, err = f.Write(h[:]); err == nil {
		if err = f.Sync(); err == nil && l.allocate(f, seq) {
			err = f.Sync()
		}
		if err == nil {
			err = l.fs.SyncDir(l.dir)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: create segment %s: %w", segName(seq), err)
	}
	return f, nil
}

// allocate extends a new segment to SegmentSize with zeros, reserving its
// space, and reports whether it did. Records then overwrite zeros and
// never change the file's size, so the fsync of each batch has no size
// to record: 0.13 ms against 0.19 ms per fsync for appends on this
// project's test machine (ext4). The zeros past the last record are not
// a torn tail: recovery cuts them off without a report, rotation and
// Close trim them. Without preallocation the log still works: a file
// system that cannot do it is told once, other failures per segment.
func (l *Log) allocate(f File, seq uint64) bool {
	if l.noAllocate {
		return false
	}
	err := f.Allocate(l.opts.SegmentSize)
	if err == nil {
		l.allocated, l.zeroed = true, headerSize
		return true
	}
	if errors.Is(err, errors.ErrUnsupported) {
		l.noAllocate = true
		l.logger.Info("message log: the file system cannot preallocate segments; they grow by appending", "err", err)
	} else {
		l.logger.Warn("message log: could not preallocate segment; it grows by appending", "segment", segName(seq), "err", err)
	}
	return false
}

// Writing ahead of the records (Log.zeroAhead).
const (
	zeroChunk    = 1 << 20  // zeros written at a time
	zeroLow      = 64 << 10 // write more when fewer written bytes are left ahead
	zeroBigBatch = 64 << 10 // batches this large do not wait for zeros
	pageSize     = 4 << 10
)

// zeroes is what zeroAhead writes. Never written to, its pages stay the
// kernel's shared zero page.
var zeroes [zeroChunk]byte

// zeroAhead writes zeros over the preallocated space just past the
// records, a chunk at a time, so that the batches after it overwrite
// blocks already written. Space reserved by fallocate is only marked
// unwritten: the first write into each block converts it, and on ext4 the
// fsync after that write waits for a journal commit. Written once, blocks
// need no commit: each small batch's fsync then flushes only its data
// (measured on this project's test machine for 4 KB batches with both
// cores busy: 0.14 ms against 0.32 ms). The chunk is written with the
// batch that finds less than zeroLow bytes ahead of it and made durable
// by that batch's fsync, which pays the commit once per chunk. Large
// batches skip it: they fill their own blocks, and their fsync is mostly
// data anyway.
//
// REQUIRES: the flusher, after the batch's write.
func (l *Log) zeroAhead(batch int) error {
	if !l.allocated || batch >= zeroBigBatch || l.zeroed-l.activeSize >= zeroLow ||
		l.zeroed >= l.opts.SegmentSize || l.activeSize >= l.opts.SegmentSize {
		return nil
	}
	from := max(l.zeroed, l.activeSize)
	// Chunks end on a page boundary, so that the next starts on one.
	to := min((from+zeroChunk)&^(pageSize-1), l.opts.SegmentSize)
	if _, err := l.active.WriteAt(zeroes[:to-from], from); err != nil {
		return err
	}
	l.zeroed = to
	return nil
}

// trimActive cuts the active segment's preallocated zeros off after its
// last record, so that a full or closed segment takes only its records'
// space. A failure leaves zeros that recovery cuts off, so it is logged.
func (l *Log) trimActive() {
	if !l.allocated {
		return
	}
	l.allocated = false
	if err := l.active.Truncate(l.activeSize); err != nil {
		l.logger.Warn("message log: trimming preallocated space", "segment", segName(l.activeSeq), "err", err)
	}
}

// newTimer returns a stopped timer.
func newTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
