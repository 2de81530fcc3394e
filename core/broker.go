package core

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// Broker is the root of the core: a set of virtual hosts.
type Broker struct {
	mu     sync.RWMutex
	vhosts map[string]*Vhost

	connMu    sync.Mutex
	conns     map[*Conn]struct{}
	userConns map[string]int // admitted client connections per user; REQUIRES: connMu

	// Node limits (limits.go), fixed at construction; 0 is none.
	maxUserConns int
	maxConsumers int
	loginDelay   time.Duration

	flow  flow
	stats stats
	// queues whose stored messages cannot be read back; REQUIRES: flow.mu
	readFailing map[any]struct{}

	msgs MessageStore // nil: persistent messages are kept in memory only
	meta MetaStore    // nil: definitions are not stored
	log  *slog.Logger

	pageAfter int
	clock     clock.Clock
	// recovering is set while Recover runs: schedulers arm no timer.
	recovering atomic.Bool

	hookMu     sync.Mutex // taken alone; held while hooks run, so they run in order
	vhostHooks []func(*Vhost)
	// vhostDeletedHooks run after DeleteVhost; guarded by hookMu.
	vhostDeletedHooks []func(*Vhost)
}

// OnVhost calls fn for every vhost now and for every vhost added later
// (after it is added, with no core lock held; one at a time). In-process
// services that need their exchanges and queues in every vhost (such as
// notification delivery) use it.
func (b *Broker) OnVhost(fn func(*Vhost)) {
	b.hookMu.Lock()
	defer b.hookMu.Unlock()
	b.vhostHooks = append(b.vhostHooks, fn)
	for _, v := range b.Vhosts() {
		fn(v)
	}
}

// Clock returns the broker's clock, for adapters that expire or schedule.
func (b *Broker) Clock() clock.Clock { return b.clock }

// NewBroker returns an in-memory broker with the default virtual host "/".
func NewBroker() *Broker { return NewBrokerWith(Options{}) }

// AddVhost creates a virtual host with the standard exchanges, or returns the existing one.
func (b *Broker) AddVhost(name string) *Vhost {
	b.mu.Lock()
	if v, ok := b.vhosts[name]; ok {
		b.mu.Unlock()
		return v
	}
	v := newVhost(b, name)
	b.vhosts[name] = v
	b.mu.Unlock()
	b.hookMu.Lock()
	defer b.hookMu.Unlock()
	for _, fn := range b.vhostHooks {
		fn(v)
	}
	return v
}

// Vhost returns the named virtual host.
func (b *Broker) Vhost(name string) (*Vhost, bool) {
	b.mu.RLock()
	v, ok := b.vhosts[name]
	b.mu.RUnlock()
	return v, ok
}

// Vhosts lists the virtual hosts sorted by name.
func (b *Broker) Vhosts() []*Vhost {
	b.mu.RLock()
	out := make([]*Vhost, 0, len(b.vhosts))
	for _, v := range b.vhosts {
		out = append(out, v)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Connections lists the open client connections, oldest first.
func (b *Broker) Connections() []*Conn {
	b.connMu.Lock()
	out := make([]*Conn, 0, len(b.conns))
	for c := range b.conns {
		out = append(out, c)
	}
	b.connMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].info.ConnectedAt.Before(out[j].info.ConnectedAt) })
	return out
}

// randomName returns prefix followed by 22 URL-safe random characters, like
// RabbitMQ's amq.gen-… and amq.ctag-… names.
func randomName(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
