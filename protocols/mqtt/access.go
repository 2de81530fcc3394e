package mqtt

import (
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// What a client may do is decided by the core (core/authz.go), with
// RabbitMQ's rules: the session's core connection is opened with the user
// store as its Authorizer, so declaring, binding and consuming its queues
// are checked there, and perms gives the same rules for the checks made
// before or outside core operations (the will at login, a publish, a
// subscription before its binding changes anything).

// perms returns the session's permissions.
func (s *session) perms() core.Permissions {
	return permsOf(s.srv, s.user, s.vhost, s.clientID())
}

func permsOf(srv *Server, user string, v *core.Vhost, clientID string) core.Permissions {
	return core.Permissions{Authz: srv.Users, User: user, Vhost: v, TopicVars: auth.TopicVars{ClientID: clientID}}
}
