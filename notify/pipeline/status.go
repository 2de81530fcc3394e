package pipeline

import (
	"errors"
	"sync"
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

// statusStore keeps the most recent notifications in memory, the oldest
// dropped first. It is not durable: after a restart, a notification is
// known again from its next step (a worker taking it, the dead-letter
// queue).
type statusStore struct {
	mu    sync.Mutex
	max   int
	byID  map[string]*Record
	order []string // ring of ids in creation order
	head  int
	// byProvider finds a notification by its provider's message id
	// (provider + ":" + id), for delivery reports such as Twilio's status
	// callbacks.
	byProvider map[string]string
}

func newStatusStore(max int) *statusStore {
	return &statusStore{max: max, byID: make(map[string]*Record), byProvider: make(map[string]string)}
}

func (st *statusStore) create(j *job, vhost, status string, now time.Time) {
	n := j.N
	r := &Record{Vhost: vhost, ID: j.ID, Status: status, Channel: j.channel(), Channels: j.Channels, Class: classOf(n),
		Priority: n.PriorityOf(), Tenant: n.Tenant, Tags: n.Tags, CreatedAt: j.Accepted, UpdatedAt: now,
		Attempts: []Attempt{}}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.insertLocked(r)
}

func (st *statusStore) insertLocked(r *Record) {
	if _, ok := st.byID[r.ID]; ok {
		return
	}
	if len(st.order) < st.max {
		st.order = append(st.order, r.ID)
	} else {
		if old := st.byID[st.order[st.head]]; old != nil {
			for _, k := range old.providerKeys {
				delete(st.byProvider, k)
			}
		}
		delete(st.byID, st.order[st.head])
		st.order[st.head] = r.ID
		st.head = (st.head + 1) % st.max
	}
	st.byID[r.ID] = r
}

// ensure makes sure j has a record (after a restart), without changing it.
func (st *statusStore) ensure(j *job, vhost, status string, now time.Time) {
	st.mu.Lock()
	_, ok := st.byID[j.ID]
	st.mu.Unlock()
	if !ok {
		st.create(j, vhost, status, now)
	}
}

// update sets a notification's status and adds an attempt to its history
// when a is not nil.
func (st *statusStore) update(id, status, channel string, attempt int, errText string, now time.Time, a *Attempt) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	if !ok {
		return
	}
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
		st.byProvider[k] = id
		r.providerKeys = append(r.providerKeys, k)
	}
}

// byProviderID returns the record of the notification a provider knows as
// providerID.
func (st *statusStore) byProviderID(provider, providerID string) (Record, bool) {
	st.mu.Lock()
	id, ok := st.byProvider[provider+":"+providerID]
	st.mu.Unlock()
	if !ok {
		return Record{}, false
	}
	return st.get(id)
}

// current returns a notification's status ("accepted" when it is no longer
// or not yet known here).
func (st *statusStore) current(id string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if r, ok := st.byID[id]; ok {
		return r.Status
	}
	return "accepted"
}

// get returns a copy of a record.
func (st *statusStore) get(id string) (Record, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
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
	st.mu.Lock()
	defer st.mu.Unlock()
	out := []Record{}
	n := len(st.order)
	for i := range n {
		// newest first: the slot before head (0 until the ring is full),
		// going backwards
		idx := (st.head - 1 - i + 2*n) % n
		r := st.byID[st.order[idx]]
		if r == nil || (f.Status != "" && r.Status != f.Status) || (f.Channel != "" && r.Channel != f.Channel) ||
			(f.Tenant != "" && r.Tenant != f.Tenant) || (!f.Since.IsZero() && r.CreatedAt.Before(f.Since)) {
			continue
		}
		c := *r
		c.Attempts = nil
		out = append(out, c)
		if len(out) >= f.Limit {
			break
		}
	}
	return out
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
	s.p.status.update(j.ID, status, j.channel(), j.Attempt, errText, now, a)
	s.publishEvent(r, &notify.Event{ID: j.ID, Status: status, Channel: j.channel(), Attempt: j.Hops,
		Error: errText, At: now, Tenant: j.N.Tenant, Tags: j.N.Tags})
}

// publishEvent publishes e to ums.events. Events are persistent (durable
// subscriber queues keep them across restarts); the pipeline does not wait
// for them to be stored.
func (s *vstate) publishEvent(r *core.Router, e *notify.Event) {
	msg := &core.Message{Exchange: notify.EventsExchange, RoutingKey: notify.EventKey(e.Status, e.Channel), Body: e.Body(), Props: core.Properties{
		ContentType: "application/json", DeliveryMode: core.Persistent, CorrelationID: e.ID,
		Timestamp: e.At, Type: "notification." + e.Status,
	}}
	if _, err := s.v.Publish(r, notify.EventsExchange, msg, func(error) {}); err != nil {
		s.p.log.Warn("notification event not published", "id", e.ID, "status", e.Status, "err", err)
	}
	// MQTT clients subscribe to ums/events/#: the same event goes to the
	// MQTT exchange under ums.events.<key> (an exchange binding cannot
	// prefix keys).
	if x := s.p.o.MQTTExchange; x != "" {
		m := *msg
		m.Exchange, m.RoutingKey = x, "ums.events."+msg.RoutingKey
		if _, err := s.v.Publish(r, x, &m, func(error) {}); err != nil && !errors.Is(err, core.ErrNotFound) {
			s.p.log.Warn("notification event not published to MQTT", "id", e.ID, "status", e.Status, "err", err)
		}
	}
}
