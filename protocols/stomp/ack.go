package stomp

import (
	"sort"

	"github.com/go-stomp/stomp/v3/frame"
)

// ACK and NACK settle deliveries in the core: client acks are cumulative
// within their subscription, client-individual ones settle one message.

// handleAck settles the message an ACK or NACK names. direct is false
// when a COMMIT replays it.
func (c *conn) handleAck(f *frame.Frame, nack, direct bool) error {
	if direct {
		if tx, ok := f.Header.Contains(frame.Transaction); ok {
			if err := c.addToTx(tx, f); err != nil {
				return err
			}
			c.receipt(f)
			return nil
		}
	}
	idHeader := frame.Id // STOMP 1.2: the MESSAGE's ack header
	if c.version != "1.2" {
		idHeader = frame.MessageId
	}
	id, ok := f.Header.Contains(idHeader)
	if !ok {
		return protoErr("Missing header", "%s needs a %s header", f.Command, idHeader)
	}
	subID, tag, ok := c.parseMessageID(id)
	if !ok {
		return protoErr("Unknown message id", "'%s' is not a message id of this session", id)
	}
	c.mu.Lock()
	sub := c.subs[subID]
	var tags []uint64
	if sub != nil && !sub.autoAck() {
		p := sub.pending
		i := sort.Search(len(p), func(i int) bool { return p[i] >= tag })
		if i < len(p) && p[i] == tag {
			if sub.ack == frame.AckClient {
				tags = append(tags, p[:i+1]...)
				sub.pending = append(p[:0], p[i+1:]...)
			} else {
				tags = append(tags, tag)
				sub.pending = append(p[:i], p[i+1:]...)
			}
		}
		if sub.gone && len(sub.pending) == 0 {
			delete(c.subs, subID)
		}
	}
	c.mu.Unlock()
	if len(tags) == 0 {
		return protoErr("Unknown message id", "no unacknowledged message '%s'", id)
	}
	requeue := f.Header.Get(hdrRequeue) != "false"
	for _, t := range tags {
		var err error
		if nack {
			err = c.cs.Nack(t, false, requeue)
		} else {
			err = c.cs.Ack(t, false)
		}
		if err != nil {
			return err
		}
	}
	if direct {
		c.receipt(f)
	}
	return nil
}
