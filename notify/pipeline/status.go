package pipeline

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/notify"
)

// Record is a notification's current status and history, as
// GET /api/v1/notifications/{id} answers it.
type Record struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Channel   string    `json:"channel"`
	Channels  []string  `json:"channels"`
	Class     string    `json:"class"`
	Priority  int       `json:"priority"`
	Tenant    string    `json:"tenant,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Attempts  []Attempt `json:"attempts"`
	Vhost     string    `json:"vhost"`

	providerKeys []string // byProvider keys of its sends
}

// Attempt is one send attempt (or a step without a send: held for quiet
// hours, rate-limited, expired).
type Attempt struct {
	Channel    string    `json:"channel"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Status     string    `json:"status"`
	Provider   string    `json:"provider,omitempty"`
	ProviderID string    `json:"provider_id,omitempty"`
	Answer     string    `json:"answer,omitempty"`
	Segments   int       `json:"segments,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// maxAttempts bounds the history kept per notification.
const maxAttempts = 64

// statusShards spreads the status store over independent locks: every
// notification updates it several times, from many workers at once.
const statusShards = 32

// statusStore keeps the most recent notifications in memory, the oldest
// of each shard dropped first. It is not durable: after a restart, a
// notification is known again from its next step (a worker taking it, the
// dead-letter queue).
type statusStore struct {
	shards [statusShards]statusShard
	// byProvider finds a notification by its provider's message id
	// (provider + ":" + id), for delivery reports such as Twilio's status
	// callbacks.
	byProvider sync.Map
	// journal, when set, records final states (see history.go).
	journal func(Record)
}

type statusShard struct {
	mu    sync.Mutex
	max   int
	byID  map[string]*Record
	order []string // ring of ids in creation order
	head  int
}

func newStatusStore(limit int) *statusStore {
	st := &statusStore{}
	for i := range st.shards {
		st.shards[i] = statusShard{max: max(1, limit/statusShards), byID: make(map[string]*Record)}
	}
	return st
}

func (st *statusStore) shard(id string) *statusShard {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return &st.shards[h%statusShards]
}

func (st *statusStore) create(j *job, vhost, status string, now time.Time) {
	n := j.N
	r := &Record{Vhost: vhost, ID: j.ID, Status: status, Channel: j.channel(), Channels: j.Channels, Class: classOf(n),
		Priority: n.PriorityOf(), Tenant: n.Tenant, Tags: n.Tags, CreatedAt: j.Accepted, UpdatedAt: now,
		Attempts: []Attempt{}}
	sh := st.shard(r.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.byID[r.ID]; ok {
		return
	}
	st.insertLocked(sh, r)
}

// insertLocked adds r as the shard's newest record. REQUIRES: sh.mu.
func (st *statusStore) insertLocked(sh *statusShard, r *Record) {
	if len(sh.order) < sh.max {
		sh.order = append(sh.order, r.ID)
	} else {
		if old := sh.byID[sh.order[sh.head]]; old != nil {
			for _, k := range old.providerKeys {
				st.byProvider.CompareAndDelete(k, old.ID)
			}
		}
		delete(sh.byID, sh.order[sh.head])
		sh.order[sh.head] = r.ID
		sh.head = (sh.head + 1) % sh.max
	}
	sh.byID[r.ID] = r
}

// restore puts a journaled record back (after a restart), replacing an
// earlier one of the same notification.
func (st *statusStore) restore(r Record) {
	sh := st.shard(r.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.byID[r.ID]; ok {
		*old = r
	} else {
		st.insertLocked(sh, &r)
	}
	rec := sh.byID[r.ID]
	for _, a := range rec.Attempts {
		if a.Provider != "" && a.ProviderID != "" {
			k := a.Provider + ":" + a.ProviderID
			st.byProvider.Store(k, r.ID)
			rec.providerKeys = append(rec.providerKeys, k)
		}
	}
}

// ensure makes sure j has a record (after a restart), without changing it.
func (st *statusStore) ensure(j *job, vhost, status string, now time.Time) {
	sh := st.shard(j.ID)
	sh.mu.Lock()
	_, ok := sh.byID[j.ID]
	sh.mu.Unlock()
	if !ok {
		st.create(j, vhost, status, now)
	}
}

// update sets a notification's status and adds an attempt to its history
// when a is not nil.
func (st *statusStore) update(id, status, channel, errText string, now time.Time, a *Attempt) {
	sh := st.shard(id)
	sh.mu.Lock()
	r, ok := sh.byID[id]
	if !ok {
		sh.mu.Unlock()
		return
	}
	defer func() {
		var snap Record
		journal := st.journal != nil && finalStatus(status)
		if journal {
			snap = *r
			snap.Attempts = append([]Attempt{}, r.Attempts...)
			snap.providerKeys = nil
		}
		sh.mu.Unlock()
		if journal {
			st.journal(snap)
		}
	}()
	r.Status, r.UpdatedAt = status, now
	if channel != "" {
		r.Channel = channel
	}
	if errText != "" || status == notify.StatusSent || status == notify.StatusDelivered {
		r.Error = errText
	}
	if a != nil && len(r.Attempts) < maxAttempts {
		r.Attempts = append(r.Attempts, *a)
	}
	if a != nil && a.ProviderID != "" && a.Provider != "" {
		k := a.Provider + ":" + a.ProviderID
		st.byProvider.Store(k, id)
		r.providerKeys = append(r.providerKeys, k)
	}
}

// byProviderID returns the record of the notification a provider knows as
// providerID.
func (st *statusStore) byProviderID(provider, providerID string) (Record, bool) {
	id, ok := st.byProvider.Load(provider + ":" + providerID)
	if !ok {
		return Record{}, false
	}
	return st.get(id.(string))
}

// current returns a notification's status ("accepted" when it is no longer
// or not yet known here).
func (st *statusStore) current(id string) string {
	sh := st.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.byID[id]; ok {
		return r.Status
	}
	return "accepted"
}

// get returns a copy of a record.
func (st *statusStore) get(id string) (Record, bool) {
	sh := st.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.byID[id]
	if !ok {
		return Record{}, false
	}
	c := *r
	c.Attempts = append([]Attempt{}, r.Attempts...)
	c.providerKeys = nil
	return c, true
}

// Filter selects records for list.
type Filter struct {
	Status, Channel, Tenant string
	Since                   time.Time
	Limit                   int
}

// list returns the most recent records matching f, newest first.
func (st *statusStore) list(f Filter) []Record {
	out := []Record{}
	for i := range st.shards {
		out = append(out, st.shards[i].list(f)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// list returns the shard's most recent records matching f, newest first.
func (sh *statusShard) list(f Filter) []Record {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []Record
	n := len(sh.order)
	for i := range n {
		// newest first: the slot before head (0 until the ring is full),
		// going backwards
		r := sh.byID[sh.order[(sh.head-1-i+2*n)%n]]
		if r == nil || (f.Status != "" && r.Status != f.Status) || (f.Channel != "" && r.Channel != f.Channel) ||
			(f.Tenant != "" && r.Tenant != f.Tenant) || (!f.Since.IsZero() && r.CreatedAt.Before(f.Since)) {
			continue
		}
		c := *r
		c.Attempts, c.providerKeys = nil, nil
		out = append(out, c)
		if len(out) >= f.Limit {
			break
		}
	}
	return out
}

// mqttEventPrefix makes an event's routing key its key on the MQTT
// exchange: MQTT topic ums/events/<key with / for .>.
const mqttEventPrefix = "ums.events."

// eventKeys are the routing keys of events on ums.events and on the MQTT
// exchange, by status and channel, made once: an event is looked at at
// every step of every notification, mostly to find that nobody listens.
type eventKeys struct{ key, mqtt string }

var knownEventKeys = func() map[string]map[string]eventKeys {
	m := make(map[string]map[string]eventKeys)
	for _, st := range []string{notify.StatusQueued, notify.StatusScheduled, notify.StatusSending, notify.StatusSent,
		notify.StatusDelivered, notify.StatusRetrying, notify.StatusRateLimited, notify.StatusFailed,
		notify.StatusExpired, notify.StatusDeadLettered, notify.StatusDeduplicated} {
		m[st] = make(map[string]eventKeys)
		for _, ch := range []string{"", notify.ChannelEmail, notify.ChannelWebhook, notify.ChannelSMS, notify.ChannelPush} {
			k := notify.EventKey(st, ch)
			m[st][ch] = eventKeys{k, mqttEventPrefix + k}
		}
	}
	return m
}()

// keysOf returns the routing keys of an event.
func keysOf(status, channel string) eventKeys {
	if k, ok := knownEventKeys[status][channel]; ok {
		return k
	}
	k := notify.EventKey(status, channel)
	return eventKeys{k, mqttEventPrefix + k}
}

// exchange returns the vhost's exchange named name, cached in c until it
// is deleted; nil when there is none.
func (s *vstate) exchange(c *atomic.Pointer[core.Exchange], name string) *core.Exchange {
	if x := c.Load(); x != nil && !x.Deleted() {
		return x
	}
	x, err := s.v.Exchange(name)
	if err != nil {
		return nil
	}
	c.Store(x)
	return x
}

func classOf(n *notify.Notification) string {
	if n.Class == "" {
		return notify.ClassTransactional
	}
	return n.Class
}

// event records a status change of j and publishes it to ums.events.
func (s *vstate) event(r *core.Router, j *job, status, errText string, a *Attempt) {
	now := s.p.clk.Now()
	s.p.status.update(j.ID, status, j.channel(), errText, now, a)
	s.publishEvent(r, notify.Event{ID: j.ID, Status: status, Channel: j.channel(), Attempt: j.Hops,
		Error: errText, At: now, Tenant: j.N.Tenant, Tags: j.N.Tags})
}

// publishEvent publishes e to ums.events. Events are persistent (durable
// subscriber queues keep them across restarts); the pipeline does not wait
// for them to be stored.
func (s *vstate) publishEvent(r *core.Router, e notify.Event) {
	s.p.counters.event(e.Channel, e.Status)
	if f := s.p.o.OnEvent; f != nil {
		f(e.Channel, e.Status)
	}
	keys := keysOf(e.Status, e.Channel)
	key := keys.key
	evX := s.exchange(&s.eventsX, notify.EventsExchange)
	var mqX *core.Exchange
	if name := s.p.o.MQTTExchange; name != "" {
		mqX = s.exchange(&s.mqttX, name)
	}
	if evX != nil && !evX.Routes(key) && (mqX == nil || !mqX.Routes(keys.mqtt)) {
		return // nobody listens: skip encoding and routing the event
	}
	msg := &core.Message{Exchange: notify.EventsExchange, RoutingKey: key, Body: e.Body(), Props: core.Properties{
		ContentType: "application/json", DeliveryMode: core.Persistent, CorrelationID: e.ID,
		Timestamp: e.At, Type: "notification." + e.Status,
	}}
	var err error
	if evX != nil {
		_, err = s.v.PublishTo(r, evX, msg, func(error) {})
	} else {
		_, err = s.v.Publish(r, notify.EventsExchange, msg, func(error) {}) // says it is missing
	}
	if err != nil {
		s.p.log.Warn("notification event not published", "id", e.ID, "status", e.Status, "err", err)
	}
	// MQTT clients subscribe to ums/events/#: the same event goes to the
	// MQTT exchange under ums.events.<key> (an exchange binding cannot
	// prefix keys).
	if mqX != nil {
		m := *msg
		m.Exchange, m.RoutingKey = mqX.Name, keys.mqtt
		if _, err := s.v.PublishTo(r, mqX, &m, func(error) {}); err != nil && !errors.Is(err, core.ErrNotFound) {
			s.p.log.Warn("notification event not published to MQTT", "id", e.ID, "status", e.Status, "err", err)
		}
	}
}
