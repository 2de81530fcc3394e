// Package connlimit bounds the number of open connections of a listener
// (--max-connections).
//
// Connections beyond the limit are still accepted, up to Spare of them at
// a time, and marked: the protocol server asks Refused and turns the
// client away the protocol's way (AMQP connection.close 530, MQTT CONNACK
// "quota exceeded", STOMP ERROR), which is kinder than a reset socket and
// tells the client why. Beyond the limit and the spare places, a new
// connection is closed as soon as it is accepted, so a flood of clients
// costs neither goroutines nor buffers.
package connlimit

import (
	"fmt"
	"net"
	"sync"
)

// Spare is how many connections beyond the limit may be open at once to
// be refused. Their servers' handshake timeouts (10 s) bound how long
// each holds its place.
const Spare = 32

// Error says that a connection came beyond its listener's limit.
type Error struct {
	Max int // the listener's limit
}

func (e *Error) Error() string {
	return fmt.Sprintf("connection limit (%d) of the listener is reached", e.Max)
}

// Listener counts the open connections accepted through it.
type Listener struct {
	net.Listener
	max int

	mu       sync.Mutex
	live     int // connections within the limit
	refusing int // connections beyond it, open to be refused
}

// Wrap returns l limited to max open connections; max <= 0 returns l.
func Wrap(l net.Listener, max int) net.Listener {
	if max <= 0 {
		return l
	}
	return &Listener{Listener: l, max: max}
}

// Accept returns the next connection: within the limit, or marked to be
// refused (Refused) while spare places last. Connections beyond those are
// closed here.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		over := false
		switch {
		case l.live < l.max:
			l.live++
		case l.refusing < Spare:
			l.refusing++
			over = true
		default:
			l.mu.Unlock()
			c.Close() // nothing to report: the client just sees the socket end
			continue
		}
		l.mu.Unlock()
		return &Conn{Conn: c, l: l, over: over}, nil
	}
}

// Open returns the number of connections within the limit and of those
// beyond it that are being refused.
func (l *Listener) Open() (live, refusing int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live, l.refusing
}

// Conn is a connection accepted by a Listener; Close gives its place back.
type Conn struct {
	net.Conn
	l    *Listener
	over bool
	once sync.Once
}

// Close closes the connection and frees its place.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.over {
			c.l.refusing--
		} else {
			c.l.live--
		}
		c.l.mu.Unlock()
	})
	return err
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Socket returns the connection under c's listener count, or c itself when
// it is not counted: what reads, writes and parks the socket directly. A
// TLS or WebSocket connection is returned as it is (its own layer may hold
// bytes the socket no longer has).
func Socket(c net.Conn) net.Conn {
	if lc, ok := c.(*Conn); ok {
		return lc.Conn
	}
	return c
}

// Refused returns an *Error when c (or the connection it wraps: TLS,
// WebSocket) was accepted beyond its listener's limit, else nil.
func Refused(c net.Conn) error {
	for c != nil {
		if lc, ok := c.(*Conn); ok {
			if lc.over {
				return &Error{Max: lc.l.max}
			}
			return nil
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}
