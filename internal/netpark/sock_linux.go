package netpark

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Sock reads and writes a plain TCP socket with system calls made without
// the runtime's system-call bookkeeping (syscall.RawSyscall). The socket
// is non-blocking, so each call returns at once; when it would block, the
// runtime's poller waits for the socket as for any net.Conn, and read and
// write deadlines apply as set on the connection.
//
// A goroutine that enters an ordinary system call after the process was
// idle wakes the runtime's monitor thread (sysmon), which then polls every
// 20 µs until the process is idle again: at a few thousand messages per
// second, spread out, that costs more CPU than the reads and writes
// themselves. Raw calls skip that; they hold their P for the few
// microseconds a non-blocking read or write takes.
//
// One goroutine may read and another write at the same time; Read and
// Writev are each for one goroutine at a time.
type Sock struct {
	rc syscall.RawConn

	rp   []byte
	rn   int
	rerr syscall.Errno
	rfn  func(uintptr) bool

	iov  []syscall.Iovec
	wn   int
	werr syscall.Errno
	wait bool // rawWritev waits for room when the socket is full
	one  [1][]byte
	wfn  func(uintptr) bool
}

// NewSock returns the Sock of c when c is a plain TCP connection.
func NewSock(c net.Conn) (*Sock, bool) {
	rc, ok := RawConn(c)
	if !ok {
		return nil, false
	}
	s := newSock()
	s.rc = rc
	return s, true
}

func newSock() *Sock {
	s := &Sock{}
	s.rfn, s.wfn = s.rawRead, s.rawWritev
	return s
}

// socks lends Read and Write the state of a Sock for one call.
var socks = sync.Pool{New: func() any { return newSock() }}

// Read reads from the socket rc into p like net.Conn.Read, with a raw
// system call (see Sock) and a Sock's state borrowed for the call: for
// connections that keep no Sock of their own.
func Read(rc syscall.RawConn, p []byte) (int, error) { return borrowed(rc, p, (*Sock).Read) }

// Write writes every byte of b to the socket rc like net.Conn.Write, as
// Read does.
func Write(rc syscall.RawConn, b []byte) (int, error) { return borrowed(rc, b, (*Sock).Write) }

// borrowed runs op on a Sock borrowed from socks for rc.
func borrowed(rc syscall.RawConn, b []byte, op func(*Sock, []byte) (int, error)) (int, error) {
	s := socks.Get().(*Sock)
	s.rc = rc
	n, err := op(s, b)
	s.rc = nil
	socks.Put(s)
	return n, err
}

// ReadFD is one read of the non-blocking descriptor fd into p, which must
// not be empty, with a raw system call, retried when interrupted: for a
// syscall.RawConn.Read callback. It returns the bytes read (0: end of
// stream) or the error (syscall.EAGAIN: nothing to read yet).
func ReadFD(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// RawConn returns the socket, for a Poller.
func (s *Sock) RawConn() syscall.RawConn { return s.rc }

// Read reads into p like net.Conn.Read.
func (s *Sock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rp, s.rn, s.rerr = p, 0, 0
	err := s.rc.Read(s.rfn)
	s.rp = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerr != 0:
		return 0, os.NewSyscallError("read", s.rerr)
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *Sock) rawRead(fd uintptr) bool {
	n, e := ReadFD(fd, s.rp)
	switch e {
	case 0:
		s.rn = n
	case syscall.EAGAIN:
		return false
	default:
		s.rerr = e
	}
	return true
}

// maxIovecs is the most buffers one writev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// Write writes every byte of b, like net.Conn.Write.
func (s *Sock) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return s.writeOne(b, true)
}

// Writev writes every byte of bufs, in order, like net.Buffers.WriteTo,
// waiting for room in the socket as long as the write deadline allows. It
// may change the elements of bufs.
func (s *Sock) Writev(bufs [][]byte) (int64, error) {
	_, n, err := s.writev(bufs, true)
	return n, err
}

// TryWritev writes what the socket takes of bufs now, without waiting for
// room, and returns what is left (a tail of bufs whose first element may
// be shortened; empty once everything was written). It may change the
// elements of bufs.
func (s *Sock) TryWritev(bufs [][]byte) ([][]byte, error) {
	rest, _, err := s.writev(bufs, false)
	return rest, err
}

// TryWrite writes what the socket takes of b now, without waiting for
// room, and returns how many bytes that was.
func (s *Sock) TryWrite(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return s.writeOne(b, false)
}

// writeOne is Write (wait) or TryWrite (not) of one non-empty buffer.
func (s *Sock) writeOne(b []byte, wait bool) (int, error) {
	s.one[0] = b
	_, n, err := s.writev(s.one[:], wait)
	s.one[0] = nil
	return int(n), err
}

func (s *Sock) writev(bufs [][]byte, wait bool) ([][]byte, int64, error) {
	var total int64
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return bufs, total, nil
		}
		s.iov = s.iov[:0]
		for _, b := range bufs {
			if len(s.iov) == maxIovecs {
				break
			}
			if len(b) > 0 {
				v := syscall.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				s.iov = append(s.iov, v)
			}
		}
		s.wn, s.werr, s.wait = 0, 0, wait
		err := s.rc.Write(s.wfn)
		clear(s.iov) // drop the references to bufs
		if err == nil && s.werr != 0 {
			err = os.NewSyscallError("writev", s.werr)
		}
		n := s.wn
		total += int64(n)
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
		if err != nil || (s.wn == 0 && !wait) {
			return bufs, total, err
		}
	}
}

func (s *Sock) rawWritev(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(s.iov)))
		switch e {
		case 0:
			s.wn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return !s.wait
		default:
			s.werr = e
		}
		return true
	}
}
