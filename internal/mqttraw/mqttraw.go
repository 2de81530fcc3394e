// Package mqttraw holds lean MQTT 3.1.1 client pieces over a plain socket:
// the load generator (cmd/umsbench) writes pre-encoded packets in batches
// and parses only what it must, so that on a small machine the broker, not
// a client library, is what gets measured; tests use them to control the
// bytes on the wire. Standard library only.
package mqttraw

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"
)

// CONNECT flags: user name, password, and clean session or not.
const (
	ConnectClean      byte = 0xC2
	ConnectPersistent byte = 0xC0
)

// Connect opens one MQTT 3.1.1 connection (keep-alive off) with the
// CONNECT flags given (ConnectClean, ConnectPersistent) and waits for a
// successful CONNACK.
func Connect(addr, id, user, pass string, flags byte) (net.Conn, error) {
	return ConnectWith(&net.Dialer{}, addr, id, user, pass, flags)
}

// ConnectWith is Connect through d (for instance from a chosen local
// address); d's Timeout, when zero, is 30 s.
func ConnectWith(d *net.Dialer, addr, id, user, pass string, flags byte) (net.Conn, error) {
	if d.Timeout == 0 {
		dd := *d
		dd.Timeout = 30 * time.Second
		d = &dd
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	body := append(Str("MQTT"), 4, flags, 0, 0) // level 4, keep-alive 0
	body = append(body, Str(id)...)
	body = append(body, Str(user)...)
	body = append(body, Str(pass)...)
	pkt := append(AppendRemaining([]byte{0x10}, len(body)), body...)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		c.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK %v", ack)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// Disconnect sends DISCONNECT and closes c.
func Disconnect(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte{0xE0, 0})
	c.Close()
}

// Str encodes an MQTT UTF-8 string: a 2-byte length, then the bytes.
func Str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// AppendRemaining appends n as an MQTT variable byte integer.
func AppendRemaining(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// Reader splits an MQTT byte stream into packets.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader reads packets from c.
func NewReader(c net.Conn) *Reader { return &Reader{r: bufio.NewReaderSize(c, 64<<10)} }

// Buffered is how many bytes were read but not yet returned as packets.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Next returns the next packet's type, flags and body; the body is valid
// until the following call.
func (r *Reader) Next() (typ, flags byte, body []byte, err error) {
	h, err := r.r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
		if shift > 21 {
			return 0, 0, nil, fmt.Errorf("malformed remaining length")
		}
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return 0, 0, nil, err
	}
	return h >> 4, h & 0x0F, r.buf, nil
}
