package core

import (
	"fmt"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// Paging in.
//
// A durable queue keeps the bodies of its first PageAfter ready messages in
// memory; the entries behind them hold only the location of their stored
// copy. When a paged-out entry reaches the head, dispatch stops there and a
// page-in reads the bodies of the next pageInBatch paged-out entries from
// the message store, outside q.mu (a read may wait for a group commit),
// attaches them and dispatches again.
//
// A failed read never drops a message: the entry stays where it is, the
// queue delivers nothing past it, the "message-store-read" alarm is raised
// and the read is retried with a growing delay (pageInRetryMin doubling up
// to pageInRetryMax) until it succeeds, which clears the alarm.

const (
	pageInBatch    = 256
	pageInRetryMin = 50 * time.Millisecond
	pageInRetryMax = 5 * time.Second
)

// AlarmMessageRead is raised while stored messages cannot be read back.
const AlarmMessageRead = "message-store-read"

// pageIn is a queue's page-in state. REQUIRES: q.mu.
type pageIn struct {
	running bool          // a page-in goroutine is reading
	err     error         // the last read failed: waiting for the retry
	delay   time.Duration // the delay before the next retry
	retry   clock.Timer
}

// pageInLocked starts reading the paged-out bodies at the head of the queue
// back, unless a read is running or waiting for its retry. REQUIRES: q.mu.
func (q *Queue) pageInLocked() {
	p := &q.pageIn
	if p.running || p.err != nil || q.deleted {
		return
	}
	ids := q.pagedHeadLocked(pageInBatch)
	if len(ids) == 0 {
		return
	}
	p.running = true
	go q.runPageIn(ids)
}

// pagedHeadLocked returns the store ids of up to n paged-out entries, in
// delivery order. REQUIRES: q.mu.
func (q *Queue) pagedHeadLocked(n int) []uint64 {
	var ids []uint64
	for i := len(q.levels) - 1; i >= 0 && len(ids) < n; i-- {
		r := &q.levels[i]
		for j := 0; j < r.len() && j < n && len(ids) < n; j++ {
			if e := r.at(j); e.msg == nil {
				ids = append(ids, e.sid)
			}
		}
	}
	return ids
}

// runPageIn reads ids and attaches what it read, then dispatches.
func (q *Queue) runPageIn(ids []uint64) {
	msgs, err := q.readBodies(ids)
	q.mu.Lock()
	q.pageIn.running = false
	q.attachLocked(msgs)
	q.pageInDoneLocked(err)
	if err == nil {
		q.dispatchLocked(q.now())
	}
	q.unlock()
}

// pageInNowLocked reads the paged-out head in the caller's goroutine (for
// basic.get), releasing q.mu while reading. REQUIRES: q.mu.
func (q *Queue) pageInNowLocked() error {
	ids := q.pagedHeadLocked(pageInBatch)
	q.mu.Unlock()
	msgs, err := q.readBodies(ids)
	q.mu.Lock()
	q.attachLocked(msgs)
	q.pageInDoneLocked(err)
	if err != nil {
		return errorf(ErrInternal, "cannot read a stored message of queue '%s' in vhost '%s': %v", q.Name, q.vhost.Name, err)
	}
	return nil
}

// readBodies reads the messages of ids, stopping at the first failure.
// A store that reads many records at once (batchReader) gets them in one
// call: the records of a backlog lie close together in the log, so it
// reads them with a few system calls instead of one each.
func (q *Queue) readBodies(ids []uint64) (map[uint64]*Message, error) {
	msgs := make(map[uint64]*Message, len(ids))
	b := q.vhost.broker
	br, ok := b.msgs.(batchReader)
	if !ok {
		for _, id := range ids {
			m, err := b.readStored(id)
			if err != nil {
				return msgs, err
			}
			msgs[id] = m
		}
		return msgs, nil
	}
	err := readStoredMany(br, ids, func(i int, m *Message) { msgs[ids[i]] = m })
	return msgs, err
}

// readStoredMany reads the stored messages of ids with one ReadMany and
// hands each to got with its index, in order, stopping at the first that
// cannot be read or decoded.
func readStoredMany(br batchReader, ids []uint64, got func(i int, m *Message)) error {
	data := make([][]byte, len(ids))
	n, err := br.ReadMany(ids, data)
	for i := range n {
		_, m, _, derr := decodeRecord(data[i])
		if derr != nil {
			return fmt.Errorf("decoding stored message %d: %w", ids[i], derr)
		}
		got(i, m)
	}
	return err
}

// attachLocked gives the paged-out entries their bodies. REQUIRES: q.mu.
func (q *Queue) attachLocked(msgs map[uint64]*Message) {
	if len(msgs) == 0 || q.deleted {
		return
	}
	left := len(msgs)
	for i := len(q.levels) - 1; i >= 0 && left > 0; i-- {
		r := &q.levels[i]
		for j := 0; j < r.len() && left > 0; j++ {
			e := r.at(j)
			if e.msg != nil {
				continue
			}
			if m, ok := msgs[e.sid]; ok {
				e.msg = m
				left--
			}
		}
	}
}

// pageInDoneLocked records the outcome of a read: a failure is reported and
// retried later, a success after failures clears the report. REQUIRES: q.mu.
func (q *Queue) pageInDoneLocked(err error) {
	p := &q.pageIn
	b := q.vhost.broker
	if err == nil {
		if p.err != nil {
			p.err, p.delay = nil, 0
			if p.retry != nil {
				p.retry.Stop()
			}
			b.readRecovered(q)
		}
		return
	}
	if p.delay == 0 {
		p.delay = pageInRetryMin
	} else if p.delay *= 2; p.delay > pageInRetryMax {
		p.delay = pageInRetryMax
	}
	first := p.err == nil
	p.err = err
	if first {
		b.readFailed(q, err)
	}
	b.log.Error("cannot read stored messages back; the queue waits for them and retries",
		"queue", q.Name, "vhost", q.vhost.Name, "retry_in", p.delay, "err", err)
	if p.retry != nil {
		p.retry.Stop()
	}
	p.retry = q.vhost.broker.clock.AfterFunc(p.delay, q.retryPageIn)
}

// retryPageIn runs when a failed read's delay is over.
func (q *Queue) retryPageIn() {
	q.mu.Lock()
	if q.pageIn.err == nil || q.deleted || q.pageIn.running {
		q.mu.Unlock()
		return
	}
	ids := q.pagedHeadLocked(pageInBatch)
	q.pageIn.running = true
	q.mu.Unlock()
	q.runPageIn(ids)
}

// readStored reads a stored message back.
func (b *Broker) readStored(id uint64) (*Message, error) {
	data, err := b.msgs.Read(id)
	if err != nil {
		return nil, err
	}
	_, msg, _, err := decodeRecord(data)
	if err != nil {
		return nil, fmt.Errorf("decoding stored message %d: %w", id, err)
	}
	return msg, nil
}

// readFailed raises the message-store-read alarm for q.
func (b *Broker) readFailed(q *Queue, err error) {
	b.readFailedAt(q, fmt.Sprintf("queue '%s' in vhost '%s'", q.Name, q.vhost.Name), err)
}

// readFailedAt raises the message-store-read alarm for what (a queue or a
// delayed exchange's scheduler), identified by key.
func (b *Broker) readFailedAt(key any, what string, err error) {
	b.flow.mu.Lock()
	if b.readFailing == nil {
		b.readFailing = make(map[any]struct{})
	}
	b.readFailing[key] = struct{}{}
	n := len(b.readFailing)
	b.flow.mu.Unlock()
	b.SetFault(AlarmMessageRead, fmt.Sprintf("%d queue(s) or delayed exchange(s) cannot read stored messages; last error on %s: %v",
		n, what, err), true)
}

// readRecovered clears key's part of the message-store-read alarm.
func (b *Broker) readRecovered(key any) {
	b.flow.mu.Lock()
	delete(b.readFailing, key)
	n := len(b.readFailing)
	b.flow.mu.Unlock()
	if n == 0 {
		b.SetFault(AlarmMessageRead, "", false)
	}
}
