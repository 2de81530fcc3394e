package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
	pr, err := s.prepare(n, key)
	if err != nil {
		return Accepted{}, err
	}
	if c, ok := s.claimOf(pr); ok {
		var res notify.ClaimResult
		res.Holder, res.Claimed, res.Err = s.p.o.Guards.Claim(ctx, c.Key, c.ID, s.p.o.DedupTTL)
		if a, done, err := s.afterClaim(r, pr, res); done {
			return a, err
		}
	}
	ch := make(chan error, 1)
	s.start(r, pr, func(err error) { ch <- err })
	return s.stored(r, pr, <-ch)
}

// outcome is what accepting one notification of several came to.
type outcome struct {
	a   Accepted
	err error
}

// acceptAll accepts ns step by step, each step for all of them at once:
// validation, one call claiming their idempotency keys (keys[i]: one
// given outside the document, or ""), then their jobs stored together (one
// store batch) with one wait. A nil ns[i] is skipped; out[i] gets the
// outcome of the others, as accept would give it.
func (s *vstate) acceptAll(ctx context.Context, r *core.Router, ns []*notify.Notification, keys []string, out []outcome) {
	preps := make([]prepared, len(ns))
	var claims []notify.ClaimRequest
	var claimOf []int // index in ns of each claim
	for i, n := range ns {
		if n == nil {
			continue
		}
		pr, err := s.prepare(n, keys[i])
		if err != nil {
			out[i] = outcome{err: err}
			continue
		}
		preps[i] = pr
		if c, ok := s.claimOf(pr); ok {
			claims = append(claims, c)
			claimOf = append(claimOf, i)
		}
	}
	var dups []int // deduplicated: their status is read once all are queued
	if len(claims) > 0 {
		for k, res := range notify.ClaimAll(ctx, s.p.o.Guards, claims, s.p.o.DedupTTL) {
			i := claimOf[k]
			if a, done, err := s.afterClaim(r, preps[i], res); done {
				out[i] = outcome{a, err}
				preps[i].j = nil
				if a.Deduplicated {
					dups = append(dups, i)
				}
			}
		}
	}
	errs := make([]error, len(ns))
	var wg sync.WaitGroup
	for i := range preps {
		if preps[i].j != nil {
			wg.Add(1)
			s.start(r, preps[i], func(err error) {
				errs[i] = err
				wg.Done()
			})
		}
	}
	wg.Wait()
	for i := range preps {
		if preps[i].j != nil {
			a, err := s.stored(r, preps[i], errs[i])
			out[i] = outcome{a, err}
		}
	}
	// A key given twice is held by a notification queued just now: its
	// status is known only now.
	for _, i := range dups {
		out[i].a.Status = s.p.status.current(out[i].a.ID)
	}
}

// prepared is a valid notification on its way to its queue: accept's
// steps are apart so that a batch takes each step for all of its
// notifications at once (one claim call, one store batch).
type prepared struct {
	j      *job
	status string    // queued or scheduled
	at     time.Time // when it is to be sent (zero: now)
	now    time.Time
}

// prepare validates n (with key as its idempotency key unless it has one)
// and makes its job.
func (s *vstate) prepare(n *notify.Notification, key string) (prepared, error) {
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
		return prepared{}, err
	}
	pr := prepared{
		j:      &job{ID: newID(), N: n, Channels: channels, Accepted: rules.Now, ExpiresAt: times.ExpiresAt},
		status: notify.StatusQueued, at: times.SendAt, now: rules.Now,
	}
	if pr.at.After(rules.Now) {
		pr.status = notify.StatusScheduled
	}
	return pr, nil
}

// claimOf returns the claim of pr's idempotency key, if it has one to
// claim.
func (s *vstate) claimOf(pr prepared) (notify.ClaimRequest, bool) {
	n := pr.j.N
	if n.IdempotencyKey == "" || s.p.o.Guards == nil {
		return notify.ClaimRequest{}, false
	}
	return notify.ClaimRequest{Key: dedupKey(n.Tenant, n.IdempotencyKey), ID: pr.j.ID}, true
}

// afterClaim takes the answer to pr's claim: done when pr is not to be
// queued, with what to answer (a duplicate, or the guards' failure).
func (s *vstate) afterClaim(r *core.Router, pr prepared, res notify.ClaimResult) (a Accepted, done bool, err error) {
	if res.Err != nil {
		return Accepted{}, true, fmt.Errorf("%w: %v", ErrUnavailable, res.Err)
	}
	if res.Claimed || res.Holder == pr.j.ID {
		return Accepted{}, false, nil
	}
	n := pr.j.N
	status := s.p.status.current(res.Holder)
	s.publishEvent(r, notify.Event{ID: res.Holder, Status: notify.StatusDeduplicated, Channel: pr.j.Channels[0],
		At: s.p.clk.Now(), Tenant: n.Tenant, Tags: n.Tags})
	return Accepted{ID: res.Holder, Status: status, Deduplicated: true}, true, nil
}

// start records pr's first status and stores its job; done is called once
// with the result of storing it (see enqueueAsync).
func (s *vstate) start(r *core.Router, pr prepared, done func(error)) {
	// The event goes first: a worker may take the job as soon as it is
	// stored, and its events must come after this one.
	s.p.status.create(pr.j, s.v.Name, pr.status, pr.now)
	s.event(r, pr.j, pr.status, "", nil)
	s.enqueueAsync(r, pr.j, pr.at, done)
}

// stored is the answer to pr once storing it ended with err.
func (s *vstate) stored(r *core.Router, pr prepared, err error) (Accepted, error) {
	if err != nil {
		s.event(r, pr.j, notify.StatusFailed, "not stored: "+err.Error(), nil)
		return Accepted{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return Accepted{ID: pr.j.ID, Status: pr.status}, nil
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
func (s *vstate) enqueue(r *core.Router, j *job, at time.Time, done func(error)) {
	res, err := s.v.Schedule(r, at, "", s.jobMessage(j), done)
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

// enqueueWait is enqueueAsync that waits until it is stored.
func (s *vstate) enqueueWait(r *core.Router, j *job, at time.Time) error {
	ch := make(chan error, 1)
	s.enqueueAsync(r, j, at, func(err error) { ch <- err })
	return <-ch
}

// enqueueAsync stores a new copy of j (its Step counted up) on its
// channel's queue and calls done once with the result; a copy that could
// not be stored leaves j's Step as it was.
//
// The copy is in the queue in memory before it is stored, and a worker may
// take it at once: the worker waits for it to be resolved (pending). When
// storing fails the copy is marked refused and the worker drops it (the
// caller keeps or requeues the copy it had, or answered that nothing was
// accepted), so nothing refused is ever sent.
func (s *vstate) enqueueAsync(r *core.Router, j *job, at time.Time, done func(error)) {
	j.Step++
	key := j.stepKey()
	resolved := make(chan struct{})
	s.p.pending.Store(key, resolved)
	s.enqueue(r, j, at, func(err error) {
		if err != nil {
			s.p.refused.Store(key, struct{}{})
			j.Step--
		}
		s.p.pending.Delete(key)
		close(resolved)
		done(err)
	})
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
