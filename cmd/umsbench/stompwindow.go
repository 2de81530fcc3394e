package main

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// publishWindowed is one publisher of the stomp mode with -receipt-window
// above 1: every SEND asks for a RECEIPT, and up to window of them are
// outstanding at once, as AMQP publishers keep a window of confirms.
// go-stomp's Conn waits for each receipt in turn, so this publisher speaks
// the protocol through go-stomp's frame reader and writer on a connection
// of its own. It returns once its last SEND is receipted.
func publishWindowed(o stompOptions, published, receipts *atomic.Int64, deadline time.Time) error {
	c, err := stompConnectRaw(o)
	if err != nil {
		return err
	}
	defer c.Close()
	slots := make(chan struct{}, o.receiptWindow)
	readErr := make(chan error, 1)
	go func() { readErr <- readReceipts(c, slots, receipts) }()

	w := frame.NewWriterSize(c, 64<<10)
	sender := newSenderID()
	persistent := strconv.FormatBool(o.persistent)
	for n := 0; time.Now().Before(deadline); n++ {
		seq := published.Add(1)
		if o.count > 0 && seq > o.count {
			published.Add(-1)
			break
		}
		if err := takeSlot(slots, readErr); err != nil {
			return err
		}
		body := make([]byte, o.size)
		putStamp(body, time.Now().UnixNano(), sender, uint32(n))
		f := frame.New("SEND", "destination", o.dest, "content-type", "application/octet-stream",
			"content-length", strconv.Itoa(len(body)), "persistent", persistent, "receipt", strconv.Itoa(n))
		f.Body = body
		if err := w.Write(f); err != nil {
			return err
		}
	}
	// Every slot is free once the last RECEIPT is in.
	for range o.receiptWindow {
		if err := takeSlot(slots, readErr); err != nil {
			return err
		}
	}
	c.Write([]byte("DISCONNECT\n\n\x00"))
	return nil
}

// receiptTimeout bounds the wait for a RECEIPT when the window is full.
const receiptTimeout = 30 * time.Second

// takeSlot takes a slot of the window, waiting for a RECEIPT to free one.
func takeSlot(slots chan struct{}, readErr <-chan error) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(receiptTimeout)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case err := <-readErr:
		return fmt.Errorf("stomp: waiting for receipts: %w", err)
	case <-t.C:
		return fmt.Errorf("stomp: no RECEIPT in %v", receiptTimeout)
	}
}

// readReceipts reads the publisher's connection: each RECEIPT frees a
// slot of the window. An ERROR frame, or any other frame, ends it.
func readReceipts(c net.Conn, slots chan struct{}, receipts *atomic.Int64) error {
	r := frame.NewReaderSize(c, 64<<10)
	for {
		f, err := r.Read()
		if err != nil {
			return err
		}
		if f == nil { // heart-beat
			continue
		}
		switch f.Command {
		case "RECEIPT":
			receipts.Add(1)
			<-slots
		case "ERROR":
			return fmt.Errorf("stomp: ERROR %s: %s", f.Header.Get("message"), f.Body)
		default:
			return fmt.Errorf("stomp: unexpected %s frame", f.Command)
		}
	}
}
