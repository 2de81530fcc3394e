// Package netpark parks idle sockets: instead of a goroutine blocked in
// Read per idle connection, one goroutine waits on an epoll instance for
// every parked socket and starts a function on a fresh goroutine when one
// becomes readable or hangs up. The Go runtime's own poller keeps the
// socket; reads go on through its net.Conn once the function runs.
//
// A registration is one-shot: after its function started, or after
// Cancel, the socket is out of the epoll set and may be parked again.
//
// # Closing a parked socket
//
// The epoll calls run inside syscall.RawConn.Control, which holds the
// runtime's reference to the descriptor, so they never act on a
// descriptor number that a close has freed and a new socket reused. A
// socket closed while parked leaves the epoll set by itself (the kernel
// drops a closed file's registrations); its caller must Cancel before
// closing, or it will not hear of the close. Every registration carries
// its own token in the event's data, and an event whose token is no
// longer registered (cancelled, or a socket gone) is ignored.
//
// # Locks
//
// Poller.mu guards the registrations. Cancel and the event loop take it
// alone; wake functions run on their own goroutines, without it.
//
// On systems other than Linux, New returns ErrUnsupported and callers keep
// a reading goroutine per connection.
package netpark

import "errors"

// ErrUnsupported is New's error where parking is not implemented.
var ErrUnsupported = errors.New("netpark: not supported on this system")

// ErrClosed is Park's error after Close.
var ErrClosed = errors.New("netpark: poller closed")
