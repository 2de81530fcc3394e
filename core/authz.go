package core

import (
	"github.com/unifiedms/ums/core/auth"
)

// Authorization.
//
// A Conn opened with an Authorizer (ConnInfo.Authz) is checked by the core
// on every operation it asks for, with RabbitMQ's rules, so no adapter
// keeps permission logic of its own:
//
//	declare or delete an exchange       configure on the exchange
//	declare or delete a queue           configure on the queue
//	bind or unbind a queue              write on the queue, read on the exchange
//	bind or unbind an exchange          write on the destination, read on the source
//	purge, consume, get                 read on the queue
//	publish                             write on the exchange
//
// and, on topic exchanges, topic permissions: write on the routing key for
// a publish, read on the binding key for a bind. Passive declarations and
// lookups need no permission. Refusals are ErrAccessRefused errors with
// RabbitMQ's wording. A Conn without an Authorizer (in-process users of the
// core) and internal queues are not checked.
//
// The Vhost methods themselves do not check: they are the trusted API
// under the Conn methods below, for the core's own callers.

// Authorizer decides what users may do; *auth.Store implements it. Both
// methods are called on the message path and must not block.
type Authorizer interface {
	Check(user, vhost string, kind auth.Access, resource string) bool
	CheckTopic(user, vhost string, kind auth.Access, exchange, routingKey string, v auth.TopicVars) bool
}

// Allow checks the connection's permission kind on the exchange or queue
// (resType "exchange" or "queue") named name.
func (c *Conn) Allow(kind auth.Access, resType, name string) error {
	if c == nil || c.info.Authz == nil {
		return nil
	}
	resource := name
	if resType == "exchange" && name == "" {
		resource = "amq.default"
	}
	if c.info.Authz.Check(c.User, c.vhost.Name, kind, resource) {
		return nil
	}
	return errorf(ErrAccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", resType, name, c.vhost.Name, c.User)
}

// AllowTopic applies topic permissions to routing or binding key on x;
// only topic exchanges are checked, as in RabbitMQ. It allocates nothing
// when the access is allowed.
func (c *Conn) AllowTopic(kind auth.Access, x *Exchange, key string) error {
	if c == nil || c.info.Authz == nil || x.Kind != KindTopic {
		return nil
	}
	if c.info.Authz.CheckTopic(c.User, c.vhost.Name, kind, x.Name, key, c.info.TopicVars) {
		return nil
	}
	return errorf(ErrAccessRefused, "%s access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'",
		kind, key, x.Name, c.vhost.Name, c.User)
}

// allowTopicOn is AllowTopic for the exchange named source; a missing
// exchange passes (the operation itself then fails with ErrNotFound).
func (c *Conn) allowTopicOn(kind auth.Access, source, key string) error {
	x := c.vhost.lookupExchange(source)
	if x == nil {
		return nil
	}
	return c.AllowTopic(kind, x, key)
}

// allowAll runs checks in order and returns the first refusal.
func allowAll(checks ...func() error) error {
	for _, f := range checks {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// DeclareExchange declares an exchange (configure permission).
func (c *Conn) DeclareExchange(name, kind string, opts ExchangeOptions) (*Exchange, error) {
	if err := c.Allow(auth.Configure, "exchange", name); err != nil {
		return nil, err
	}
	return c.vhost.DeclareExchange(name, kind, opts)
}

// DeleteExchange deletes an exchange (configure permission).
func (c *Conn) DeleteExchange(name string, ifUnused bool) error {
	if err := c.Allow(auth.Configure, "exchange", name); err != nil {
		return err
	}
	return c.vhost.DeleteExchange(name, ifUnused)
}

func (c *Conn) exchangeBindPerms(dst, src, key string) error {
	return allowAll(
		func() error { return c.Allow(auth.Write, "exchange", dst) },
		func() error { return c.Allow(auth.Read, "exchange", src) },
		func() error { return c.allowTopicOn(auth.Read, src, key) })
}

// BindExchange binds exchange dst to src (write on dst, read on src).
func (c *Conn) BindExchange(dst, src, key string, args Table) error {
	if err := c.exchangeBindPerms(dst, src, key); err != nil {
		return err
	}
	return c.vhost.BindExchange(dst, src, key, args)
}

// UnbindExchange removes an exchange-to-exchange binding (as BindExchange).
func (c *Conn) UnbindExchange(dst, src, key string, args Table) error {
	if err := c.exchangeBindPerms(dst, src, key); err != nil {
		return err
	}
	return c.vhost.UnbindExchange(dst, src, key, args)
}

// DeclareQueue declares a queue owned by c (configure permission on a
// named queue; server-named queues need none, as in RabbitMQ).
func (c *Conn) DeclareQueue(name string, opts QueueOptions) (*Queue, error) {
	if name != "" {
		if err := c.Allow(auth.Configure, "queue", name); err != nil {
			return nil, err
		}
	}
	return c.vhost.DeclareQueue(c, name, opts)
}

// DeleteQueue deletes a queue (configure permission).
func (c *Conn) DeleteQueue(name string, ifUnused, ifEmpty bool) (int, error) {
	if err := c.Allow(auth.Configure, "queue", name); err != nil {
		return 0, err
	}
	return c.vhost.DeleteQueue(c, name, ifUnused, ifEmpty)
}

func (c *Conn) queueBindPerms(queue, exchange, key string) error {
	return allowAll(
		func() error { return c.Allow(auth.Write, "queue", queue) },
		func() error { return c.Allow(auth.Read, "exchange", exchange) },
		func() error { return c.allowTopicOn(auth.Read, exchange, key) })
}

// Bind binds a queue to an exchange (write on the queue, read on the
// exchange, topic read permission on key).
func (c *Conn) Bind(queue, exchange, key string, args Table) error {
	if err := c.queueBindPerms(queue, exchange, key); err != nil {
		return err
	}
	return c.vhost.Bind(c, queue, exchange, key, args)
}

// Unbind removes a queue binding (as Bind).
func (c *Conn) Unbind(queue, exchange, key string, args Table) error {
	if err := c.queueBindPerms(queue, exchange, key); err != nil {
		return err
	}
	return c.vhost.Unbind(c, queue, exchange, key, args)
}

// Purge drops a queue's ready messages (read permission).
func (c *Conn) Purge(name string) (int, error) {
	if err := c.Allow(auth.Read, "queue", name); err != nil {
		return 0, err
	}
	return c.vhost.Purge(c, name)
}

// PublishExchange resolves the exchange a publisher names and checks its
// write permission on it. Adapters may keep the result while the exchange
// is not Deleted; topic permissions are checked per message (AllowTopic).
func (c *Conn) PublishExchange(name string) (*Exchange, error) {
	x, err := c.vhost.Exchange(name)
	if err != nil {
		return nil, err
	}
	if err := c.Allow(auth.Write, "exchange", name); err != nil {
		return nil, err
	}
	return x, nil
}

// allowRead checks read permission on q for consume and get; internal
// queues belong to their adapter and are not checked.
func (c *Conn) allowRead(q *Queue) error {
	if q.Internal {
		return nil
	}
	return c.Allow(auth.Read, "queue", q.Name)
}

// ReadQueue returns the named queue for consume or get: read permission is
// checked before the lookup (a refused client learns nothing about the
// queue), then exclusive ownership.
func (c *Conn) ReadQueue(name string) (*Queue, error) {
	if err := c.Allow(auth.Read, "queue", name); err != nil {
		return nil, err
	}
	return c.vhost.Queue(c, name)
}
