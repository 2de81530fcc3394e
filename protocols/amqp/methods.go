package amqp

import (
	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// handle runs one method on an open channel.
func (ch *channel) handle(m wire.Method) error {
	switch m := m.(type) {
	case *wire.BasicPublish:
		return ch.onPublish(m)
	case *wire.BasicAck:
		return ch.settle(txAck{tag: m.DeliveryTag, multiple: m.Multiple})
	case *wire.BasicNack:
		return ch.settle(txAck{tag: m.DeliveryTag, multiple: m.Multiple, reject: true, requeue: m.Requeue})
	case *wire.BasicReject:
		return ch.settle(txAck{tag: m.DeliveryTag, reject: true, requeue: m.Requeue})

	case *wire.ChannelClose:
		ch.flushConfirms()
		ch.sess.Close()
		ch.c.send(ch.id, &wire.ChannelCloseOk{})
		ch.c.removeChannel(ch.id)
		return nil
	case *wire.ChannelCloseOk:
		return nil
	case *wire.ChannelOpen:
		return protoErr(wire.ChannelError, "second 'channel.open' seen")
	case *wire.ChannelFlow:
		if !m.Active {
			// As RabbitMQ: clients cannot stop deliveries this way; prefetch does it.
			return protoErr(wire.NotImplemented, "active=false")
		}
		ch.sess.SetFlow(m.Active)
		ch.c.send(ch.id, &wire.ChannelFlowOk{Active: m.Active})
		return nil
	case *wire.ChannelFlowOk:
		return nil

	case *wire.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *wire.ExchangeDelete:
		if err := ch.c.core.DeleteExchange(m.Exchange, m.IfUnused); err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.ExchangeDeleteOk{})
		}
		return nil
	case *wire.ExchangeBind:
		if err := ch.c.core.BindExchange(m.Destination, m.Source, m.RoutingKey, core.Table(m.Arguments)); err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.ExchangeBindOk{})
		}
		return nil
	case *wire.ExchangeUnbind:
		if err := ch.c.core.UnbindExchange(m.Destination, m.Source, m.RoutingKey, core.Table(m.Arguments)); err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.ExchangeUnbindOk{})
		}
		return nil

	case *wire.QueueDeclare:
		return ch.queueDeclare(m)
	case *wire.QueueBind:
		name, err := ch.queueName(m.Queue)
		if err != nil {
			return err
		}
		key := m.RoutingKey
		if m.Queue == "" && key == "" {
			key = name
		}
		if err := ch.c.core.Bind(name, m.Exchange, key, core.Table(m.Arguments)); err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.QueueBindOk{})
		}
		return nil
	case *wire.QueueUnbind:
		name, err := ch.queueName(m.Queue)
		if err != nil {
			return err
		}
		if err := ch.c.core.Unbind(name, m.Exchange, m.RoutingKey, core.Table(m.Arguments)); err != nil {
			return err
		}
		ch.c.send(ch.id, &wire.QueueUnbindOk{})
		return nil
	case *wire.QueuePurge:
		name, err := ch.queueName(m.Queue)
		if err != nil {
			return err
		}
		n, err := ch.c.core.Purge(name)
		if err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.QueuePurgeOk{MessageCount: uint32(n)})
		}
		return nil
	case *wire.QueueDelete:
		name, err := ch.queueName(m.Queue)
		if err != nil {
			return err
		}
		n, err := ch.c.core.DeleteQueue(name, m.IfUnused, m.IfEmpty)
		if err != nil {
			return err
		}
		if !m.NoWait {
			ch.c.send(ch.id, &wire.QueueDeleteOk{MessageCount: uint32(n)})
		}
		return nil

	case *wire.BasicQos:
		if m.PrefetchSize != 0 {
			return protoErr(wire.NotImplemented, "prefetch_size!=0 (%d)", m.PrefetchSize)
		}
		ch.sess.SetPrefetch(int(m.PrefetchCount), m.Global)
		ch.c.send(ch.id, &wire.BasicQosOk{})
		return nil
	case *wire.BasicConsume:
		return ch.consume(m)
	case *wire.BasicCancel:
		ch.sess.Cancel(m.ConsumerTag)
		if !m.NoWait {
			ch.c.send(ch.id, &wire.BasicCancelOk{ConsumerTag: m.ConsumerTag})
		}
		return nil
	case *wire.BasicGet:
		return ch.get(m)
	case *wire.BasicRecover:
		if !m.Requeue {
			return protoErr(wire.NotImplemented, "requeue=false")
		}
		ch.sess.Recover()
		ch.c.send(ch.id, &wire.BasicRecoverOk{})
		return nil
	case *wire.BasicRecoverAsync:
		if !m.Requeue {
			return protoErr(wire.NotImplemented, "requeue=false")
		}
		ch.sess.Recover()
		return nil

	case *wire.TxSelect:
		if ch.confirm {
			return protoErr(wire.PreconditionFailed, "cannot switch from confirm to tx mode")
		}
		ch.tx = true
		ch.c.send(ch.id, &wire.TxSelectOk{})
		return nil
	case *wire.TxCommit:
		return ch.txCommit()
	case *wire.TxRollback:
		return ch.txRollback()

	case *wire.ConfirmSelect:
		if ch.tx {
			return protoErr(wire.PreconditionFailed, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
		if !m.NoWait {
			ch.c.send(ch.id, &wire.ConfirmSelectOk{})
		}
		return nil
	}
	return protoErr(wire.NotImplemented, "method %s is not implemented", m.Name())
}

func (ch *channel) exchangeDeclare(m *wire.ExchangeDeclare) error {
	v := ch.c.vhost
	if m.Passive {
		if _, err := v.Exchange(m.Exchange); err != nil {
			return err
		}
	} else {
		_, err := ch.c.core.DeclareExchange(m.Exchange, m.Type, core.ExchangeOptions{
			Durable: m.Durable, AutoDelete: m.AutoDelete, Internal: m.Internal, Args: core.Table(m.Arguments)})
		if err != nil {
			return err
		}
	}
	if !m.NoWait {
		ch.c.send(ch.id, &wire.ExchangeDeclareOk{})
	}
	return nil
}

func (ch *channel) queueDeclare(m *wire.QueueDeclare) error {
	v := ch.c.vhost
	var q *core.Queue
	var err error
	if m.Passive {
		name, nerr := ch.queueName(m.Queue)
		if nerr != nil {
			return nerr
		}
		if name == core.ReplyToQueue {
			if !m.NoWait {
				ch.c.send(ch.id, &wire.QueueDeclareOk{Queue: name})
			}
			return nil
		}
		q, err = v.Queue(ch.c.core, name)
	} else {
		q, err = ch.c.core.DeclareQueue(m.Queue, core.QueueOptions{
			Durable: m.Durable, Exclusive: m.Exclusive, AutoDelete: m.AutoDelete, Args: core.Table(m.Arguments)})
	}
	if err != nil {
		return err
	}
	ch.lastQueue = q.Name
	if !m.NoWait {
		msgs, consumers := q.Counts()
		ch.c.send(ch.id, &wire.QueueDeclareOk{Queue: q.Name, MessageCount: uint32(msgs), ConsumerCount: uint32(consumers)})
	}
	return nil
}

func (ch *channel) consume(m *wire.BasicConsume) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	c := ch.c
	noWait := m.NoWait
	var tag string
	opts := core.ConsumeOptions{
		Tag:       m.ConsumerTag,
		NoAck:     m.NoAck,
		Exclusive: m.Exclusive,
		Args:      core.Table(m.Arguments),
		Deliver:   ch.deliver,
		Flush:     c.flushFn,
		Ready:     c.out.Ready,
		Started: func(t string) {
			tag = t
			if !noWait {
				c.send(ch.id, &wire.BasicConsumeOk{ConsumerTag: t})
			}
		},
		Cancelled: func() {
			// The queue was deleted: tell clients that understand it.
			if c.cancelNotify {
				c.send(ch.id, &wire.BasicCancel{ConsumerTag: tag, NoWait: true})
			}
		},
	}
	if name == core.ReplyToQueue {
		if err := c.core.Allow(auth.Read, "queue", name); err != nil {
			return err
		}
		_, err = ch.sess.ConsumeReplyTo(opts)
		return err
	}
	q, err := c.core.ReadQueue(name)
	if err != nil {
		return err
	}
	_, err = ch.sess.Consume(q, opts)
	return err
}

// deliver encodes a delivery straight into the outbox. It runs with core
// locks held.
func (ch *channel) deliver(d core.Delivery) {
	c := ch.c
	b := c.out.Lock()
	c.deliverM = wire.BasicDeliver{ConsumerTag: d.ConsumerTag, DeliveryTag: d.Tag, Redelivered: d.Redelivered,
		Exchange: d.Msg.Exchange, RoutingKey: d.Msg.RoutingKey}
	b = wire.AppendMethodFrame(b, ch.id, &c.deliverM)
	c.out.UnlockDeferred(c.appendContent(b, ch.id, d.Msg)) // the core calls flushDirect
}

// refBodyMin is the body size from which a delivery's body is written from
// the shared message buffer (writev) instead of being copied into the
// outbox.
const refBodyMin = 16 << 10

// appendContent appends the content header and body frames of msg to b,
// the outbox's buffer. A body of refBodyMin bytes or more is written from
// the message's own buffer (writev) instead of being copied.
// REQUIRES: c.out locked (it uses c.props and the outbox's AppendRef).
func (c *conn) appendContent(b []byte, chID uint16, msg *core.Message) []byte {
	toWire(&c.props, &msg.Props)
	b = wire.AppendHeaderFrame(b, chID, wire.ClassBasic, uint64(len(msg.Body)), &c.props)
	if len(msg.Body) < refBodyMin {
		return wire.AppendBodyFrames(b, chID, msg.Body, c.frameMax)
	}
	max := int(c.frameMax) - 8
	for body := msg.Body; len(body) > 0; {
		n := min(len(body), max)
		b = wire.AppendFrameHeader(b, wire.FrameBody, chID, uint32(n))
		b = c.out.AppendRef(b, body[:n])
		b = append(b, wire.FrameEnd)
		body = body[n:]
	}
	return b
}

func (ch *channel) get(m *wire.BasicGet) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	q, err := ch.c.core.ReadQueue(name)
	if err != nil {
		return err
	}
	d, remaining, ok, err := ch.sess.Get(q, m.NoAck)
	if err != nil {
		return err
	}
	if !ok {
		ch.c.send(ch.id, &wire.BasicGetEmpty{})
		return nil
	}
	c := ch.c
	b := c.out.Lock()
	b = wire.AppendMethodFrame(b, ch.id, &wire.BasicGetOk{DeliveryTag: d.Tag, Redelivered: d.Redelivered,
		Exchange: d.Msg.Exchange, RoutingKey: d.Msg.RoutingKey, MessageCount: uint32(remaining)})
	c.out.Unlock(c.appendContent(b, ch.id, d.Msg))
	return nil
}

// onPublish starts a publish; the content follows in header and body frames.
func (ch *channel) onPublish(m *wire.BasicPublish) error {
	if m.Immediate {
		return protoErr(wire.NotImplemented, "immediate=true")
	}
	if gate := ch.c.srv.Broker.PublishGate(); gate != nil {
		// A resource alarm is up: stop reading from this publisher (TCP
		// backpressure) until it clears.
		if ch.c.blockedNotify {
			ch.c.send(0, &wire.ConnectionBlocked{Reason: "low on resources"})
		}
		select {
		case <-gate:
		case <-ch.c.forced:
			return errConnClosed
		}
	}
	x := ch.cacheX
	if x == nil || ch.cacheName != m.Exchange || x.Deleted() {
		var err error
		if x, err = ch.c.core.PublishExchange(m.Exchange); err != nil {
			ch.cacheX = nil
			return err
		}
		ch.cacheName, ch.cacheX = m.Exchange, x
	}
	if err := ch.c.core.AllowTopic(auth.Write, x, m.RoutingKey); err != nil {
		return err
	}
	ch.pub = *m
	ch.pubX = x
	ch.expecting = expectHeader
	return nil
}

func (ch *channel) onHeader(payload []byte) error {
	if ch.closing {
		return nil
	}
	if ch.expecting != expectHeader {
		return protoErr(wire.UnexpectedFrame, "unexpected content header frame on channel %d", ch.id)
	}
	h := &ch.c.hdr
	if err := h.Decode(payload); err != nil {
		return err
	}
	if h.ClassID != wire.ClassBasic {
		return protoErr(wire.FrameError, "content header for class %d, expected %d", h.ClassID, wire.ClassBasic)
	}
	if max := ch.c.srv.maxMessageSize(); h.BodySize > uint64(max) {
		ch.expecting = expectMethod
		ch.fail(withPublish(protoErr(wire.PreconditionFailed, "message size %d is larger than configured max size %d", h.BodySize, max)))
		return nil
	}
	fromWire(&ch.props, &h.Properties)
	ch.bodySize = h.BodySize
	if h.BodySize == 0 {
		ch.body = nil
		return ch.publish()
	}
	ch.body = make([]byte, 0, h.BodySize)
	ch.expecting = expectBody
	return nil
}

func withPublish(e *amqpError) *amqpError {
	e.classID, e.methodID = wire.ClassBasic, wire.MethodBasicPublish
	return e
}

func (ch *channel) onBody(payload []byte) error {
	if ch.closing {
		return nil
	}
	if ch.expecting != expectBody {
		return protoErr(wire.UnexpectedFrame, "unexpected content body frame on channel %d", ch.id)
	}
	if uint64(len(ch.body)+len(payload)) > ch.bodySize {
		return protoErr(wire.FrameError, "content body exceeds the declared size %d", ch.bodySize)
	}
	ch.body = append(ch.body, payload...)
	if uint64(len(ch.body)) < ch.bodySize {
		return nil
	}
	return ch.publish()
}

// publish routes the assembled message.
func (ch *channel) publish() error {
	ch.expecting = expectMethod
	msg := &core.Message{Exchange: ch.pub.Exchange, RoutingKey: ch.pub.RoutingKey, Props: ch.props, Body: ch.body}
	ch.body = nil
	ch.props.Headers = nil
	if msg.Props.UserID != "" && msg.Props.UserID != ch.c.user {
		ch.fail(withPublish(protoErr(wire.PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", msg.Props.UserID, ch.c.user)))
		return nil
	}
	if err := ch.sess.ResolveReplyTo(&msg.Props); err != nil {
		ch.fail(withPublish(fromCore(err)))
		return nil
	}
	if ch.tx {
		ch.txPubs = append(ch.txPubs, txPublish{x: ch.pubX, msg: msg, mandatory: ch.pub.Mandatory})
		return nil
	}
	return ch.route(ch.pubX, msg, ch.pub.Mandatory)
}

// route publishes msg through x; an unroutable mandatory message comes back
// as basic.return. Under confirms the publish gets its sequence number here.
func (ch *channel) route(x *core.Exchange, msg *core.Message, mandatory bool) error {
	var done func(error)
	var seq uint64
	if ch.confirm {
		seq = ch.conf.next()
		if msg.Persistent() { // only stored messages wait for the store
			done = func(err error) { ch.conf.stored(ch, seq, err) }
		}
	}
	ch.router.Mandatory = mandatory
	res, err := ch.c.vhost.PublishTo(&ch.router, x, msg, done)
	if err != nil {
		ae := fromCore(err)
		ae.classID, ae.methodID = wire.ClassBasic, wire.MethodBasicPublish
		if ae.hard() {
			return ae
		}
		ch.fail(ae)
		return nil
	}
	// A scheduled message (x-delayed-message) counts as routed when it
	// would reach a queue now.
	if res.Queues == 0 && res.Rejected == 0 && res.Scheduled == 0 && mandatory {
		c := ch.c
		b := c.out.Lock()
		b = wire.AppendMethodFrame(b, ch.id, &wire.BasicReturn{ReplyCode: wire.NoRoute, ReplyText: "NO_ROUTE",
			Exchange: msg.Exchange, RoutingKey: msg.RoutingKey})
		c.out.Unlock(c.appendContent(b, ch.id, msg))
	}
	if ch.confirm {
		ch.conf.published(ch, seq, res.Stored, res.Rejected > 0)
		if !ch.dirty {
			ch.dirty = true
			ch.c.confirmDirty = append(ch.c.confirmDirty, ch)
		}
	}
	return nil
}

// flushConfirms sends the confirms that are due.
func (ch *channel) flushConfirms() {
	ch.dirty = false
	if ch.confirm {
		ch.conf.flush(ch)
	}
}

func fromWire(dst *core.Properties, p *wire.Properties) {
	*dst = core.Properties{
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, Headers: core.Table(p.Headers),
		DeliveryMode: p.DeliveryMode, Priority: p.Priority, CorrelationID: p.CorrelationID, ReplyTo: p.ReplyTo,
		Expiration: p.Expiration, MessageID: p.MessageID, Timestamp: p.Timestamp, Type: p.Type,
		UserID: p.UserID, AppID: p.AppID, ClusterID: p.ClusterID, Present: p.Present,
	}
}

func toWire(dst *wire.Properties, p *core.Properties) {
	*dst = wire.Properties{
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, Headers: wire.Table(p.Headers),
		DeliveryMode: p.DeliveryMode, Priority: p.Priority, CorrelationID: p.CorrelationID, ReplyTo: p.ReplyTo,
		Expiration: p.Expiration, MessageID: p.MessageID, Timestamp: p.Timestamp, Type: p.Type,
		UserID: p.UserID, AppID: p.AppID, ClusterID: p.ClusterID, Present: p.Present,
	}
}
