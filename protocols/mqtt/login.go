package mqtt

import (
	"errors"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/connlimit"
)

// Logging in: CONNECT's user name ("vhost:user"), password and will are
// checked against core/auth before the session is made.

// login authenticates the client and picks its vhost, then makes the
// session. A refusal is answered here with the precise CONNACK code and
// ends the connection.
func (s *Server) login(cl client, pk *packets.Packet) error {
	wc, ok := cl.wire()
	if !ok {
		return packets.ErrUnspecifiedError
	}
	if s.isClosing() {
		return refuse(cl, packets.ErrServerShuttingDown)
	}
	if err := connlimit.Refused(wc.Conn); err != nil {
		// MQTT 5: 0x97 quota exceeded; MQTT 3.1.1: 0x03 server unavailable.
		s.log.Warn("MQTT connection refused", "remote", cl.remote(), "reason", err)
		return refuse(cl, packets.ErrQuotaExceeded)
	}
	if pk.Properties.AuthenticationMethod != "" {
		// MQTT 5 enhanced authentication: no method is supported.
		return refuse(cl, packets.ErrBadAuthenticationMethod)
	}
	vhost, user := s.splitUsername(string(pk.Connect.Username))
	pass := string(pk.Connect.Password)
	certUser := ""
	if len(pk.Connect.Username) == 0 {
		// A verified client certificate names the user (the default
		// vhost's), as RabbitMQ's ssl_cert_login.
		certUser = auth.CertificateName(wc.Conn)
		user = certUser
	}
	if len(pk.Connect.Username) == 0 && certUser == "" {
		// Anonymous: the default user's rights, and its restrictions
		// (guest only from loopback), as RabbitMQ's MQTT plugin does.
		if !s.AllowAnonymous {
			s.log.Warn("MQTT login refused: anonymous clients are not allowed", "remote", cl.remote())
			return s.refuseLogin(cl, packets.ErrNotAuthorized)
		}
		user, pass = s.DefaultUser, s.DefaultPass
	}
	if user == "" {
		return s.refuseLogin(cl, packets.ErrBadUsernameOrPassword)
	}
	var err error
	if certUser != "" {
		_, err = s.Users.AuthenticateCertificate(certUser, auth.Loopback(wc.RemoteAddr()))
	} else {
		_, err = s.Users.Authenticate(user, pass, auth.Loopback(wc.RemoteAddr()))
	}
	if err != nil {
		if errors.Is(err, auth.ErrLoopbackOnly) {
			s.log.Warn("MQTT login refused: user can only connect via localhost", "user", user, "remote", cl.remote())
			return s.refuseLogin(cl, packets.ErrNotAuthorized)
		}
		s.log.Warn("MQTT login refused: invalid credentials", "user", user, "remote", cl.remote())
		return s.refuseLogin(cl, packets.ErrBadUsernameOrPassword)
	}
	v, ok := s.Broker.Vhost(vhost)
	if !ok || !s.Users.CanAccessVhost(user, vhost) {
		s.log.Warn("MQTT login refused: no access to vhost", "user", user, "vhost", vhost)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	clientID := cl.id()
	perms := permsOf(s, user, v, clientID)
	if pk.Connect.WillFlag && perms.AllowPublish(s.exchange, topicToKey(pk.Connect.WillTopic)) != nil {
		s.log.Warn("MQTT login refused: no write access to the will topic", "user", user, "vhost", vhost, "topic", pk.Connect.WillTopic)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	persistent := s.grantedExpiry(cl.version(), pk) > 0
	if persistent && perms.Allow(auth.Configure, "queue", queueName(clientID, 1)) != nil {
		s.log.Warn("MQTT login refused: no permission for the session queue", "user", user, "vhost", vhost, "client", clientID)
		return refuse(cl, packets.ErrNotAuthorized)
	}
	adm, err := s.Broker.Admit(user)
	if err != nil {
		s.log.Warn("MQTT login refused", "user", user, "reason", err)
		return refuse(cl, reasonFor(err))
	}
	// mochi keys clients by id across the whole server; ids are per vhost
	// here, so the key carries the vhost (NUL cannot occur in either).
	// The session's key is this id.
	if vhost != s.DefaultVhost {
		cl.setID(vhost + "\x00" + clientID)
	}
	sess := newSession(s, cl, wc, v, user)
	sess.admission = adm // released when the session closes
	wc.sess.Store(sess)
	return nil
}

// refuseLogin answers a failed login with code once the broker's login
// failure delay has passed, waiting on this connection's goroutine (the
// CONNECT handshake's), so the client pays the time and other logins go
// on; a shutdown cuts the wait short.
func (s *Server) refuseLogin(cl client, code packets.Code) error {
	select {
	case <-s.Broker.LoginFailed():
	case <-s.done:
	}
	return refuse(cl, code)
}

// splitUsername reads "vhost:user"; a name without ':' is a user of the
// default vhost.
func (s *Server) splitUsername(name string) (vhost, user string) {
	if v, u, ok := strings.Cut(name, ":"); ok {
		return v, u
	}
	return s.DefaultVhost, name
}
