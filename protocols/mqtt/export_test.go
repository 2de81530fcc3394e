package mqtt

// Hooks into the server's state for the black-box tests.

// MochiClients is the number of clients mochi keeps.
func (s *Server) MochiClients() int { return s.mochi.Clients.Len() }

// Sessions is the number of live sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
