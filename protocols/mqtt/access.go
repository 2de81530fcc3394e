package mqtt

import (
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// What a client may do. The adapter asks core/auth (configure, write and
// read permissions, topic permissions) and keeps no rules of its own.

// canConfigure reports whether user may declare queue in vhost.
func (srv *Server) canConfigure(user, vhost, queue string) bool {
	return srv.Users.Check(user, vhost, auth.Configure, queue)
}

var errNotPermitted = &core.Error{Kind: core.ErrAccessRefused, Msg: "access refused"}

// topicAllowed checks the user's topic permission (RabbitMQ's topic
// authorisation) on the MQTT exchange for a routing or binding key.
func (s *session) topicAllowed(kind auth.Access, key string) bool {
	return s.srv.Users.CheckTopic(s.user, s.vhost.Name, kind, s.srv.exchange, key, auth.TopicVars{ClientID: s.clientID})
}

// mayUseQueue reports whether the session's user may configure, write and
// read queue name, as binding a subscription to it requires.
func (s *session) mayUseQueue(name string) bool {
	u, v := s.user, s.vhost.Name
	users := s.srv.Users
	return users.Check(u, v, auth.Configure, name) && users.Check(u, v, auth.Write, name) && users.Check(u, v, auth.Read, name)
}
