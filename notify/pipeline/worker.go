package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/notify"
)

// intake takes notifications published as messages (to ums.notify over
// AMQP, MQTT or STOMP) and accepts them like the HTTP API does, those it
// finds waiting together as one batch (acceptAll). An invalid one is
// dead-lettered to ums.notify.invalid with the reason in the x-ums-error
// header. The publisher's confirm was sent when the intake queue stored
// the message; the message is acknowledged here only once the
// notification is queued or dead-lettered.
func (s *vstate) intake(p *core.Puller) {
	var r core.Router
	var ds []core.Delivery
	for {
		var err error
		ds, err = p.NextBatch(s.p.ctx, ds[:0], intakeBatch)
		if err != nil || s.p.ctx.Err() != nil {
			return // closing: what was taken is requeued when the connection closes
		}
		s.submitMessages(&r, p, ds)
		clear(ds)
	}
}

// submitMessage accepts the notification in d's body and settles d.
func (s *vstate) submitMessage(r *core.Router, p *core.Puller, d core.Delivery) {
	s.submitMessages(r, p, []core.Delivery{d})
}

// submitMessages accepts the notifications in ds' bodies and settles
// each delivery: acknowledged once queued (or deduplicated), or
// dead-lettered as invalid; requeued when it cannot be taken now.
func (s *vstate) submitMessages(r *core.Router, p *core.Puller, ds []core.Delivery) {
	ns := make([]*notify.Notification, len(ds))
	keys := make([]string, len(ds))
	out := make([]outcome, len(ds))
	for i, d := range ds {
		n, err := notify.Decode(d.Msg.Body)
		if err != nil {
			out[i].err = err
			continue
		}
		if n.Channel == "" && len(n.Channels) == 0 {
			n.Channel = channelFromKey(d.Msg)
		}
		ns[i], keys[i] = n, headerString(d.Msg.Props.Headers, "idempotency-key")
	}
	s.acceptAll(s.p.ctx, r, ns, keys, out)
	paused := false
	pause := func() {
		if !paused {
			paused = true
			s.pause()
		}
	}
	for i, d := range ds {
		switch err := out[i].err; {
		case err == nil:
			p.Ack(d)
		case errors.Is(err, ErrUnavailable):
			s.p.log.Warn("notification not accepted now; requeued", "err", err)
			pause()
			p.Nack(d, true)
		default:
			if err := s.deadLetter(r, notify.InvalidQueue, d.Msg, errorText(err)); err != nil {
				s.p.log.Error("invalid notification not dead-lettered; requeued", "err", err)
				pause()
				p.Nack(d, true)
				continue
			}
			p.Ack(d)
		}
	}
}

// pause waits a moment before a requeued message comes back (storage or
// the guards are failing), unless the pipeline stops.
func (s *vstate) pause() {
	ch := make(chan struct{})
	t := s.p.clk.AfterFunc(time.Second, func() { close(ch) })
	select {
	case <-s.p.ctx.Done():
		t.Stop()
	case <-ch:
	}
}

// channelFromKey is the channel a submission's routing key names:
// "<channel>" on ums.notify, "ums.notify.<channel>" on the MQTT exchange.
func channelFromKey(m *core.Message) string {
	k := m.RoutingKey
	if m.Exchange != notify.SubmitExchange {
		k = strings.TrimPrefix(k, "ums.notify.")
	}
	return k
}

func headerString(h core.Table, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			switch v := v.(type) {
			case string:
				return v
			case []byte:
				return string(v)
			}
		}
	}
	return ""
}

// errorText is the x-ums-error of a refused notification.
func errorText(err error) string {
	var ie *notify.InvalidError
	if errors.As(err, &ie) {
		return ie.Field + ": " + ie.Reason
	}
	return err.Error()
}

// deadLetter stores a copy of msg on queue with reason in x-ums-error.
func (s *vstate) deadLetter(r *core.Router, queue string, msg *core.Message, reason string) error {
	h := make(core.Table, len(msg.Props.Headers)+2)
	for k, v := range msg.Props.Headers {
		h[k] = v
	}
	h[notify.HeaderError] = reason
	if msg.Exchange != "" || msg.RoutingKey != queue {
		h["x-ums-original-exchange"] = msg.Exchange
		h["x-ums-original-routing-key"] = msg.RoutingKey
	}
	props := msg.Props
	props.Headers = h
	props.DeliveryMode = core.Persistent
	props.Expiration, props.Present = "", props.Present&^core.PresentExpiration
	return s.publishWait(r, "", &core.Message{RoutingKey: queue, Props: props, Body: msg.Body})
}

// work is one worker of a channel.
func (s *vstate) work(channel string, p *core.Puller) {
	var r core.Router
	var jd jobDecoder
	for {
		d, err := p.Next(s.p.ctx)
		if err != nil || s.p.ctx.Err() != nil {
			return // closing: what was taken is requeued when the connection closes
		}
		if d.Msg.Props.ContentType != jobType {
			// A notification published straight to the channel queue.
			s.submitMessage(&r, p, d)
			continue
		}
		var j job
		if err := jd.decode(d.Msg.Body, &j); err != nil || j.N == nil || j.CI >= len(j.Channels) || j.Channels[j.CI] != channel {
			if err == nil {
				err = errors.New("not a notification job of this channel")
			}
			if s.deadLetter(&r, notify.InvalidQueue, d.Msg, err.Error()) != nil {
				s.pause()
				p.Nack(d, true)
				continue
			}
			p.Ack(d)
			continue
		}
		if s.p.refusedCopy(&j) {
			p.Ack(d) // its storing failed; the copy it replaced goes on
			continue
		}
		s.p.status.ensure(&j, s.v.Name, notify.StatusQueued, s.p.clk.Now())
		if s.step(&r, &j) {
			p.Ack(d)
		} else {
			s.pause()
			p.Nack(d, true)
		}
	}
}

// step takes j one step further: it is sent, held, retried later, moved to
// the next channel or dead-lettered. It returns false when the next step
// could not be stored (the delivery is then requeued).
func (s *vstate) step(r *core.Router, j *job) bool {
	p := s.p
	now := p.clk.Now()
	n := j.N
	channel := j.channel()
	if !j.ExpiresAt.IsZero() && !now.Before(j.ExpiresAt) {
		s.event(r, j, notify.StatusExpired, "expired at "+j.ExpiresAt.Format(time.RFC3339), &Attempt{
			Channel: channel, Attempt: j.Attempt, At: now, Status: notify.StatusExpired})
		return true
	}
	addr := address(n, channel)
	if classOf(n) == notify.ClassAdvertising {
		if p.settings.optedOut(n.Tenant, addr) {
			s.event(r, j, notify.StatusFailed, "opted_out", &Attempt{Channel: channel, Attempt: j.Attempt, At: now,
				Status: notify.StatusFailed, Error: "opted_out"})
			return true
		}
		if t, ok := p.settings.tenant(n.Tenant); ok && t.QuietHours != nil {
			if until, in := t.QuietHours.Until(now); in {
				return s.later(r, j, until, notify.StatusScheduled, "quiet_hours")
			}
		}
	}
	if wait, err := s.limit(channel, addr, n); err != nil {
		return s.later(r, j, now.Add(guardWait), notify.StatusRateLimited, err.Error())
	} else if wait > 0 {
		return s.later(r, j, now.Add(wait), notify.StatusRateLimited, "")
	}
	return s.send(r, j)
}

// later schedules j at at and records status.
func (s *vstate) later(r *core.Router, j *job, at time.Time, status, reason string) bool {
	// Events go before the job is stored: once stored it may be taken at
	// once, and the next events must follow this one. Should storing fail,
	// the delivery is requeued and comes back with new events.
	s.event(r, j, status, reason, nil)
	if err := s.enqueueWait(r, j, at); err != nil {
		s.p.log.Error("notification not rescheduled; requeued", "id", j.ID, "err", err)
		return false
	}
	return true
}

// limit checks the rate limits of a send (the channel's, the recipient's
// and the tenant's; critical notifications skip the last two) and returns
// how long to wait when one is exhausted. The checks go in that order in
// one call (one round trip to Redis): those before an exhausted one are
// counted, as separate calls would count them.
func (s *vstate) limit(channel, addr string, n *notify.Notification) (time.Duration, error) {
	g := s.p.o.Guards
	if g == nil {
		return 0, nil
	}
	checks := make([]notify.LimitCheck, 0, 3)
	add := func(key string, l notify.Limit, ok bool) {
		if ok && l.Rate > 0 {
			checks = append(checks, notify.LimitCheck{Key: key, Limit: l})
		}
	}
	l, ok := s.p.o.RateLimits[channel]
	add("rate:"+channel, l, ok)
	if classOf(n) != notify.ClassCritical {
		l, ok = s.p.o.RecipientLimits[channel]
		add("rcpt:"+channel+":"+n.Tenant+":"+strings.ToLower(addr), l, ok)
		if n.Tenant != "" {
			l, ok = s.p.o.TenantLimits[channel]
			add("tenant:"+channel+":"+n.Tenant, l, ok)
		}
	}
	if len(checks) == 0 {
		return 0, nil
	}
	// No deadline of its own: the embedded guards do not wait, and the
	// Redis guards bound every round trip themselves.
	allowed, wait, err := notify.AllowAll(s.p.ctx, g, checks)
	if err != nil || allowed {
		return 0, err
	}
	return max(wait, time.Millisecond), nil
}

// address is a notification's address on channel.
func address(n *notify.Notification, channel string) string {
	switch channel {
	case notify.ChannelEmail:
		return n.To.Email
	case notify.ChannelSMS:
		return n.To.Phone
	case notify.ChannelWebhook:
		return n.To.Webhook
	case notify.ChannelPush:
		return string(n.To.Push)
	}
	return n.To.Phone // gateways (SMS, KakaoTalk) address phone numbers
}

// send renders and sends j on its channel and records the outcome.
func (s *vstate) send(r *core.Router, j *job) bool {
	p := s.p
	channel := j.channel()
	j.Attempt++
	j.Hops++
	s.event(r, j, notify.StatusSending, "", nil)
	m, err := s.message(j)
	var res notify.Result
	if err == nil {
		ctx, cancel := context.WithTimeout(p.sendCtx, p.o.SendTimeout)
		start := p.clk.Now()
		res, err = p.o.Senders[channel].Send(ctx, m)
		cancel()
		p.counters.send(channel, res.Provider, p.clk.Now().Sub(start), err)
		if f := p.o.OnSend; f != nil {
			f(channel, res.Provider, p.clk.Now().Sub(start), err)
		}
		if err != nil && p.sendCtx.Err() != nil {
			return false // cut short by shutdown: requeued, sent again after the restart
		}
	} else {
		err = notify.Permanent(0, err)
	}
	now := p.clk.Now()
	a := &Attempt{Channel: channel, Attempt: j.Attempt, At: now, Provider: res.Provider, ProviderID: res.ProviderID,
		Answer: res.Answer, Segments: res.Segments}
	if err == nil {
		a.Status = notify.StatusSent
		s.event(r, j, notify.StatusSent, "", a)
		return true
	}
	a.Error = err.Error()
	j.LastError = a.Error
	if !notify.IsPermanent(err) && j.Attempt < p.o.MaxAttempts {
		a.Status = notify.StatusRetrying
		at := now.Add(p.o.Backoff.Delay(j.Attempt, err))
		s.event(r, j, notify.StatusRetrying, a.Error, a)
		if err := s.enqueueWait(r, j, at); err != nil {
			p.log.Error("notification retry not stored; requeued", "id", j.ID, "err", err)
			return false
		}
		return true
	}
	a.Status = notify.StatusFailed
	if j.CI+1 < len(j.Channels) {
		// Fall back to the next channel.
		s.event(r, j, notify.StatusFailed, a.Error, a)
		j.CI++
		j.Attempt = 0
		s.event(r, j, notify.StatusQueued, "", nil)
		if err := s.enqueueWait(r, j, time.Time{}); err != nil {
			p.log.Error("notification fallback not stored; requeued", "id", j.ID, "err", err)
			return false
		}
		return true
	}
	s.p.status.update(j.ID, notify.StatusFailed, channel, a.Error, now, a)
	return s.bury(r, j, a.Error)
}

// bury dead-letters j to ums.notify.dlq with its last error.
func (s *vstate) bury(r *core.Router, j *job, reason string) bool {
	msg := s.jobMessage(j)
	msg.Props.Headers = core.Table{notify.HeaderError: reason}
	msg.RoutingKey = notify.DeadQueue
	if err := s.publishWait(r, "", msg); err != nil {
		s.p.log.Error("notification not dead-lettered; requeued", "id", j.ID, "err", err)
		return false
	}
	s.event(r, j, notify.StatusDeadLettered, reason, nil)
	return true
}

// message renders j for its channel.
func (s *vstate) message(j *job) (*notify.Message, error) {
	n := j.N
	channel := j.channel()
	var c notify.Content
	if n.Template != "" {
		t, ok := s.p.settings.template(n.Template)
		if !ok {
			return nil, fmt.Errorf("template %q was deleted", n.Template)
		}
		var err error
		if c, err = t.compiled.Render(n.Locale, n.Data); err != nil {
			return nil, err
		}
	} else if n.Content != nil {
		c = *n.Content
	}
	m := &notify.Message{ID: j.ID, Channel: channel, To: address(n, channel), Subject: c.Subject, Text: c.Text,
		HTML: c.HTML, Media: c.Media, Data: n.Data, Class: classOf(n), Tenant: n.Tenant, Tags: n.Tags,
		Attempt: j.Attempt}
	if channel == notify.ChannelPush {
		m.Push = n.To.Push
	}
	if channel == notify.ChannelWebhook {
		// The sender's own copy: net/http may read it after Send returned.
		body, err := encodeSized(webhookBody{ID: j.ID, Notification: n, Content: c, Attempt: j.Attempt}.appendJSON)
		if err != nil {
			return nil, err
		}
		m.Body = body
	}
	return m, nil
}

// webhookBody is what a webhook receives: the notification as submitted,
// its id and the rendered content.
type webhookBody struct {
	ID           string               `json:"id"`
	Attempt      int                  `json:"attempt"`
	Content      notify.Content       `json:"content"`
	Notification *notify.Notification `json:"notification"`
}

// holdDead consumes the dead-letter queue without acknowledging: the
// notifications stay there (and come back to this consumer after a
// restart) until one is retried by id.
func (s *vstate) holdDead(p *core.Puller) {
	for {
		d, err := p.Next(s.p.ctx)
		if err != nil || s.p.ctx.Err() != nil {
			return // closing: what was taken is requeued when the connection closes
		}
		id := d.Msg.Props.MessageID
		var j job
		if d.Msg.Props.ContentType == jobType && json.Unmarshal(d.Msg.Body, &j) == nil && j.N != nil && j.CI < len(j.Channels) {
			s.p.status.ensure(&j, s.v.Name, notify.StatusDeadLettered, s.p.clk.Now())
			id = j.ID
		}
		if id == "" {
			continue // not ours: held, never retried by id
		}
		s.deadMu.Lock()
		if old, ok := s.dead[id]; ok {
			old.p.Nack(old.d, false) // a second copy: the newest stays
		}
		s.dead[id] = deadEntry{p: p, d: d}
		s.deadMu.Unlock()
	}
}

// ErrNotDead is returned when retrying a notification that is not in the
// dead-letter queue.
var ErrNotDead = errors.New("not in the dead-letter queue")

// retry sends a dead-lettered notification again from its first channel.
func (s *vstate) retry(r *core.Router, id string) (Accepted, error) {
	s.deadMu.Lock()
	e, ok := s.dead[id]
	if ok {
		delete(s.dead, id)
	}
	s.deadMu.Unlock()
	if !ok {
		return Accepted{}, ErrNotDead
	}
	var j job
	if err := json.Unmarshal(e.d.Msg.Body, &j); err != nil || j.N == nil {
		s.putBackDead(id, e)
		return Accepted{}, fmt.Errorf("%w: the dead-lettered message is not a notification", ErrNotDead)
	}
	j.CI, j.Attempt, j.LastError = 0, 0, ""
	s.p.status.ensure(&j, s.v.Name, notify.StatusQueued, s.p.clk.Now())
	s.event(r, &j, notify.StatusQueued, "", nil)
	if err := s.enqueueWait(r, &j, time.Time{}); err != nil {
		s.putBackDead(id, e)
		s.event(r, &j, notify.StatusDeadLettered, "retry not stored: "+err.Error(), nil)
		return Accepted{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	e.p.Ack(e.d)
	return Accepted{ID: id, Status: notify.StatusQueued}, nil
}

func (s *vstate) putBackDead(id string, e deadEntry) {
	s.deadMu.Lock()
	s.dead[id] = e
	s.deadMu.Unlock()
}

// deadIDs lists the dead-lettered notifications held.
func (s *vstate) deadIDs() []string {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	out := make([]string, 0, len(s.dead))
	for id := range s.dead {
		out = append(out, id)
	}
	return out
}
