package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"
)

// Raw MQTT 3.1.1 pieces for tests that must control the bytes on the wire
// (pipelined publishes, packets cut by a crash). cmd/umsbench has its own
// copy for load: it may import no package of the server's module.

// rawConnect opens one MQTT 3.1.1 connection (keep-alive off) with the
// CONNECT flags given (0xC2: user, password, clean session; 0xC0: user,
// password, kept session) and waits for a successful CONNACK.
func rawConnect(addr, id, user, pass string, flags byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	body := append(rawStr("MQTT"), 4, flags, 0, 0) // level 4, keep-alive 0
	body = append(body, rawStr(id)...)
	body = append(body, rawStr(user)...)
	body = append(body, rawStr(pass)...)
	pkt := append(appendRemaining([]byte{0x10}, len(body)), body...)
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

func rawStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// appendRemaining appends n as an MQTT variable byte integer.
func appendRemaining(b []byte, n int) []byte {
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

// rawReader splits an MQTT byte stream into packets.
type rawReader struct {
	r   *bufio.Reader
	buf []byte
}

func newRawReader(c net.Conn) *rawReader { return &rawReader{r: bufio.NewReaderSize(c, 64<<10)} }

func (r *rawReader) next() (typ, flags byte, body []byte, err error) {
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
