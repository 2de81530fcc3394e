package mqtt

import "time"

// Hooks into the server's state for the black-box tests.

// MochiClients is the number of mochi clients the adapter keeps.
func (s *Server) MochiClients() int { return s.clientCount() }

// Sessions is the number of live sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// SetParkAfter sets the parking sweeper's period; call it before Serve.
func (s *Server) SetParkAfter(d time.Duration) { s.parkAfter = d }

// Parked is the number of parked connections. It goes through start's
// sync.Once, which orders it after the server's setup (the sockets are
// read and written with raw system calls, which give the race detector
// no ordering).
func (s *Server) Parked() int {
	_ = s.start()
	return s.parkedCount()
}

// SetClosingHook makes every session call f with its client id as it
// starts closing, until SetClosingHook(nil).
func SetClosingHook(f func(clientID string)) {
	if f == nil {
		closingHook.Store(nil)
		return
	}
	closingHook.Store(&f)
}
