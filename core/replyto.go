package core

import "strings"

// Direct reply-to (RabbitMQ's amq.rabbitmq.reply-to): an RPC client
// consumes from the pseudo-queue ReplyToQueue in no-ack mode and publishes
// requests with reply-to set to it; the core rewrites that to a per-session
// address, and replies published to that address through the default
// exchange go straight to the client's consumer without a queue.
const (
	ReplyToQueue  = "amq.rabbitmq.reply-to"
	replyToPrefix = ReplyToQueue + "."
)

// ConsumeReplyTo starts the session's direct reply-to consumer.
func (s *Session) ConsumeReplyTo(o ConsumeOptions) (*Consumer, error) {
	if !o.NoAck {
		return nil, errorf(ErrPreconditionFailed, "reply consumer cannot acknowledge")
	}
	v := s.conn.vhost
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errorf(ErrClosed, "session closed")
	}
	if s.replyTo != nil {
		s.mu.Unlock()
		return nil, errorf(ErrPreconditionFailed, "reply consumer already set")
	}
	if o.Tag == "" {
		o.Tag = randomName("amq.ctag-")
	}
	if _, dup := s.consumers[o.Tag]; dup {
		s.mu.Unlock()
		return nil, errorf(ErrNotAllowed, "attempt to reuse consumer tag '%s'", o.Tag)
	}
	c := &Consumer{Tag: o.Tag, NoAck: true, session: s, deliver: o.Deliver, cancelled: o.Cancelled, ready: o.Ready, flush: o.Flush}
	s.addConsumerLocked(c)
	s.replyTo = c
	s.replyToken = randomName("")
	token := s.replyToken
	if o.Started != nil {
		o.Started(o.Tag)
	}
	s.mu.Unlock()
	v.replyMu.Lock()
	v.replies[token] = s
	v.replyMu.Unlock()
	return c, nil
}

// ResolveReplyTo rewrites a reply-to of amq.rabbitmq.reply-to into the
// session's own reply address. It fails when the session has no reply consumer.
func (s *Session) ResolveReplyTo(p *Properties) error {
	if p.ReplyTo != ReplyToQueue {
		return nil
	}
	s.mu.Lock()
	token := s.replyToken
	s.mu.Unlock()
	if token == "" {
		return errorf(ErrPreconditionFailed, "fast reply consumer does not exist")
	}
	p.ReplyTo = replyToPrefix + token
	return nil
}

// dropReplyTo forgets the session's reply address. REQUIRES: s.mu.
func (s *Session) dropReplyToLocked() {
	if s.replyToken == "" {
		return
	}
	v := s.conn.vhost
	v.replyMu.Lock()
	delete(v.replies, s.replyToken)
	v.replyMu.Unlock()
	s.replyTo, s.replyToken = nil, ""
}

// publishReply delivers a reply addressed to a reply-to address; it
// reports false when no such consumer exists (the message is unroutable).
func (v *Vhost) publishReply(msg *Message) bool {
	token := strings.TrimPrefix(msg.RoutingKey, replyToPrefix)
	v.replyMu.RLock()
	s := v.replies[token]
	v.replyMu.RUnlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	c := s.replyTo
	if c == nil || s.closed {
		s.mu.Unlock()
		return false
	}
	s.nextTag++
	c.deliver(Delivery{Tag: s.nextTag, ConsumerTag: c.Tag, Msg: msg})
	s.mu.Unlock()
	if c.flush != nil {
		c.flush()
	}
	return true
}

func isReplyAddress(exchange, key string) bool {
	return exchange == "" && strings.HasPrefix(key, replyToPrefix)
}
