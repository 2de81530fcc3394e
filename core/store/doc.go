// Package store is UMS's durable storage: [Log], the segmented record log
// that holds persistent messages, and [Meta], a small key/value map for
// definitions (exchanges, queues, bindings, users). Both write through an
// [FS], so tests can run them on [MemFS] and simulate crashes.
//
// The promise the broker builds on: a confirmed persistent message is never
// lost. [Log.Append] calls its done callback with nil only after an fsync
// that covers the record, so a publisher confirm, PUBACK or RECEIPT sent
// from done is safe.
//
// # Files
//
// A log directory holds only segment files, named after their sequence
// number, 20 digits zero-padded:
//
//	00000000000000000001.seg
//	00000000000000000002.seg   <- the highest number is the active segment
//
// Sequence numbers are never reused. A segment whose header cannot be read
// is renamed to NNN.seg.corrupt and ignored. A Meta directory holds
// meta.log and, during a rewrite, meta.log.tmp.
//
// # Segment layout
//
// Every segment starts with a 32-byte header, followed by records packed
// back to back with no padding and no block structure. Integers are
// little-endian. Once its header is durable, a new segment is extended
// to Options.SegmentSize with zeros (fallocate, where the file system has
// it), so that writing a batch never changes the file's size and its
// fsync has no size to record. Space reserved that way is marked
// unwritten, and the fsync after the first write into a block waits for
// the file system's journal to record the block as written; so the
// flusher also writes zeros over the next megabyte just past the records
// whenever less than 64 KiB of written space is left ahead of a small
// batch, and that batch's fsync makes them durable with it. The batches
// after it overwrite written blocks and their fsync (fdatasync on Linux)
// flushes only their data. A full segment, and the active one at Close,
// is trimmed to its records; zeros found after the last record at
// recovery are cut off the same way and are not damage.
//
//	header (32 bytes)
//	+--------------------+-------------+-------------+-------------+----------+
//	| magic (8)          | version (4) | seq (8)     | next id (8) | crc (4)  |
//	| 89 'UMSSEG' 0a     | 1           | = file name | at creation | CRC-32C  |
//	+--------------------+-------------+-------------+-------------+----------+
//	                                          crc covers the first 28 bytes
//
//	record frame
//	+------------+-----------+---------------------------------------------+
//	| length (4) | crc (4)   | body (length bytes)                         |
//	+------------+-----------+---------------------------------------------+
//	                crc: CRC-32C (Castagnoli) of the whole body
//
//	body, by its first byte:
//	1 record     | type | id (8) | parts (4) | payload ...                 |
//	2 tombstone  | type | id (8) | part (4)  | target (8)                  |
//	3 moved      | type | id (8) | parts (4) | live mask (ceil(parts/8)) | payload ... |
//
// A record (type 1) has all its parts live. A tombstone (type 2) releases
// one part of record id; target is the segment that held the record's
// current copy when the tombstone was written, which is what reclaiming
// needs to know (below). A moved record (type 3) is a copy made by
// compaction, with the same id; bit p%8 of byte p/8 of its mask is set if
// part p was live when the copy was made. The meta file uses the same
// header (magic 89 'UMSMET' 0a, seq and next id 0) and frame; its bodies
// are
//
//	1 put        | type | key length (4) | key | value |
//	2 delete     | type | key length (4) | key |
//
// Every length is checked before anything is read or allocated: a frame
// length must be at least 1, at most the format limit (MaxRecordSize plus
// the largest mask plus 13) and at most the bytes left in the file, so a
// corrupt length can never make a reader allocate more than the file's
// size. A body must then have exactly the size its type implies.
//
// Record ids are assigned in Append order, so file order is id order
// except for moved records. The header's next id, together with the
// highest id found, gives the next id after a restart, even when every
// record ever written has been deleted.
//
// # Group commit
//
// Append, Release and Barrier encode under Log.mu into one shared buffer
// and queue an op (with its callback) behind it. One flusher goroutine owns
// the active segment: it takes the whole queue, fills in the checksums and
// tombstone targets, writes it with one Write per segment it lands in
// (a batch that would overflow the active segment is split, and the new
// segment gets the rest), fsyncs, and then runs the callbacks in order.
//
// A queue of tombstones alone (releases, with no record, barrier or
// compaction step queued beside them, so no callback) waits: nobody waits
// for it, and a release is promised only by the done of a later Append or
// Barrier, whose batch takes it along. The flusher lets it grow until
// anything else is queued, the queue passes half of MaxPendingBytes, the
// log closes, or Options.ReleaseSyncDelay (50 ms) passes. A consumer
// acknowledging a backlog with nothing else stored so costs one write and
// fsync per 50 ms instead of one per batch; after a machine crash,
// releases of the last 50 ms at most may be undone (their messages
// delivered again), and nothing acknowledged to a publisher is lost.
//
// Options.SyncWindow defaults to 0: the flusher starts the next batch as
// soon as an fsync returns, so everything that arrived during an fsync
// shares the next one. The batch size adapts to the load with no added
// latency. After running a batch's callbacks the flusher yields once,
// letting the writers those callbacks woke queue their next record in time
// to join the next batch. Measured with BenchmarkAppendSync and
// BenchmarkSyncWindow (1 KiB records, ext4 on a virtio disk whose fsync
// takes about 0.2 ms, 2 CPUs; each writer waits for its confirm):
//
//	writers  window 0                     window 100µs        window 1ms
//	1        4.9k rec/s, p50 0.20 ms      0.7k/s, p50 1.3 ms  0.7k/s, p50 1.4 ms
//	16       47-62k rec/s, p50 0.23-0.31  10k/s,  p50 1.6 ms  11k/s,  p50 1.3 ms
//	256      313-320k rec/s, p50 0.77 ms  254k/s, p50 0.8 ms  145k/s, p50 1.7 ms
//
// (the yield alone took 16 writers from 38k to 62k records/s). A window
// never helped: under load, batches are already large (256 writers: one
// fsync per 145 records), and a Go timer shorter than a millisecond
// sleeps about a millisecond on this kernel, so any window costs a whole
// millisecond per batch. It remains an option for devices whose cost is
// per fsync call rather than per byte.
//
// With the default, the flusher gathers instead (gatherState): writers
// that wait for each record before the next come back a round trip after
// their callback, just too late for the batch that was started with what
// arrived during the fsync; they then wait a whole fsync more, and the
// writers settle into two halves that take turns ([1 3 1 3 ...] in
// TestGatherWaitsForReturningWriters). So the flusher waits, at most one
// fsync's time, until as many records with callbacks are queued as the
// last batch released plus those that arrived while it was written; the
// wait ends as soon as they are, which no timer's granularity delays. A
// wait that times out counts as a miss and each miss in a row doubles the
// batches written before the next wait, so a lone writer (which never
// waits for itself) and publishers that stream without waiting for each
// confirm are not slowed down. Measured: BenchmarkAppendSync 1 KiB, 16
// writers 31-34k records/s before, 35-48k after (256 writers 154-183k
// before, 185-210k after; 1 writer unchanged); STOMP with 4 publishers
// each waiting for its receipt, 3,255-4,308 msg/s before, 4,555-5,333
// after; AMQP at 5,000 persistent msg/s with a confirm window, p99
// unchanged (the waits stay off: 1-3 probes a second).
//
// Backpressure: the queue is bounded by Options.MaxPendingBytes, 4 MiB by
// default; Append blocks while it is full (except when called from a
// callback, since the flusher cannot wait for itself). A writer that
// streams without waiting reached the same 350-600 MB/s with limits of 1,
// 4, 16 and 64 MiB (BenchmarkStreaming, noisy); 4 MiB keeps the memory
// held (at most the queue plus the batch being written) and the queueing
// delay behind it small, while batches stay large enough on faster disks.
//
// A failed write or fsync fails the callbacks of the whole batch with that
// error and poisons the log: every later Append and Barrier fails with it,
// and Close returns it. An fsync error cannot be retried safely: Linux
// reports a writeback error once and may then drop the dirty pages, so the
// next fsync can succeed although the data never reached the disk (the
// 2018 "fsyncgate" that made PostgreSQL panic on fsync failure). Restart to
// recover from what is really on disk.
//
// # Reclaiming space
//
// In memory, every record not yet dead has a state (segment and offset of
// its current copy, live parts), and every segment has its live record
// count and bytes, and the number of its tombstones per target segment.
// After each batch the flusher reclaims:
//
//   - A non-active segment is deleted when it holds no live record and
//     none of its tombstones is needed any more, that is, all their target
//     segments are gone (a tombstone aimed at its own segment never holds
//     it). Deletion goes in waves, one SyncDir each, so a tombstone's
//     segment is never removed before the removal of its target is durable.
//   - A non-active segment is compacted when its live records plus needed
//     tombstones fall below 50 % of its size: its live records are copied,
//     as moved records with their remaining live parts and the same ids,
//     and its needed tombstones are copied as they are, to the active
//     segment through the normal write path; a marker queued behind them
//     lets the segment be deleted once the copies are durable. At 50 %,
//     copying L bytes frees at least 2L, so the extra writing is less than
//     the space freed, and old segments are at least half live: disk use
//     stays under about twice the live data plus the active segment. This
//     is how one long-lived record stops pinning its segment, and how a
//     segment kept only by a few tombstones (a slowly drained queue whose
//     acks are spread over many segments) is freed.
//     A segment that is losing records (one lost a record in the last
//     eight reclaim passes) is left alone: records released in the order
//     they were written, a queue drained in order or scheduled messages
//     falling due, free their segment whole a moment later, and copying
//     them forward would write them twice and make reads of them wait for
//     the copies to be durable. LogStats.Draining counts such segments.
//
// Compaction runs on the flusher goroutine between batches, scanning the
// victims sequentially (up to 16 MiB of them per pass, at least one) while
// writers keep queueing. A record costs 21 bytes on disk besides its
// payload, a release 29 bytes (BenchmarkDiskBytes).
//
// # Recovery
//
// OpenLog reads the segments in sequence order:
//
//  1. A segment too short to hold a record is removed (a crash while it was
//     being created). One whose header is bad is renamed aside and reported
//     in RecoveryReport.Corrupt; a newer format version is an error.
//  2. Records are read in order. A record adds its id to the index; a
//     moved record intersects the live parts already known with its mask
//     (so releases written before the copy, and the original copy if its
//     segment was not deleted yet, agree); a tombstone clears its part. A
//     record whose parts are all released is dropped. Tombstones for ids
//     not found are ignored.
//  3. At the first frame that is short, has a bad length or checksum, or
//     does not decode: if only zeros follow, this is preallocated space,
//     cut off without a report. Otherwise, in the last segment this is a torn tail (the crash
//     interrupted a batch that was never acknowledged): the file is
//     truncated at the last good record, synced, and the bytes counted in
//     RecoveryReport.TruncatedBytes. In an older segment it is corruption:
//     without a resync marker nothing after it can be trusted, so the rest
//     of that segment is lost; it is reported loudly (Corrupt and an error
//     log) and recovery continues with the next segment, whose records
//     survive.
//  4. A new active segment is created (the log never appends after a
//     tail that was torn), dead segments are deleted, and the flusher
//     starts. [Log.Replay] then reads the live records in id order.
//
// Recovery itself is crash-safe: it only truncates a tail that was never
// acknowledged, creates a new segment, and deletes what is dead, so a
// crash during recovery leaves a directory that recovers the same way.
// OpenLog plus Replay of 1,000,000 records of 64 bytes with 1 to 100 parts
// takes about 0.8 s (BenchmarkRecovery), most of it inserting into the
// in-memory index.
//
// Meta reads its one file the same way; a bad tail is cut off (logged and
// in [Meta.Report]); a bad header is an error, so definitions are never
// discarded silently.
//
// # Locks
//
// Log: lock order reclaimMu -> mu; mu is never held across I/O and never
// while a callback runs.
//
//   - Log.mu guards the queue, the record index, the segment table, the
//     counters, and the poisoned and closing state. Append, Release
//     (ReleaseAll: once for many records) and Barrier hold it briefly to
//     encode and queue; the flusher holds it to
//     take a batch and to seal it (assign segments and tombstone targets).
//     Functions that need it end in Locked or say REQUIRES: l.mu.
//   - Log.reclaimMu serializes reclaiming (flusher, with TryLock, so the
//     flusher never waits) with Replay, which reads segment files that
//     reclaiming would delete.
//   - The active file, its size and the batch buffers belong to the
//     flusher goroutine alone; OpenLog sets them up before starting it.
//   - Callbacks run on the flusher goroutine with no lock held. They must
//     not block for long; they may call Append, Release and Barrier.
//
// Meta has one mutex, held across its I/O: definitions change rarely and
// each change is an fsync anyway.
package store
