package core

import (
	"sort"
	"sync"
	"sync/atomic"
)

// flow is the broker-wide publishing gate: when memory or disk crosses its
// watermark, publishers wait (each protocol maps this onto its own flow
// control: AMQP stops reading from publishing connections and sends
// connection.blocked) until the alarm clears. Consumers keep going, which is
// what brings memory back down.
type flow struct {
	// gate is what PublishGate returns, read without a lock on every
	// publish: nil while publishing is allowed, else a channel closed when
	// it is allowed again. Written under mu.
	gate atomic.Pointer[chan struct{}]

	mu      sync.Mutex
	alarms  map[string]string // alarm name → reason
	faults  map[string]string // alarms that do not block publishing
	open    chan struct{}     // closed while publishing is allowed
	watches []func(blocked bool, reason string)
}

func (f *flow) init() {
	f.alarms = make(map[string]string)
	f.faults = make(map[string]string)
	f.open = make(chan struct{})
	close(f.open)
}

// SetAlarm raises (on) or clears an alarm such as "memory" or "disk".
// Publishing is blocked while any alarm is raised.
func (b *Broker) SetAlarm(name, reason string, on bool) {
	f := &b.flow
	f.mu.Lock()
	was := len(f.alarms) > 0
	if on {
		f.alarms[name] = reason
	} else {
		delete(f.alarms, name)
	}
	now := len(f.alarms) > 0
	var why string
	for _, r := range f.alarms {
		why = r
	}
	watches := f.watches
	switch {
	case now && !was:
		f.open = make(chan struct{})
		open := f.open
		f.gate.Store(&open)
	case !now && was:
		f.gate.Store(nil)
		close(f.open)
	}
	f.mu.Unlock()
	if now != was {
		b.log.Warn("publishing flow", "blocked", now, "reason", why)
		for _, w := range watches {
			w(now, why)
		}
	}
}

// PublishGate returns nil when publishing may proceed, or a channel that is
// closed when it may proceed again.
func (b *Broker) PublishGate() <-chan struct{} {
	if g := b.flow.gate.Load(); g != nil {
		return *g
	}
	return nil
}

// WatchFlow registers fn to hear when publishing becomes blocked or
// unblocked (with the alarm's reason). fn must not block.
func (b *Broker) WatchFlow(fn func(blocked bool, reason string)) {
	b.flow.mu.Lock()
	b.flow.watches = append(b.flow.watches, fn)
	b.flow.mu.Unlock()
}

// SetFault raises (on) or clears an alarm that does not block publishing,
// such as a failing definition store or unreadable stored messages: it is
// reported (Alarms, the management API) for an operator to act on.
func (b *Broker) SetFault(name, reason string, on bool) {
	f := &b.flow
	f.mu.Lock()
	_, was := f.faults[name]
	if on {
		f.faults[name] = reason
	} else {
		delete(f.faults, name)
	}
	f.mu.Unlock()
	if was && !on {
		b.log.Info("alarm cleared", "alarm", name)
	}
}

// Alarm is a raised alarm.
type Alarm struct {
	Name   string
	Reason string
	// Blocking is true for alarms that block publishers (memory, disk).
	Blocking bool
}

// Alarms lists the raised alarms sorted by name.
func (b *Broker) Alarms() []Alarm {
	f := &b.flow
	f.mu.Lock()
	out := make([]Alarm, 0, len(f.alarms)+len(f.faults))
	for n, r := range f.alarms {
		out = append(out, Alarm{Name: n, Reason: r, Blocking: true})
	}
	for n, r := range f.faults {
		out = append(out, Alarm{Name: n, Reason: r})
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
