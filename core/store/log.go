package store

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the log. Errors from the file system are wrapped, so
// errors.Is finds both these kinds and the underlying cause.
var (
	// ErrClosed is passed to callbacks of operations started after Close.
	ErrClosed = errors.New("store: closed")
	// ErrPoisoned wraps the write or fsync error that stopped the log; every
	// later operation fails with it. Reopen the log to recover.
	ErrPoisoned = errors.New("store: log stopped after a failed write or fsync")
	// ErrInvalid is passed to done for an Append with bad arguments
	// (parts out of range, payload larger than MaxRecordSize).
	ErrInvalid = errors.New("store: invalid argument")
)

// Default option values.
const (
	// DefaultSegmentSize is the default Options.SegmentSize.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxPendingBytes is the default Options.MaxPendingBytes.
	DefaultMaxPendingBytes = 4 << 20
	// DefaultReleaseSyncDelay is the default Options.ReleaseSyncDelay.
	DefaultReleaseSyncDelay = 50 * time.Millisecond
	// minSegmentSize keeps tiny settings from creating a file per batch.
	minSegmentSize = 4 << 10
)

// compactPercent is the compaction threshold: a non-active segment whose
// live bytes (live records plus the tombstones it must keep) fall below
// this percentage of its size is copied forward and deleted. At 50 %,
// copying L bytes frees at least 2L, so compaction writes less than one
// byte per byte it frees, and non-active segments stay at least half live
// on average. See the package documentation.
const compactPercent = 50

// Options configures a [Log]. The zero value gives the defaults.
type Options struct {
	// SegmentSize: a new segment file starts once the current one exceeds
	// this many bytes. Default DefaultSegmentSize (64 MiB).
	SegmentSize int64
	// SyncWindow is how long the flusher may wait, once it has work, to
	// gather more before it writes and fsyncs. The default 0 writes and
	// syncs as soon as the previous fsync returns, batching everything that
	// arrived meanwhile; that already gives large batches under load and
	// the lowest latency when idle (see the package documentation for
	// measurements).
	SyncWindow time.Duration
	// ReleaseSyncDelay is how long the flusher lets tombstones wait in the
	// queue when nothing else is queued: nobody waits for a release (its
	// promise is kept by the done of a later Append or Barrier), so a
	// stream of acks alone costs one write and fsync per ReleaseSyncDelay
	// instead of one per batch. Anything else queued (an Append, a
	// Barrier, a read of a record not yet written), a queue past half of
	// MaxPendingBytes, or Close ends the wait at once. After a crash,
	// releases of at most that long ago may be undone (their messages
	// delivered again). Default DefaultReleaseSyncDelay; negative: no wait.
	ReleaseSyncDelay time.Duration
	// Logger receives the recovery report and errors; nil means slog.Default().
	Logger *slog.Logger
	// MaxPendingBytes bounds the bytes queued for the flusher. Append
	// blocks while the queue holds this much (backpressure); a single
	// larger record is still accepted when the queue is empty. Releases,
	// barriers and compaction copies are small or internal and never
	// block. Default DefaultMaxPendingBytes (4 MiB).
	MaxPendingBytes int64
	// OnSync, when set, is called by the flusher after each successful
	// write and fsync of a batch (or of the part of a batch that fitted the
	// segment), with how long the write and fsync took and how many
	// records (tombstones included) it held. It runs on the flusher
	// goroutine, outside every lock, and must be quick: a metrics
	// observation, not I/O.
	OnSync func(d time.Duration, records int)
}

func (o Options) withDefaults() Options {
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	o.SegmentSize = max(o.SegmentSize, minSegmentSize)
	if o.SyncWindow < 0 {
		o.SyncWindow = 0
	}
	if o.ReleaseSyncDelay == 0 {
		o.ReleaseSyncDelay = DefaultReleaseSyncDelay
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	return o
}

// RecoveryReport says what OpenLog found.
type RecoveryReport struct {
	Segments       int           // segment files read
	Records        int           // records read (copies made by compaction included)
	LiveRecords    int           // records with at least one part not released
	TruncatedBytes int64         // bytes cut from a torn tail of the last segment
	Corrupt        []string      // human-readable notes on data that was lost
	Duration       time.Duration // time OpenLog took
}

// LogStats is a snapshot of the log's size.
type LogStats struct {
	Segments    int    // segment files, the active one included
	DiskBytes   int64  // their total size
	LiveRecords int    // records with a part not released
	LiveBytes   int64  // on-disk bytes of those records
	Syncs       uint64 // fsyncs of segment data since OpenLog
	Compactions uint64 // segments copied forward since OpenLog
	// Gathers is how many times the flusher waited for writers it had
	// just released to queue their next record before a batch (see
	// "Group commit" in the package documentation); GatherMisses, how
	// many of those waits ended before they all came.
	Gathers      uint64
	GatherMisses uint64
	// Draining is the number of segments worth compacting that are left
	// alone for now because records are being released from them (see
	// drainPasses).
	Draining int
}

// Log is an append-only, segmented record log with group commit, used for
// persistent messages. A record has parts parts (one per durable queue
// holding the message); each part is released independently, and a record
// whose parts are all released is dead. Dead space is reclaimed by deleting
// and compacting segments.
//
// All methods are safe for concurrent use.
type Log struct {
	fs     FS
	dir    string
	opts   Options
	logger *slog.Logger

	kick   chan struct{} // cap 1: the queue became non-empty, or reclaim may have work
	full   chan struct{} // cap 1: the queue passed half of MaxPendingBytes
	enough chan struct{} // cap 1: the queue holds the waiters the flusher gathers for
	stop   chan struct{} // closed by Close
	ended  chan struct{} // closed when the flusher returns

	// reclaimMu serializes reclaiming (deleting and compacting segments,
	// done by the flusher) with Replay, which reads segment files.
	// Lock order: reclaimMu -> mu.
	reclaimMu sync.Mutex

	syncs        atomic.Uint64
	compactions  atomic.Uint64
	gathers      atomic.Uint64
	gatherMisses atomic.Uint64

	// Owned by the flusher goroutine (by OpenLog before it starts).
	active     File   // the active segment, open for writing
	activeSeq  uint64 // its sequence number (also Log.mu.active)
	activeSize int64  // its size
	allocated  bool   // the active segment was preallocated (Log.allocate)
	zeroed     int64  // the active segment's bytes below this were written (Log.zeroAhead)
	noAllocate bool   // the file system cannot preallocate
	spareBuf   []byte // the previous batch's buffer, reused
	spareOps   []op   // the previous batch's ops, reused
	scan       scanner
	maskBuf    []byte
	window     *time.Timer
	gather     gatherState

	closeOnce sync.Once
	closeErr  error

	readers readers // handles for Read

	mu struct {
		sync.Mutex
		space sync.Cond // broadcast when the queue is taken, or on close or poison

		// The queue: encoded bytes and one op per record, tombstone,
		// barrier or marker, in order.
		buf []byte
		ops []op

		nextID uint64
		index  *recIndex           // records not yet dead (or dead with a tombstone not yet sealed)
		big    map[uint64][]uint64 // live masks of records with more than 64 parts
		segs   map[uint64]*segment // existing segments
		seqs   []uint64            // their sequence numbers, ascending; the last is active
		active uint64              // sequence number of the active segment

		liveRecords int
		liveBytes   int64
		releases    uint64 // parts released since OpenLog (Replay checks it)

		err         error // set once a write or fsync failed: the log is poisoned
		closing     bool  // Close was called
		dirty       bool  // reclaim may find work
		draining    int   // segments worth compacting but draining (LogStats.Draining)
		inCallbacks bool  // the flusher is running callbacks
		waiters     int   // queued ops with a callback
		want        int   // while gathering: wake the flusher once waiters reaches this
		// lazyOnly: the queue holds tombstones alone, queued since
		// lazySince; the flusher was not woken for them, and relTimer
		// wakes it when they are due (Options.ReleaseSyncDelay).
		lazyOnly  bool
		lazySince time.Time
		relTimer  *time.Timer
	}
}

// recState is the in-memory state of a record. It holds no pointers, so
// the index map costs the garbage collector nothing to scan.
type recState struct {
	off   int64  // offset of that copy
	live  uint64 // live parts when parts <= 64 (bit i = part i); see Log.mu.big
	seg   segSeq // segment holding the current copy; 0 until sealed
	size  uint32 // encoded size of that copy, frame included
	parts uint32
	nlive uint32 // parts not yet released
}

// segSeq is a segment's sequence number as the index keeps it: 32 bits
// make a record's state 32 bytes instead of 40, and 4 billion segments
// are more than a log ever writes (a sequence number above that fails the
// write that would need it).
type segSeq uint32

// segment is the bookkeeping of one segment file.
type segment struct {
	seq       uint64
	size      int64 // file size
	validEnd  int64 // end of the last readable record (size unless corrupt)
	live      int   // live records whose current copy is here
	liveBytes int64 // their encoded size
	// deps counts, per other (older) segment, the tombstones here that
	// release a record whose copy was in that segment when the tombstone
	// was written. While that segment exists, these tombstones are needed.
	// needTombs is their sum over existing segments, and dependents is the
	// reverse index (segments with tombstones pointing here, and how many),
	// so that deleting a segment updates the others without a scan.
	deps       map[uint64]int
	dependents map[uint64]int
	needTombs  int
	compacting bool // its copies are queued but not yet durable
	compacted  bool // every needed record and tombstone was copied forward durably
	noCompact  bool // compaction failed once; do not retry
	// passLive is live at the previous reclaim pass; hold is the number of
	// passes the segment is still left uncompacted because live went down
	// (drainPasses after each pass that saw it go down).
	passLive int
	hold     uint8
}

// opKind says what a queued op is.
type opKind uint8

const (
	opRecord      opKind = iota // a record appended by Append
	opMoved                     // a record copied forward by compaction
	opRelease                   // a tombstone from Release; seal fills in its target
	opReleaseCopy               // a tombstone copied forward by compaction; target known
	opBarrier                   // no bytes; done runs when everything before is durable
	opFailed                    // no bytes; done gets err
	opCompacted                 // no bytes; segment seg may go once this is durable
)

// op is one queued item. Its bytes, if any, are buf[start:end] of its batch.
type op struct {
	kind  opKind
	last  bool // opRelease: this release killed the record
	id    uint64
	seg   uint64 // opCompacted: the segment; opReleaseCopy: the target
	start int
	end   int
	done  func(error)
	err   error // opFailed
}

// Append queues a record with parts parts (at least 1) and returns its id.
// Ids grow monotonically and are never reused; 0 is never a valid id and is
// returned when the record was not queued (after Close, after the log was
// poisoned, or for invalid arguments), in which case done gets the error.
//
// done (which may be nil) is called exactly once, from the log's flusher
// goroutine, after an fsync that covers the record (done(nil)) or after the
// write or fsync failed (done(err)); it is never called with nil unless the
// record is durable. After Close it is called with ErrClosed from a new
// goroutine. done must not block for long: it delays every later callback.
// It may call Append, Release and Barrier.
//
// Append copies data; the caller may reuse it when Append returns. Append
// never does I/O, but blocks while MaxPendingBytes are queued (backpressure),
// except when called from a callback.
func (l *Log) Append(data []byte, parts int, done func(error)) uint64 {
	l.mu.Lock()
	for {
		if l.mu.closing {
			l.mu.Unlock()
			failAsync(done, ErrClosed)
			return 0
		}
		var bad error
		switch {
		case l.mu.err != nil:
			bad = l.mu.err
		case parts < 1 || parts > MaxParts:
			bad = fmt.Errorf("%w: %d parts (want 1 to %d)", ErrInvalid, parts, MaxParts)
		case len(data) > MaxRecordSize:
			bad = fmt.Errorf("%w: record of %d bytes (limit %d)", ErrInvalid, len(data), MaxRecordSize)
		}
		if bad != nil {
			l.enqueueLocked(op{kind: opFailed, done: done, err: bad})
			l.mu.Unlock()
			return 0
		}
		// A callback running on the flusher must not wait for the
		// flusher: while callbacks run, the limit is not enforced.
		if len(l.mu.buf) == 0 || int64(len(l.mu.buf)) < l.opts.MaxPendingBytes || l.mu.inCallbacks {
			break
		}
		l.mu.space.Wait()
	}
	id := l.mu.nextID
	l.mu.nextID++
	start := len(l.mu.buf)
	l.mu.buf = appendRecord(l.mu.buf, typeRecord, id, uint32(parts), nil, data)
	size := uint32(len(l.mu.buf) - start)
	r := recState{size: size, parts: uint32(parts), nlive: uint32(parts)}
	if parts <= 64 {
		r.live = fullMask64(parts)
	} else {
		m := make([]uint64, (parts+63)/64)
		for i := range m {
			m[i] = ^uint64(0)
		}
		if rem := parts % 64; rem != 0 {
			m[len(m)-1] = fullMask64(rem)
		}
		l.mu.big[id] = m
	}
	l.mu.index.set(id, r)
	l.mu.liveRecords++
	l.mu.liveBytes += int64(size)
	l.enqueueLocked(op{kind: opRecord, id: id, start: start, end: len(l.mu.buf), done: done})
	l.mu.Unlock()
	return id
}

// Release marks part part of record id released, by queueing a tombstone
// through the same ordered queue as Append: once the done(nil) of any later
// Append (or Barrier) has run, this release is durable too. Release is
// idempotent; unknown ids and parts out of range are ignored, as are calls
// after Close. It never blocks on I/O or on backpressure.
func (l *Log) Release(id uint64, part int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(id, part)
}

// ReleaseAll is Release of part part of each of ids, in order, taking
// Log.mu once: a caller releasing many records at a time does not queue
// for the lock once per record behind compaction, which takes it once per
// record it copies.
func (l *Log) ReleaseAll(ids []uint64, part int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		l.releaseLocked(id, part)
	}
}

// releaseLocked is Release. REQUIRES: l.mu.
func (l *Log) releaseLocked(id uint64, part int) {
	if l.mu.closing {
		return
	}
	r, ok := l.mu.index.get(id)
	if !ok || part < 0 || part >= int(r.parts) || !l.clearPartLocked(id, &r, uint32(part)) {
		return
	}
	l.mu.releases++
	last := r.nlive == 0
	if last {
		l.mu.liveRecords--
		l.mu.liveBytes -= int64(r.size)
		if s := l.mu.segs[uint64(r.seg)]; r.seg != 0 && s != nil {
			s.live--
			s.liveBytes -= int64(r.size)
		}
	}
	if r.seg != 0 {
		// Freed bytes (a dead record) or one more tombstone: either may
		// change what reclaim can do.
		l.mu.dirty = true
	}
	l.mu.index.set(id, r)
	start := len(l.mu.buf)
	l.mu.buf = appendRelease(l.mu.buf, id, uint32(part), 0)
	l.enqueueLocked(op{kind: opRelease, last: last, id: id, start: start, end: len(l.mu.buf)})
}

// Barrier calls done (from the flusher goroutine) once everything appended
// or released before it is durable, or with the error that prevented it.
// After Close, done gets ErrClosed from a new goroutine.
func (l *Log) Barrier(done func(error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closing {
		failAsync(done, ErrClosed)
		return
	}
	l.enqueueLocked(op{kind: opBarrier, done: done})
}

// Stats returns a snapshot of the log's size.
func (l *Log) Stats() LogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LogStats{
		Segments:     len(l.mu.segs),
		LiveRecords:  l.mu.liveRecords,
		LiveBytes:    l.mu.liveBytes,
		Syncs:        l.syncs.Load(),
		Gathers:      l.gathers.Load(),
		GatherMisses: l.gatherMisses.Load(),
		Compactions:  l.compactions.Load(),
		Draining:     l.mu.draining,
	}
	for _, s := range l.mu.segs {
		st.DiskBytes += s.size
	}
	return st
}

// Close writes and syncs everything queued, stops the flusher and closes
// the active segment. It returns the error that poisoned the log, if any.
// Later calls return the same result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.mu.closing = true
		l.mu.space.Broadcast()
		l.mu.Unlock()
		close(l.stop)
		<-l.ended
		l.readers.closeAll()
		l.trimActive()
		cerr := l.active.Close()
		l.mu.Lock()
		l.closeErr = l.mu.err
		l.mu.Unlock()
		if l.closeErr == nil && cerr != nil {
			l.closeErr = fmt.Errorf("store: close active segment: %w", cerr)
		}
	})
	return l.closeErr
}

// enqueueLocked appends o to the queue and wakes the flusher.
//
// REQUIRES: l.mu
func (l *Log) enqueueLocked(o op) {
	if o.end == 0 {
		// No bytes: an empty range at the current end keeps the ops'
		// ranges contiguous, which commit relies on to split batches.
		o.start, o.end = len(l.mu.buf), len(l.mu.buf)
	}
	wasEmpty := len(l.mu.ops) == 0
	l.mu.ops = append(l.mu.ops, o)
	// A tombstone alone does not wake the flusher: nobody waits for it
	// (Options.ReleaseSyncDelay). Anything else does, at once.
	lazy := o.kind == opRelease && o.done == nil && l.opts.ReleaseSyncDelay > 0 && !l.mu.closing
	switch {
	case wasEmpty && lazy:
		l.mu.lazyOnly, l.mu.lazySince = true, time.Now()
		if l.mu.relTimer == nil {
			l.mu.relTimer = time.AfterFunc(l.opts.ReleaseSyncDelay, l.releasesDue)
		} else {
			l.mu.relTimer.Reset(l.opts.ReleaseSyncDelay)
		}
	case wasEmpty || l.mu.lazyOnly && (!lazy || int64(len(l.mu.buf)) >= l.opts.MaxPendingBytes/2):
		l.mu.lazyOnly = false
		signal(l.kick)
	}
	if o.done != nil {
		l.mu.waiters++
		if l.mu.want > 0 && l.mu.waiters >= l.mu.want {
			l.mu.want = 0
			signal(l.enough)
		}
	}
	if l.opts.SyncWindow > 0 && int64(len(l.mu.buf)) >= l.opts.MaxPendingBytes/2 {
		signal(l.full)
	}
}

// releasesDue wakes the flusher for tombstones queued alone
// Options.ReleaseSyncDelay ago (relTimer).
func (l *Log) releasesDue() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.lazyOnly && time.Since(l.mu.lazySince) >= l.opts.ReleaseSyncDelay {
		l.mu.lazyOnly = false
		signal(l.kick)
	}
}

// signal does a non-blocking send on a wake-up channel of capacity 1.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// failAsync calls done(err) from a new goroutine, so that a caller holding
// its own locks is never re-entered.
func failAsync(done func(error), err error) {
	if done != nil {
		go done(err)
	}
}

// fullMask64 returns a mask with the low n bits set (n <= 64).
func fullMask64(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(n) - 1
}

// addDepLocked records that segment s holds a tombstone for a record whose
// copy was in segment target. Nothing is recorded when target is s itself or
// no longer exists.
//
// REQUIRES: l.mu (or OpenLog before the flusher starts)
func (l *Log) addDepLocked(s *segment, target uint64) {
	t := l.mu.segs[target]
	if t == nil || t == s {
		return
	}
	s.deps[target]++
	s.needTombs++
	t.dependents[s.seq]++
}

// dropSegmentLocked removes segment seq from the table and from the
// dependency counts of the others.
//
// REQUIRES: l.mu
func (l *Log) dropSegmentLocked(seq uint64) {
	s := l.mu.segs[seq]
	if s == nil {
		return
	}
	for dep, n := range s.dependents {
		if d := l.mu.segs[dep]; d != nil {
			d.needTombs -= n
			delete(d.deps, seq)
		}
	}
	for target := range s.deps {
		if t := l.mu.segs[target]; t != nil {
			delete(t.dependents, seq)
		}
	}
	delete(l.mu.segs, seq)
}

// clearPartLocked clears part p of record id if it is live, reporting
// whether it was. r is updated; the caller stores it back.
//
// REQUIRES: l.mu (or OpenLog before the flusher starts)
func (l *Log) clearPartLocked(id uint64, r *recState, p uint32) bool {
	if r.parts <= 64 {
		bit := uint64(1) << p
		if r.live&bit == 0 {
			return false
		}
		r.live &^= bit
	} else {
		m := l.mu.big[id]
		bit := uint64(1) << (p % 64)
		if m[p/64]&bit == 0 {
			return false
		}
		m[p/64] &^= bit
	}
	r.nlive--
	return true
}

// livePartsLocked appends the live parts of record id to dst.
//
// REQUIRES: l.mu
func (l *Log) livePartsLocked(id uint64, r *recState, dst []int) []int {
	if r.parts <= 64 {
		for m := r.live; m != 0; m &= m - 1 {
			dst = append(dst, bits.TrailingZeros64(m))
		}
		return dst
	}
	for w, m := range l.mu.big[id] {
		for ; m != 0; m &= m - 1 {
			dst = append(dst, w*64+bits.TrailingZeros64(m))
		}
	}
	return dst
}

// maskBytesLocked encodes record id's live parts as an on-disk mask
// (bit p%8 of byte p/8 set for live part p) into dst.
//
// REQUIRES: l.mu
func (l *Log) maskBytesLocked(id uint64, r *recState, dst []byte) []byte {
	n := maskLen(r.parts)
	dst = dst[:0]
	if r.parts <= 64 {
		var w [8]byte
		le.PutUint64(w[:], r.live)
		return append(dst, w[:n]...)
	}
	for _, m := range l.mu.big[id] {
		dst = le.AppendUint64(dst, m)
	}
	return dst[:n]
}

// applyMask intersects record id's live parts with an on-disk mask (a
// copy made by compaction carries the parts live when it was made).
//
// REQUIRES: l.mu (or OpenLog before the flusher starts)
func (l *Log) applyMask(id uint64, r *recState, mask []byte) {
	if r.parts <= 64 {
		var w [8]byte
		copy(w[:], mask)
		r.live &= le.Uint64(w[:])
		r.nlive = uint32(bits.OnesCount64(r.live))
		return
	}
	m := l.mu.big[id]
	n := 0
	for i := range m {
		var w [8]byte
		if i*8 < len(mask) {
			copy(w[:], mask[i*8:])
		}
		m[i] &= le.Uint64(w[:])
		n += bits.OnesCount64(m[i])
	}
	r.nlive = uint32(n)
}
