package netpark

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// Slot is one connection's parking: its registration with a Poller, the
// time by which the client must have sent something, and the race between
// the three ways a parking ends (the socket becomes readable, the
// connection is closed, the time passes), which exactly one wins. Its zero
// value is ready; the connection keeps it for its life.
//
// The adapter gives up what its reader held (its read buffer) before Park,
// takes it back if Park fails, and otherwise leaves the connection alone:
// wake may already be running on another goroutine.
type Slot struct {
	mu     sync.Mutex
	h      Handle
	parked bool        // registered, and neither woken, closed nor expired
	closed bool        // Close ran
	readBy time.Time   // when expire runs, if not zero
	timer  *time.Timer // runs the expiry at readBy; made on first use
	expire func()
}

// Park registers rc with p. When the socket is readable or hung up, wake
// runs on a new goroutine and must call Woken first; when readBy (if not
// zero) passes first, expire runs instead, on a goroutine of its own. Park
// reports false, and neither runs, when the slot was closed or the poller
// refused.
func (s *Slot) Park(p *Poller, rc syscall.RawConn, readBy time.Time, wake, expire func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	// wake waits for s.mu (Woken), so the slot is in order before it runs.
	if err := p.Park(&s.h, rc, wake); err != nil {
		return false
	}
	s.parked = true
	s.readBy, s.expire = readBy, expire
	if !readBy.IsZero() {
		if s.timer == nil {
			s.timer = time.AfterFunc(time.Until(readBy), func() { s.expired(p) })
		} else {
			s.timer.Reset(time.Until(readBy))
		}
	}
	return true
}

// Woken is the first call of a wake function: the parking is over.
func (s *Slot) Woken() {
	s.mu.Lock()
	s.parked = false
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

// expired runs at readBy: the client sent nothing in time, unless the
// socket woke or was closed meanwhile.
func (s *Slot) expired(p *Poller) {
	s.mu.Lock()
	if !s.parked || time.Now().Before(s.readBy) {
		// Woken or closed meanwhile, or a late run of the timer of an
		// earlier parking (the timer was reset since).
		s.mu.Unlock()
		return
	}
	s.parked = false
	won := p.Cancel(&s.h)
	expire := s.expire
	s.mu.Unlock()
	if won {
		expire()
	}
}

// Close marks the slot closed, before its socket is closed: later Parks
// fail. It reports whether the connection was parked, in which case no
// wake or expiry will run and the caller ends the connection.
func (s *Slot) Close(p *Poller) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	won := false
	if s.parked {
		s.parked = false
		won = p.Cancel(&s.h)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	return won
}

// RawConn returns the socket of c when c is a plain TCP connection: only
// then can a Poller tell when its reader has something to read (a TLS or
// WebSocket layer may hold bytes the socket no longer has).
func RawConn(c net.Conn) (syscall.RawConn, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	return rc, err == nil
}
