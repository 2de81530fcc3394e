//go:build !linux

package netpark

import (
	"net"
	"syscall"
)

// Sock is not available on this system; see NewSock.
type Sock struct{}

// NewSock returns false: callers use the net.Conn.
func NewSock(c net.Conn) (*Sock, bool) { return nil, false }

// RawConn is never called.
func (s *Sock) RawConn() syscall.RawConn { return nil }

// Read is never called.
func (s *Sock) Read(p []byte) (int, error) { return 0, ErrUnsupported }

// Write is never called.
func (s *Sock) Write(b []byte) (int, error) { return 0, ErrUnsupported }

// Writev is never called.
func (s *Sock) Writev(bufs [][]byte) (int64, error) { return 0, ErrUnsupported }

// TryWritev is never called.
func (s *Sock) TryWritev(bufs [][]byte) ([][]byte, error) { return bufs, ErrUnsupported }

// TryWrite is never called.
func (s *Sock) TryWrite(b []byte) (int, error) { return 0, ErrUnsupported }

// Read is never called.
func Read(rc syscall.RawConn, p []byte) (int, error) { return 0, ErrUnsupported }

// Write is never called.
func Write(rc syscall.RawConn, b []byte) (int, error) { return 0, ErrUnsupported }

// ReadFD is never called.
func ReadFD(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }
