//go:build linux

package netpark

import (
	"errors"
	"sync"
	"syscall"
)

// events is how many events one epoll_wait returns at most.
const events = 128

// stopToken is the token of the pipe that stops the event loop; sockets'
// tokens start at 1.
const stopToken = 0

// Poller waits for parked sockets to become readable. Its zero value is
// not usable; make one with New and end it with Close.
type Poller struct {
	epfd  int
	pipe  [2]int        // written by Close to stop the loop
	ended chan struct{} // closed when the loop returns

	mu     sync.Mutex
	closed bool               // REQUIRES: mu
	next   uint64             // the last token given; REQUIRES: mu
	regs   map[uint64]*Handle // parked sockets by token; REQUIRES: mu
}

// Handle is one socket's registration; its owner keeps it (for instance
// in its connection struct) and must not Park it again or Cancel it from
// two goroutines at once.
type Handle struct {
	token uint64 // 0 when not parked; REQUIRES: Poller.mu
	rc    syscall.RawConn
	wake  func()
}

// New starts a poller and its event loop goroutine.
func New() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &Poller{epfd: epfd, ended: make(chan struct{}), regs: make(map[uint64]*Handle)}
	if err := syscall.Pipe2(p.pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setToken(&ev, stopToken)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.pipe[0], &ev); err != nil {
		syscall.Close(p.pipe[0])
		syscall.Close(p.pipe[1])
		syscall.Close(epfd)
		return nil, err
	}
	go p.loop()
	return p, nil
}

// setToken stores tok in the event's 64-bit data (Fd and Pad are its two
// halves in syscall.EpollEvent on every Linux architecture).
func setToken(ev *syscall.EpollEvent, tok uint64) {
	ev.Fd = int32(uint32(tok))
	ev.Pad = int32(uint32(tok >> 32))
}

func token(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Park registers the socket of rc: when it becomes readable, is hung up
// or fails, wake runs once on a new goroutine, after the socket has left
// the epoll set. h must not be parked already.
func (p *Poller) Park(h *Handle, rc syscall.RawConn, wake func()) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if h.token != 0 {
		p.mu.Unlock()
		return errors.New("netpark: handle already parked")
	}
	p.next++
	tok := p.next
	h.token, h.rc, h.wake = tok, rc, wake
	p.regs[tok] = h
	p.mu.Unlock()

	// Level-triggered and one-shot: bytes that arrived before this call
	// report at once, and one event disables the registration until it
	// is deleted.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setToken(&ev, tok)
	err := ctl(rc, p.epfd, syscall.EPOLL_CTL_ADD, &ev)
	if err != nil {
		p.mu.Lock()
		if p.regs[tok] == h {
			delete(p.regs, tok)
			h.token = 0
		}
		p.mu.Unlock()
		return err
	}
	return nil
}

// ctl runs epoll_ctl on rc's descriptor while the runtime holds it open.
func ctl(rc syscall.RawConn, epfd, op int, ev *syscall.EpollEvent) error {
	var cerr error
	err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(epfd, op, int(fd), ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// Cancel takes h's socket out of the epoll set. It returns true when h was
// parked and its wake function will not run, false when h was not parked
// or its wake function has been (or is being) started.
func (p *Poller) Cancel(h *Handle) bool {
	p.mu.Lock()
	tok := h.token
	if tok == 0 || p.regs[tok] != h {
		p.mu.Unlock()
		return false
	}
	delete(p.regs, tok)
	h.token = 0
	rc := h.rc
	h.rc, h.wake = nil, nil
	p.mu.Unlock()
	// A closed socket has left the set already; Control then fails,
	// without touching the descriptor's number.
	_ = ctl(rc, p.epfd, syscall.EPOLL_CTL_DEL, &syscall.EpollEvent{})
	return true
}

// Parked returns how many sockets are parked.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regs)
}

// loop waits for events and starts the wake functions of the sockets they
// name.
func (p *Poller) loop() {
	defer close(p.ended)
	evs := make([]syscall.EpollEvent, events)
	for {
		n, err := syscall.EpollWait(p.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return // only a closed epoll instance fails otherwise
		}
		for i := range evs[:n] {
			tok := token(&evs[i])
			if tok == stopToken {
				return
			}
			p.mu.Lock()
			h := p.regs[tok]
			var rc syscall.RawConn
			var wake func()
			if h != nil {
				delete(p.regs, tok)
				h.token = 0
				rc, wake = h.rc, h.wake
				h.rc, h.wake = nil, nil
			}
			p.mu.Unlock()
			if h == nil {
				continue // cancelled, or a socket closed while its event was on its way
			}
			// Out of the set before wake may park the socket again.
			_ = ctl(rc, p.epfd, syscall.EPOLL_CTL_DEL, &syscall.EpollEvent{})
			go wake()
		}
	}
}

// Close stops the event loop. Sockets still parked are forgotten: their
// wake functions never run, so owners cancel theirs first.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.ended
		return nil
	}
	p.closed = true
	p.regs = make(map[uint64]*Handle)
	p.mu.Unlock()
	_, err := syscall.Write(p.pipe[1], []byte{0})
	if err == nil {
		<-p.ended
	}
	syscall.Close(p.pipe[0])
	syscall.Close(p.pipe[1])
	syscall.Close(p.epfd)
	return err
}
