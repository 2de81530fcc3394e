package auth

import (
	"crypto/tls"
	"net"
)

// Logging in with a client certificate (RabbitMQ's EXTERNAL mechanism and
// its MQTT and STOMP certificate logins): the verified certificate's
// common name is the user name, and no password is checked.

// CertificateName returns the common name of the client certificate of a
// TLS connection when the server verified it against its CA pool, and ""
// for any other connection. A *tls.Conn is handshaken first if it has not
// been yet (reading from it does that); other connections over TLS (a
// WebSocket's) report the state with a ConnectionState method.
func CertificateName(nc net.Conn) string {
	if tc, ok := nc.(*tls.Conn); ok && tc.Handshake() != nil {
		return ""
	}
	sc, ok := nc.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return ""
	}
	st := sc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// AuthenticateCertificate logs in user name, taken from a verified client
// certificate (CertificateName), and returns a copy of the user. It
// returns [ErrInvalidCredentials] for an empty name or an unknown user and
// [ErrLoopbackOnly] as Authenticate does.
func (s *Store) AuthenticateCertificate(name string, loopback bool) (*User, error) {
	a := s.accounts()[name]
	if name == "" || a == nil {
		return nil, ErrInvalidCredentials
	}
	if a.user.LoopbackOnly && !loopback {
		return nil, ErrLoopbackOnly
	}
	return a.user.clone(), nil
}
