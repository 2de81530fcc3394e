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

// Permissions are what a user may do in a vhost. A Conn carries them; an
// adapter may also use them on their own for checks before a connection
// exists (an MQTT will, checked at login). The zero Authz allows all.
type Permissions struct {
	Authz     Authorizer
	User      string
	Vhost     *Vhost
	TopicVars auth.TopicVars
}

// Allow checks permission kind on the exchange or queue (resType
// "exchange" or "queue") named name.
func (p Permissions) Allow(kind auth.Access, resType, name string) error {
	if p.Authz == nil {
		return nil
	}
	resource := name
	if resType == "exchange" && name == "" {
		resource = "amq.default"
	}
	if p.Authz.Check(p.User, p.Vhost.Name, kind, resource) {
		return nil
	}
	return errorf(ErrAccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", resType, name, p.Vhost.Name, p.User)
}

// AllowTopic applies topic permissions to routing or binding key on x;
// only topic exchanges are checked, as in RabbitMQ. It allocates nothing
// when the access is allowed.
func (p Permissions) AllowTopic(kind auth.Access, x *Exchange, key string) error {
	if p.Authz == nil || x.Kind != KindTopic {
		return nil
	}
	if p.Authz.CheckTopic(p.User, p.Vhost.Name, kind, x.Name, key, p.TopicVars) {
		return nil
	}
	return errorf(ErrAccessRefused, "%s access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'",
		kind, key, x.Name, p.Vhost.Name, p.User)
}

// allowTopicOn is AllowTopic for the exchange named source; a missing
// exchange passes (the operation itself then fails with ErrNotFound).
func (p Permissions) allowTopicOn(kind auth.Access, source, key string) error {
	x := p.Vhost.lookupExchange(source)
	if x == nil {
		return nil
	}
	return p.AllowTopic(kind, x, key)
}

// AllowPublish checks what a publish of routing key to the exchange named
// exchange needs: write on the exchange and, on a topic exchange, the
// topic permission.
func (p Permissions) AllowPublish(exchange, key string) error {
	if err := p.Allow(auth.Write, "exchange", exchange); err != nil {
		return err
	}
	return p.allowTopicOn(auth.Write, exchange, key)
}

// AllowBind checks what binding queue to exchange with key needs: write on
// the queue, read on the exchange and, on a topic exchange, the topic
// permission.
func (p Permissions) AllowBind(queue, exchange, key string) error {
	if err := p.Allow(auth.Write, "queue", queue); err != nil {
		return err
	}
	if err := p.Allow(auth.Read, "exchange", exchange); err != nil {
		return err
	}
	return p.allowTopicOn(auth.Read, exchange, key)
}

// Permissions returns the connection's permissions.
func (c *Conn) Permissions() Permissions {
	return Permissions{Authz: c.info.Authz, User: c.User, Vhost: c.vhost, TopicVars: c.info.TopicVars}
}

// Allow is Permissions().Allow.
func (c *Conn) Allow(kind auth.Access, resType, name string) error {
	if c == nil || c.info.Authz == nil {
		return nil
	}
	return c.Permissions().Allow(kind, resType, name)
}

// AllowTopic is Permissions().AllowTopic.
func (c *Conn) AllowTopic(kind auth.Access, x *Exchange, key string) error {
	if c == nil || c.info.Authz == nil {
		return nil
	}
	return c.Permissions().AllowTopic(kind, x, key)
}

// AllowBind is Permissions().AllowBind.
func (c *Conn) AllowBind(queue, exchange, key string) error {
	return c.Permissions().AllowBind(queue, exchange, key)
}

func (c *Conn) allowTopicOn(kind auth.Access, source, key string) error {
	return c.Permissions().allowTopicOn(kind, source, key)
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
	if err := c.Allow(auth.Write, "exchange", dst); err != nil {
		return err
	}
	if err := c.Allow(auth.Read, "exchange", src); err != nil {
		return err
	}
	return c.allowTopicOn(auth.Read, src, key)
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

// Bind binds a queue to an exchange (write on the queue, read on the
// exchange, topic read permission on key).
func (c *Conn) Bind(queue, exchange, key string, args Table) error {
	if err := c.AllowBind(queue, exchange, key); err != nil {
		return err
	}
	return c.vhost.Bind(c, queue, exchange, key, args)
}

// Unbind removes a queue binding (as Bind).
func (c *Conn) Unbind(queue, exchange, key string, args Table) error {
	if err := c.AllowBind(queue, exchange, key); err != nil {
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
