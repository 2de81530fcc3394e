// Package pipeline runs notification delivery on the core: it accepts
// notifications (HTTP, or messages published to the ums.notify exchange in
// any protocol), queues them on durable per-channel priority queues,
// consumes those with in-process workers that apply quiet hours, opt-outs,
// rate limits and expiry, send through the channel senders, retry with
// backoff, fall back to the next channel and dead-letter, and publishes
// every state change to the ums.events exchange.
//
// Everything that waits (send_at, quiet hours, retries, rate-limit waits)
// is a message scheduled with the core's scheduled delivery (Vhost.
// Schedule): no worker holds a message while it waits. A worker
// acknowledges its delivery only once the notification reached a final
// state or its next step is stored.
//
// The package sits between the core and the channels: it imports core and
// notify's small types; the channel senders (channels/*) are handed in as
// notify.Sender values by the composition root, so they know nothing of
// queues.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/notify"
)

// IntakeQueue receives notifications published as messages: it is bound to
// the ums.notify exchange with "#" and to the MQTT exchange with
// "ums.notify.*" (MQTT topic ums/notify/<channel>).
const IntakeQueue = "ums.notify.intake"

// jobType marks the messages of the per-channel queues (a job envelope);
// anything else found there is taken as a submission.
const jobType = "application/vnd.ums.notification+json"

// Defaults of Options.
const (
	DefaultMaxAttempts = 5
	DefaultDedupTTL    = 24 * time.Hour
	DefaultWorkers     = 8
	DefaultSendTimeout = 30 * time.Second
	DefaultHistory     = 100_000
	// intakeWorkers take submissions from the intake queue, up to
	// intakeBatch at a time each.
	intakeWorkers = 16
	intakeBatch   = 64
	// guardWait is how long a notification waits when the guards cannot
	// answer (Redis down with fail-open off).
	guardWait = 5 * time.Second
)

// Options configure a Pipeline. Broker is required; a channel is
// configured when it has a Sender.
type Options struct {
	Broker *core.Broker
	Users  *auth.Store
	// Meta stores templates, tenants' settings and opt-outs durably (nil:
	// in memory only).
	Meta *store.Meta
	// HistoryDir, when set, holds the journal of final states (see
	// history.go), written through FS (nil: the operating system's).
	HistoryDir string
	FS         store.FS
	// Guards deduplicate and rate-limit (nil: nothing is deduplicated or
	// limited). GuardHealth reports their state for the overview.
	Guards      notify.Guards
	GuardHealth func() (ok bool, detail string)
	Senders     map[string]notify.Sender
	// Address checks a channel's addresses at submission (the channel's
	// own rules: RFC 5322, E.164, the webhook SSRF guard).
	Address map[string]func(string) error
	// Check runs a channel's extra submission checks on a notification
	// (for example the SMS segment limit); errors should be
	// *notify.InvalidError.
	Check map[string]func(*notify.Notification) error
	// MQTTExchange is the exchange MQTT publishes to ("" for none).
	MQTTExchange string

	MaxAttempts     int // per channel, first try included
	Backoff         notify.Backoff
	DedupTTL        time.Duration
	RateLimits      map[string]notify.Limit // per channel (provider)
	RecipientLimits map[string]notify.Limit // per channel and address
	TenantLimits    map[string]notify.Limit // per channel and tenant
	Workers         map[string]int          // per channel
	SendTimeout     time.Duration
	History         int // notifications kept for status queries
	Logger          *slog.Logger
	// OnEvent, when set, is called for every status event the pipeline
	// publishes (queued, sending, sent, retrying, failed...), with the
	// notification's current channel. OnSend, when set, is called after
	// each call of a channel's Sender with the provider that answered
	// (Result.Provider, "" when the channel has one), how long the call
	// took and its error. Both run on the pipeline's goroutines and must be
	// quick (metrics, not I/O).
	OnEvent func(channel, status string)
	OnSend  func(channel, provider string, d time.Duration, err error)
}

// Pipeline is notification delivery for every vhost of a broker.
type Pipeline struct {
	o        Options
	clk      clock.Clock
	log      *slog.Logger
	channels []string // configured, sorted
	// configured has the channels as Rules.Configured wants them; it is
	// never changed after New.
	configured map[string]bool
	status     *statusStore
	history    *history // nil without Options.HistoryDir
	settings   *settings
	counters   counters

	// ctx ends when the pipeline closes: workers stop taking messages.
	// sendCtx ends a grace period later: sends under way are cut short.
	ctx        context.Context
	cancel     context.CancelFunc
	sendCtx    context.Context
	sendCancel context.CancelFunc
	wg         sync.WaitGroup

	// refused holds the job copies (stepKey) whose storing failed: they
	// may be queued in memory all the same, and are dropped when taken.
	refused sync.Map
	// pending holds the job copies being stored (stepKey -> a channel
	// closed once the store answered).
	pending sync.Map
	// templateVars is settings.templateVars, made once (Rules of every
	// submission carry it).
	templateVars func(id, locale string) ([]string, bool)

	mu     sync.Mutex
	vhosts map[string]*vstate
	closed bool
}

// vstate is the pipeline's state in one vhost.
type vstate struct {
	p    *Pipeline
	v    *core.Vhost
	conn *core.Conn

	deadMu sync.Mutex
	dead   map[string]deadEntry // dead-lettered notifications by id

	// The exchanges events go to, looked up again once deleted.
	eventsX, mqttX atomic.Pointer[core.Exchange]
}

// deadEntry is a dead-lettered notification held by the pipeline's
// consumer of the dead-letter queue, so that it can be retried by id.
type deadEntry struct {
	p *core.Puller
	d core.Delivery
}

// New builds a pipeline; Start sets it up in the broker's vhosts.
func New(o Options) (*Pipeline, error) {
	if o.Broker == nil {
		return nil, errors.New("pipeline: no broker")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.DedupTTL <= 0 {
		o.DedupTTL = DefaultDedupTTL
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Pipeline{o: o, clk: o.Broker.Clock(), log: o.Logger, vhosts: map[string]*vstate{}}
	for c := range o.Senders {
		p.channels = append(p.channels, c)
	}
	sort.Strings(p.channels)
	p.configured = make(map[string]bool, len(p.channels))
	for _, c := range p.channels {
		p.configured[c] = true
	}
	p.status = newStatusStore(o.History)
	s, err := loadSettings(o.Meta)
	if err != nil {
		return nil, err
	}
	p.settings = s
	p.templateVars = s.templateVars
	if o.HistoryDir != "" {
		fsys := o.FS
		if fsys == nil {
			fsys = store.OS()
		}
		h, err := openHistory(fsys, o.HistoryDir, o.Logger, p.status.restore)
		if err != nil {
			return nil, fmt.Errorf("notification history: %w", err)
		}
		p.history, p.status.journal = h, h.add
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.sendCtx, p.sendCancel = context.WithCancel(context.Background())
	return p, nil
}

// Start declares the exchanges and queues of notification delivery in every
// vhost and starts the workers; vhosts added later (a definitions import)
// get them as they are added. It returns the first failure among the
// vhosts that exist now; later ones are logged.
func (p *Pipeline) Start() error {
	var mu sync.Mutex
	var first error
	started := false
	p.o.Broker.OnVhost(func(v *core.Vhost) {
		_, err := p.vhost(v.Name)
		if err == nil || errors.Is(err, core.ErrClosed) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !started {
			if first == nil {
				first = err
			}
			return
		}
		p.log.Error("notification delivery not set up in a new vhost", "vhost", v.Name, "err", err)
	})
	// A deleted vhost's workers end as their queues go (their consumers
	// are cancelled); its state goes too, so a vhost created again under
	// the same name is set up afresh.
	p.o.Broker.OnVhostDeleted(func(v *core.Vhost) {
		p.mu.Lock()
		s := p.vhosts[v.Name]
		if s != nil && s.v == v {
			delete(p.vhosts, v.Name)
		}
		p.mu.Unlock()
		if s != nil && s.v == v {
			s.conn.Close()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	started = true
	return first
}

// Channels lists the configured channels.
func (p *Pipeline) Channels() []string { return append([]string(nil), p.channels...) }

// closeGrace is how long sends under way may go on once Close is called.
const closeGrace = 5 * time.Second

// Close stops the workers. Each finishes its current step first (a send
// under way gets closeGrace, then it is cut short and its notification
// requeued), so a notification sent is acknowledged and not sent again
// after a restart. Deliveries still buffered are requeued by the core when
// the pipeline's connections close.
func (p *Pipeline) Close() {
	p.mu.Lock()
	p.closed = true
	vs := p.vhosts
	p.vhosts = map[string]*vstate{}
	p.mu.Unlock()
	p.cancel()
	t := time.AfterFunc(closeGrace, p.sendCancel)
	p.wg.Wait()
	t.Stop()
	p.sendCancel()
	for _, s := range vs {
		s.conn.Close()
	}
	if p.history != nil {
		if err := p.history.close(); err != nil {
			p.log.Error("notification history not closed cleanly", "err", err)
		}
	}
}

// Health reports the guards' state (Redis reachable or not).
func (p *Pipeline) Health() (bool, string) {
	if p.o.GuardHealth == nil {
		return true, ""
	}
	return p.o.GuardHealth()
}

// vhost returns the pipeline's state in the named vhost, setting it up the
// first time.
func (p *Pipeline) vhost(name string) (*vstate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, core.ErrClosed
	}
	if s, ok := p.vhosts[name]; ok {
		return s, nil
	}
	v, ok := p.o.Broker.Vhost(name)
	if !ok {
		return nil, fmt.Errorf("%w: no vhost %q", core.ErrNotFound, name)
	}
	s := &vstate{p: p, v: v, dead: map[string]deadEntry{}}
	if err := s.declare(); err != nil {
		return nil, fmt.Errorf("notification delivery in vhost %q: %w", name, err)
	}
	s.conn = v.Open("ums-notify", core.ConnInfo{Name: "ums notification delivery", Protocol: "internal",
		ConnectedAt: p.clk.Now()})
	if err := s.startConsumers(); err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("notification delivery in vhost %q: %w", name, err)
	}
	p.vhosts[name] = s
	return s, nil
}

// declare creates the exchanges and queues (idempotent across restarts).
func (s *vstate) declare() error {
	v := s.v
	for _, x := range []string{notify.SubmitExchange, notify.EventsExchange} {
		if _, err := v.DeclareExchange(x, core.KindTopic, core.ExchangeOptions{Durable: true}); err != nil {
			return err
		}
	}
	durable := core.QueueOptions{Durable: true}
	for _, q := range []string{IntakeQueue, notify.InvalidQueue, notify.DeadQueue} {
		if _, err := v.DeclareQueue(nil, q, durable); err != nil {
			return err
		}
	}
	if err := v.Bind(nil, IntakeQueue, notify.SubmitExchange, "#", nil); err != nil {
		return err
	}
	if x := s.p.o.MQTTExchange; x != "" {
		if err := v.Bind(nil, IntakeQueue, x, "ums.notify.*", nil); err != nil && !errors.Is(err, core.ErrNotFound) {
			return err
		}
	}
	for _, c := range s.p.channels {
		if _, err := v.DeclareQueue(nil, notify.ChannelQueue(c), core.QueueOptions{Durable: true,
			Args: core.Table{"x-max-priority": int32(10)}}); err != nil {
			return err
		}
	}
	return nil
}

// startConsumers starts the intake consumer, the channel workers and the
// dead-letter holder.
func (s *vstate) startConsumers() error {
	pull := func(queue string, prefetch, buffer int) (*core.Puller, error) {
		q, err := s.v.InternalQueue(queue)
		if err != nil {
			q, err = s.v.Queue(nil, queue)
		}
		if err != nil {
			return nil, err
		}
		ss := s.conn.NewSession()
		ss.SetPrefetch(prefetch, false)
		return ss.Pull(q, core.PullOptions{Buffer: buffer})
	}
	in, err := pull(IntakeQueue, 2*intakeWorkers*intakeBatch, intakeWorkers*intakeBatch)
	if err != nil {
		return err
	}
	// Each intake worker waits for its batch to be stored (an fsync
	// shared with the others): several of them keep the disk's group
	// commits full.
	for range intakeWorkers {
		s.run(func() { s.intake(in) })
	}
	for _, c := range s.p.channels {
		n := s.p.o.Workers[c]
		if n <= 0 {
			n = DefaultWorkers
		}
		w, err := pull(notify.ChannelQueue(c), 2*n, n)
		if err != nil {
			return err
		}
		for range n {
			s.run(func() { s.work(c, w) })
		}
	}
	dead, err := pull(notify.DeadQueue, 0, 64)
	if err != nil {
		return err
	}
	s.run(func() { s.holdDead(dead) })
	return nil
}

func (s *vstate) run(fn func()) {
	s.p.wg.Add(1)
	go func() {
		defer s.p.wg.Done()
		fn()
	}()
}

// rules are the validation rules of this server now.
func (p *Pipeline) rules() notify.Rules {
	return notify.Rules{Configured: p.configured, Address: p.o.Address, Template: p.templateVars, Now: p.clk.Now()}
}

// ProviderReport records what a provider reported later about a message it
// accepted (a Twilio status callback: delivered, undelivered, failed):
// status is notify.StatusDelivered or notify.StatusFailed. It returns false
// when no recent notification has that provider id.
func (p *Pipeline) ProviderReport(provider, providerID, status, errText string) bool {
	rec, ok := p.status.byProviderID(provider, providerID)
	if !ok {
		return false
	}
	s, err := p.vhost(rec.Vhost)
	if err != nil {
		return false
	}
	now := p.clk.Now()
	p.status.update(rec.ID, status, rec.Channel, errText, now, &Attempt{Channel: rec.Channel, At: now,
		Status: status, Provider: provider, Answer: "delivery report", Error: errText})
	var r core.Router
	s.publishEvent(&r, notify.Event{ID: rec.ID, Status: status, Channel: rec.Channel, Attempt: len(rec.Attempts),
		Error: errText, At: now, Tenant: rec.Tenant, Tags: rec.Tags})
	return true
}
