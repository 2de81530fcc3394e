package stomp

import (
	"strconv"
	"strings"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/protocols/stomp/wire"
)

// Deliveries to the client: core callbacks put items in the connection's
// core.Pump without blocking; its writer goroutine, which runs only while
// items wait, writes them as MESSAGE frames (and receipts that waited for
// the store) in one system call per batch.

// outItem is something for the writer: a delivery of sub, a subscription
// cancelled by the server, or a receipt (err: the operation failed).
type outItem struct {
	d         core.Delivery
	sub       *subscription
	cancelled bool
	receipt   string
	err       error
	last      bool // DISCONNECT's receipt: the connection ends after it
	flush     bool // nothing but what a direct receipt left (conn.rest)
}

// send writes a batch (core.Pump's Write).
func (c *conn) send(batch []outItem) {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	var (
		requeue []uint64
		fail    *frame.Frame
		last    bool
	)
	c.mu.Lock()
loop:
	for i := range batch {
		it := &batch[i]
		switch {
		case it.flush:
			continue // writeLocked writes conn.rest first
		case it.cancelled:
			if it.sub.gone {
				continue
			}
			fail = errorFrame(protoErr("Subscription cancelled", "the queue of subscription '%s' was deleted", it.sub.id), nil)
			break loop
		case it.sub != nil:
			if it.sub.gone {
				if !it.sub.autoAck() {
					requeue = append(requeue, it.d.Tag)
				}
				continue
			}
			if !it.sub.autoAck() {
				it.sub.pending = append(it.sub.pending, it.d.Tag)
			}
			buf = c.appendMessage(buf, it)
		case it.err != nil:
			fail = errorFrame(it.err, nil)
			if it.receipt != "" {
				fail.Header.Set(frame.ReceiptId, it.receipt)
			}
			break loop
		default:
			buf = wire.AppendFrame(buf, frame.New(frame.RECEIPT, frame.ReceiptId, it.receipt), c.esc)
			if it.last {
				last = true
				break loop
			}
		}
	}
	sent := c.lastSent
	c.mu.Unlock()
	if fail != nil {
		buf = wire.AppendFrame(buf, fail, c.esc)
	}
	c.wmu.Lock()
	c.writeLocked(buf)
	c.wmu.Unlock()
	putWriteBuf(bp, buf)
	if fail != nil {
		c.closeSocket()
	}
	if last && sent != nil {
		close(sent)
	}
	for _, t := range requeue {
		_ = c.cs.Nack(t, false, true)
	}
}

// appendMessage appends the MESSAGE frame of a delivery. REQUIRES: c.mu
// (for the subscription).
func (c *conn) appendMessage(buf []byte, it *outItem) []byte {
	m := it.d.Msg
	id := c.messageID(it.sub.id, it.d.Tag)
	f := &frame.Frame{Command: frame.MESSAGE, Header: frame.NewHeader(
		frame.Subscription, it.sub.id,
		frame.Destination, destinationOf(m.Exchange, m.RoutingKey),
		frame.MessageId, id,
		hdrRedelivered, strconv.FormatBool(it.d.Redelivered),
	), Body: m.Body}
	if c.version == "1.2" && !it.sub.autoAck() {
		f.Header.Add(frame.Ack, id)
	}
	appendMessageHeaders(f.Header, m)
	f.Header.Add(frame.ContentLength, strconv.Itoa(len(m.Body)))
	return wire.AppendFrame(buf, f, c.esc)
}

// messageID is "T_<subscription>@@<session>@@<delivery tag>", RabbitMQ's
// form: an ACK names the subscription and the delivery.
func (c *conn) messageID(sub string, tag uint64) string {
	return "T_" + sub + "@@" + c.session + "@@" + strconv.FormatUint(tag, 10)
}

// parseMessageID reads a message id of this connection.
func (c *conn) parseMessageID(id string) (sub string, tag uint64, ok bool) {
	rest, ok := strings.CutPrefix(id, "T_")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndex(rest, "@@")
	if i < 0 {
		return "", 0, false
	}
	tag, err := strconv.ParseUint(rest[i+2:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	sub, ok = strings.CutSuffix(rest[:i], "@@"+c.session)
	return sub, tag, ok
}
