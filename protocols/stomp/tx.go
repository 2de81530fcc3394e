package stomp

import (
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// Transactions: SEND, ACK and NACK frames of a transaction wait in it
// until COMMIT replays them in order; ABORT (or the end of the
// connection) drops them. COMMIT's receipt goes out once what it did is
// durable.

// maxTxFrames bounds the frames a connection's open transactions hold;
// their bodies are bounded by four maximum frame sizes.
const maxTxFrames = 10_000

type transaction struct {
	frames []*frame.Frame
	bytes  int
}

// endTx forgets transaction tx.
func (c *conn) endTx(tx string, t *transaction) {
	delete(c.txs, tx)
	c.txFrames -= len(t.frames)
	c.txBytes -= t.bytes
}

func txID(f *frame.Frame) (string, error) {
	tx, ok := f.Header.Contains(frame.Transaction)
	if !ok || tx == "" {
		return "", protoErr("Missing header", "%s needs a transaction header", f.Command)
	}
	return tx, nil
}

func (c *conn) handleBegin(f *frame.Frame) error {
	tx, err := txID(f)
	if err != nil {
		return err
	}
	if _, dup := c.txs[tx]; dup {
		return protoErr("Bad transaction", "transaction '%s' has already begun", tx)
	}
	if len(c.txs) >= maxTxFrames {
		return protoErr("Transaction too large", "more than %d open transactions", maxTxFrames)
	}
	if c.txs == nil {
		c.txs = make(map[string]*transaction)
	}
	c.txs[tx] = &transaction{}
	c.receipt(f)
	return nil
}

// addToTx keeps a frame of transaction tx for its COMMIT.
func (c *conn) addToTx(tx string, f *frame.Frame) error {
	t := c.txs[tx]
	if t == nil {
		return protoErr("Bad transaction", "transaction '%s' has not begun", tx)
	}
	if c.txFrames >= maxTxFrames || c.txBytes+len(f.Body) > c.srv.limits.MaxFrameSize*4 {
		return protoErr("Transaction too large", "open transactions hold more than %d frames or %d bytes", maxTxFrames, c.srv.limits.MaxFrameSize*4)
	}
	t.frames = append(t.frames, f)
	t.bytes += len(f.Body)
	c.txFrames++
	c.txBytes += len(f.Body)
	return nil
}

func (c *conn) handleCommit(f *frame.Frame) error {
	tx, err := txID(f)
	if err != nil {
		return err
	}
	t := c.txs[tx]
	if t == nil {
		return protoErr("Bad transaction", "transaction '%s' has not begun", tx)
	}
	c.endTx(tx, t)
	for _, g := range t.frames {
		switch g.Command {
		case frame.SEND:
			err = c.handleSend(g, false)
		case frame.ACK:
			err = c.handleAck(g, false, false)
		case frame.NACK:
			err = c.handleAck(g, true, false)
		}
		if err != nil {
			return err
		}
	}
	if id, ok := f.Header.Contains(frame.Receipt); ok {
		c.srv.Broker.Sync(func(err error) { c.out.Put(outItem{receipt: id, err: err}) })
	}
	return nil
}

func (c *conn) handleAbort(f *frame.Frame) error {
	tx, err := txID(f)
	if err != nil {
		return err
	}
	t := c.txs[tx]
	if t == nil {
		return protoErr("Bad transaction", "transaction '%s' has not begun", tx)
	}
	c.endTx(tx, t)
	c.receipt(f)
	return nil
}

// disconnectWait bounds how long DISCONNECT waits for its receipt to go
// out after earlier receipts.
const disconnectWait = 5 * time.Second

// handleDisconnect ends the connection; a receipt goes out after every
// earlier receipt (so after every earlier persistent SEND is durable).
func (c *conn) handleDisconnect(f *frame.Frame) {
	id, ok := f.Header.Contains(frame.Receipt)
	if !ok {
		return
	}
	sent := make(chan struct{})
	c.mu.Lock()
	c.lastSent = sent
	c.mu.Unlock()
	c.srv.Broker.Sync(func(error) { c.out.Put(outItem{receipt: id, last: true}) })
	t := time.NewTimer(disconnectWait)
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
	case <-c.srv.done:
	}
}
