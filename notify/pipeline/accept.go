package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/notify"
)

// job is the body of a message on a per-channel queue: a notification and
// where its delivery stands.
type job struct {
	ID       string               `json:"id"`
	N        *notify.Notification `json:"notification"`
	Channels []string             `json:"channels"`
	// CI indexes the channel being tried; Attempt counts the tries made
	// on it.
	CI       int       `json:"channel_index"`
	Attempt  int       `json:"attempt"`
	Accepted time.Time `json:"accepted_at"`
	// Hops counts every channel's attempts (for events and history).
	Hops      int       `json:"hops,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastError is the last failure (kept for the dead-letter queue).
	LastError string `json:"last_error,omitempty"`
	// Step counts the times the job was queued: it names one copy, so a
	// copy whose storing failed can be told from the one it replaces.
	Step int `json:"step"`
}

// stepKey names one queued copy of a job.
func (j *job) stepKey() string { return j.ID + "/" + strconv.Itoa(j.Step) }

func (j *job) channel() string { return j.Channels[j.CI] }

// Accepted is the answer to a submission.
type Accepted struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
}

// ErrUnavailable is returned when a submission cannot be taken now (the
// guards are down with fail-open off, or storage failed): HTTP 503.
var ErrUnavailable = errors.New("notification delivery unavailable")

// newID returns a random id (26 characters of Crockford base32: 130 bits).
func newID() string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [16]byte
	rand.Read(b[:])
	out := make([]byte, 26)
	var acc uint32
	bits, i := 0, 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[i] = alphabet[(acc>>bits)&31]
			i++
		}
	}
	out[i] = alphabet[(acc<<(5-bits))&31]
	return string(out)
}

// accept validates, deduplicates and queues one notification, and returns
// once it is stored (or refused). key is an idempotency key given outside
// the document (HTTP header, message header).
func (s *vstate) accept(ctx context.Context, r *core.Router, n *notify.Notification, key string) (Accepted, error) {
	p := s.p
	if key != "" && n.IdempotencyKey == "" {
		n.IdempotencyKey = key
	}
	rules := p.rules()
	channels, times, err := n.Validate(rules)
	if err == nil {
		err = p.extraChecks(n, channels)
	}
	if err != nil {
		return Accepted{}, err
	}
	j := &job{ID: newID(), N: n, Channels: channels, Accepted: rules.Now, ExpiresAt: times.ExpiresAt}
	if n.IdempotencyKey != "" && p.o.Guards != nil {
		holder, claimed, err := p.o.Guards.Claim(ctx, dedupKey(n.Tenant, n.IdempotencyKey), j.ID, p.o.DedupTTL)
		if err != nil {
			return Accepted{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if !claimed && holder != j.ID {
			status := p.status.current(holder)
			s.publishEvent(r, notify.Event{ID: holder, Status: notify.StatusDeduplicated, Channel: channels[0],
				At: p.clk.Now(), Tenant: n.Tenant, Tags: n.Tags})
			return Accepted{ID: holder, Status: status, Deduplicated: true}, nil
		}
	}
	status := notify.StatusQueued
	at := times.SendAt
	if at.After(rules.Now) {
		status = notify.StatusScheduled
	}
	// The event goes first: a worker may take the job as soon as it is
	// stored, and its events must come after this one.
	p.status.create(j, s.v.Name, status, rules.Now)
	s.event(r, j, status, "", nil)
	if err := s.enqueueWait(j, at); err != nil {
		s.event(r, j, notify.StatusFailed, "not stored: "+err.Error(), nil)
		return Accepted{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return Accepted{ID: j.ID, Status: status}, nil
}

// extraChecks runs the channels' own submission checks.
func (p *Pipeline) extraChecks(n *notify.Notification, channels []string) error {
	for _, c := range channels {
		if f := p.o.Check[c]; f != nil {
			if err := f(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func dedupKey(tenant, key string) string { return "idem:" + tenant + ":" + key }

// jobMessage encodes j as a message for its channel's queue.
func (s *vstate) jobMessage(j *job) *core.Message {
	body, err := encodeSized(j.appendJSON)
	if err != nil {
		body, _ = json.Marshal(j) // says nothing better: the document was checked at submission
	}
	return &core.Message{RoutingKey: notify.ChannelQueue(j.channel()), Body: body, Props: core.Properties{
		ContentType: jobType, DeliveryMode: core.Persistent, Priority: uint8(j.N.PriorityOf()),
		MessageID: j.ID, Timestamp: s.p.clk.Now(),
	}}
}

// enqueue stores j on its channel's queue, routed at at (now when zero or
// past); done is called once with the result of storing it.
func (s *vstate) enqueue(j *job, at time.Time, done func(error)) {
	res, err := s.v.Schedule(at, "", s.jobMessage(j), done)
	switch {
	case err != nil:
		done(err)
	case res.Rejected > 0:
		if !res.Stored {
			done(fmt.Errorf("%w: queue %s is full", core.ErrResourceError, notify.ChannelQueue(j.channel())))
		}
	case res.Queues == 0 && res.Scheduled == 0:
		done(fmt.Errorf("%w: no queue %s", core.ErrNotFound, notify.ChannelQueue(j.channel())))
	case !res.Stored:
		done(nil)
	}
}

// enqueueWait is enqueue that waits until it is stored.
//
// The copy is in the queue in memory before it is stored, and a worker may
// take it at once: the worker waits for it to be resolved (pending). When
// storing fails the copy is marked refused and the worker drops it (the
// caller keeps or requeues the copy it had, or answered that nothing was
// accepted), so nothing refused is ever sent.
func (s *vstate) enqueueWait(j *job, at time.Time) error {
	j.Step++
	key := j.stepKey()
	resolved := make(chan struct{})
	s.p.pending.Store(key, resolved)
	ch := make(chan error, 1)
	s.enqueue(j, at, func(err error) {
		if err != nil {
			s.p.refused.Store(key, struct{}{})
		}
		s.p.pending.Delete(key)
		close(resolved)
		ch <- err
	})
	err := <-ch
	if err != nil {
		j.Step--
	}
	return err
}

// refusedCopy reports whether a job copy taken from a queue is one whose
// storing failed, waiting until that is known.
func (p *Pipeline) refusedCopy(j *job) bool {
	key := j.stepKey()
	if r, ok := p.pending.Load(key); ok {
		<-r.(chan struct{})
	}
	_, refused := p.refused.LoadAndDelete(key)
	return refused
}

// publishWait publishes msg through exchange and waits until it is stored.
func (s *vstate) publishWait(r *core.Router, exchange string, msg *core.Message) error {
	ch := make(chan error, 1)
	msg.Exchange = exchange // deliveries say where it was published
	res, err := s.v.Publish(r, exchange, msg, func(err error) { ch <- err })
	if err != nil {
		return err
	}
	if !res.Stored {
		if res.Queues == 0 {
			return fmt.Errorf("%w: %s routed %s nowhere", core.ErrNotFound, exchange, msg.RoutingKey)
		}
		return nil
	}
	return <-ch
}
