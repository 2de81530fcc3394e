//go:build !linux

package netpark

import "syscall"

// Poller is not available on this system; see New.
type Poller struct{}

// Handle is one socket's registration.
type Handle struct{}

// New returns ErrUnsupported.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Park returns ErrUnsupported.
func (p *Poller) Park(h *Handle, rc syscall.RawConn, wake func()) error { return ErrUnsupported }

// Cancel returns false.
func (p *Poller) Cancel(h *Handle) bool { return false }

// Parked returns 0.
func (p *Poller) Parked() int { return 0 }

// Close does nothing.
func (p *Poller) Close() error { return nil }
