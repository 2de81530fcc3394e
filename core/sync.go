package core

import "errors"

// barrierStore is a MessageStore that can report when everything written
// before is durable ([store.Log.Barrier] does).
type barrierStore interface {
	Barrier(done func(error))
}

// errNoBarrier is what Sync reports for a message store that cannot wait
// for its writes: the caller must not claim durability it cannot check.
var errNoBarrier = errors.New("message store cannot wait for its writes to be durable")

// Sync calls done once every message stored and every stored message
// released (acknowledged, rejected, dropped) before the call is durable,
// or with the error that prevented it. Transactions use it: tx.commit-ok
// covers the publishes and acks of the transaction. done is called from
// another goroutine unless the broker keeps nothing on disk, in which case
// it is called at once with nil. It must not block.
func (b *Broker) Sync(done func(error)) {
	if b.msgs == nil {
		done(nil)
		return
	}
	s, ok := b.msgs.(barrierStore)
	if !ok {
		go done(errNoBarrier)
		return
	}
	s.Barrier(done)
}
