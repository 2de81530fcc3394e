package core

import (
	"sync/atomic"
	"time"
)

// Limits that protect the node: connections per user, consumers per queue
// and the delay of a failed login (Options.MaxConnectionsPerUser,
// MaxConsumersPerQueue, LoginFailureDelay). The connections per listener
// are counted where the sockets are accepted (internal/connlimit).
//
// A refusal by a limit is an *Error of kind ErrNotAllowed (AMQP 530
// NOT_ALLOWED, as RabbitMQ refuses a user's connection limit and its
// consumers-per-channel limit) that also matches ErrLimitReached, so the
// adapters without AMQP's codes can answer "quota exceeded".

// Admission is a client connection's place in its user's connection count.
// An adapter takes one with Broker.Admit when the user has logged in and
// passes it in ConnInfo.Admission; Conn.Close gives it back. An adapter
// that fails before opening the connection calls Release itself.
type Admission struct {
	b    *Broker
	user string
	done atomic.Bool
}

// Admit counts a new client connection of user. It fails with
// ErrLimitReached (and ErrNotAllowed) when the user already has
// MaxConnectionsPerUser connections.
func (b *Broker) Admit(user string) (*Admission, error) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	n := b.userConns[user]
	if b.maxUserConns > 0 && n >= b.maxUserConns {
		// RabbitMQ's words (rabbit_reader, user limits).
		return nil, limitErrorf("Connection refused for user '%s'. User connection limit (%d) is reached", user, b.maxUserConns)
	}
	b.userConns[user] = n + 1
	return &Admission{b: b, user: user}, nil
}

// Release gives the place back; later calls do nothing. A nil Admission
// is allowed.
func (a *Admission) Release() {
	if a == nil || !a.done.CompareAndSwap(false, true) {
		return
	}
	b := a.b
	b.connMu.Lock()
	if n := b.userConns[a.user]; n > 1 {
		b.userConns[a.user] = n - 1
	} else {
		delete(b.userConns, a.user)
	}
	b.connMu.Unlock()
}

// UserConnections returns the number of admitted client connections of user.
func (b *Broker) UserConnections(user string) int {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	return b.userConns[user]
}

// Limits are the node limits the broker enforces (0: none), for listings.
type Limits struct {
	MaxConnectionsPerUser int
	MaxConsumersPerQueue  int
	LoginFailureDelay     time.Duration
}

// Limits returns the limits the broker was built with.
func (b *Broker) Limits() Limits {
	return Limits{MaxConnectionsPerUser: b.maxUserConns, MaxConsumersPerQueue: b.maxConsumers, LoginFailureDelay: b.loginDelay}
}

// LoginFailed returns a channel that is closed once a client whose login
// failed may be told so: after Options.LoginFailureDelay on the broker's
// clock (at once when it is 0). The adapter waits on it in the goroutine
// that serves the connection or request, so a failed login costs the
// client time and the server one timer, and other logins go on. As
// RabbitMQ, this slows down password guessing.
func (b *Broker) LoginFailed() <-chan struct{} {
	ch := make(chan struct{})
	if b.loginDelay <= 0 {
		close(ch)
		return ch
	}
	b.clock.AfterFunc(b.loginDelay, func() { close(ch) })
	return ch
}

// consumerLimitLocked refuses a new consumer of a client connection when
// q already has MaxConsumersPerQueue consumers. Connections opened without
// an Admission (the server's own, such as notification workers) are not
// limited. REQUIRES: q.mu.
func (q *Queue) consumerLimitLocked(c *Consumer) error {
	max := q.vhost.broker.maxConsumers
	if max <= 0 || len(q.consumers) < max || c.session == nil || c.session.conn == nil || c.session.conn.info.Admission == nil {
		return nil
	}
	return limitErrorf("reached maximum (%d) of consumers on queue '%s' in vhost '%s'", max, q.Name, q.vhost.Name)
}
