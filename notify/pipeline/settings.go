package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/notify"
)

// settings are the durable objects of the notification API: templates,
// tenants (quiet hours) and opt-outs. They are read on every notification
// and written rarely: reads take a read lock, writes go to the store first
// and are then made visible.
type settings struct {
	meta *store.Meta // nil: memory only

	mu        sync.RWMutex
	templates map[string]*storedTemplate
	tenants   map[string]*Tenant
	optouts   map[string]bool // optoutKey(tenant, address)
}

type storedTemplate struct {
	src      notify.Template
	compiled *notify.CompiledTemplate
}

// Tenant holds a tenant's settings (PUT /api/v1/tenants/{tenant}).
type Tenant struct {
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
}

// QuietHours is a daily window in a time zone during which advertising
// notifications are held.
type QuietHours struct {
	Start    string `json:"start"` // "21:00"
	End      string `json:"end"`   // "08:00"
	TimeZone string `json:"time_zone"`

	start, end int // minutes after midnight
	loc        *time.Location
}

// Store keys.
const (
	keyTemplate = "template\x00"
	keyTenant   = "tenant\x00"
	keyOptout   = "optout\x00"
)

func loadSettings(meta *store.Meta) (*settings, error) {
	s := &settings{meta: meta, templates: map[string]*storedTemplate{}, tenants: map[string]*Tenant{},
		optouts: map[string]bool{}}
	if meta == nil {
		return s, nil
	}
	for k, v := range meta.All() {
		switch {
		case strings.HasPrefix(k, keyTemplate):
			var t notify.Template
			if err := json.Unmarshal(v, &t); err != nil {
				return nil, fmt.Errorf("stored template %q: %w", k[len(keyTemplate):], err)
			}
			c, err := t.Compile()
			if err != nil {
				return nil, fmt.Errorf("stored template %q: %w", k[len(keyTemplate):], err)
			}
			s.templates[k[len(keyTemplate):]] = &storedTemplate{src: t, compiled: c}
		case strings.HasPrefix(k, keyTenant):
			var t Tenant
			if err := json.Unmarshal(v, &t); err != nil {
				return nil, fmt.Errorf("stored tenant %q: %w", k[len(keyTenant):], err)
			}
			if t.QuietHours != nil {
				if err := t.QuietHours.parse(); err != nil {
					return nil, fmt.Errorf("stored tenant %q: %w", k[len(keyTenant):], err)
				}
			}
			s.tenants[k[len(keyTenant):]] = &t
		case strings.HasPrefix(k, keyOptout):
			s.optouts[k[len(keyOptout):]] = true
		}
	}
	return s, nil
}

func (s *settings) put(key string, val []byte) error {
	if s.meta == nil {
		return nil
	}
	return s.meta.Put(key, val)
}

func (s *settings) del(key string) error {
	if s.meta == nil {
		return nil
	}
	return s.meta.Delete(key)
}

// putTemplate validates, stores and installs a template.
func (s *settings) putTemplate(id string, t notify.Template) error {
	c, err := t.Compile()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(t)
	if err := s.put(keyTemplate+id, b); err != nil {
		return err
	}
	s.mu.Lock()
	s.templates[id] = &storedTemplate{src: t, compiled: c}
	s.mu.Unlock()
	return nil
}

func (s *settings) template(id string) (*storedTemplate, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.templates[id]
	return t, ok
}

func (s *settings) deleteTemplate(id string) (bool, error) {
	if _, ok := s.template(id); !ok {
		return false, nil
	}
	if err := s.del(keyTemplate + id); err != nil {
		return false, err
	}
	s.mu.Lock()
	delete(s.templates, id)
	s.mu.Unlock()
	return true, nil
}

// templateVars is notify.Rules.Template.
func (s *settings) templateVars(id, locale string) ([]string, bool) {
	t, ok := s.template(id)
	if !ok {
		return nil, false
	}
	return t.compiled.Vars(locale)
}

func (s *settings) putTenant(name string, t Tenant) error {
	if t.QuietHours != nil {
		if err := t.QuietHours.parse(); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(t)
	if err := s.put(keyTenant+name, b); err != nil {
		return err
	}
	s.mu.Lock()
	s.tenants[name] = &t
	s.mu.Unlock()
	return nil
}

func (s *settings) tenant(name string) (*Tenant, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tenants[name]
	return t, ok
}

func (s *settings) deleteTenant(name string) (bool, error) {
	if _, ok := s.tenant(name); !ok {
		return false, nil
	}
	if err := s.del(keyTenant + name); err != nil {
		return false, err
	}
	s.mu.Lock()
	delete(s.tenants, name)
	s.mu.Unlock()
	return true, nil
}

// optoutKey normalizes an address: e-mail addresses compare without case.
func optoutKey(tenant, address string) string {
	return tenant + "\x00" + strings.ToLower(strings.TrimSpace(address))
}

func (s *settings) setOptout(tenant, address string, on bool) (bool, error) {
	k := optoutKey(tenant, address)
	s.mu.RLock()
	had := s.optouts[k]
	s.mu.RUnlock()
	if had == on {
		return had, nil
	}
	var err error
	if on {
		err = s.put(keyOptout+k, []byte{1})
	} else {
		err = s.del(keyOptout + k)
	}
	if err != nil {
		return had, err
	}
	s.mu.Lock()
	if on {
		s.optouts[k] = true
	} else {
		delete(s.optouts, k)
	}
	s.mu.Unlock()
	return had, nil
}

func (s *settings) optedOut(tenant, address string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.optouts[optoutKey(tenant, address)]
}

// parse checks the window and loads the time zone.
func (q *QuietHours) parse() error {
	var err error
	if q.start, err = clockMinutes(q.Start); err != nil {
		return &notify.InvalidError{Field: "quiet_hours.start", Reason: err.Error()}
	}
	if q.end, err = clockMinutes(q.End); err != nil {
		return &notify.InvalidError{Field: "quiet_hours.end", Reason: err.Error()}
	}
	if q.start == q.end {
		return &notify.InvalidError{Field: "quiet_hours.end", Reason: "the window is empty (start equals end)"}
	}
	tz := q.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if q.loc, err = time.LoadLocation(tz); err != nil {
		return &notify.InvalidError{Field: "quiet_hours.time_zone", Reason: "unknown time zone " + tz}
	}
	return nil
}

func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Until reports whether now is inside the window and, if so, when the
// window ends. A window whose start is after its end spans midnight
// (21:00–08:00).
func (q *QuietHours) Until(now time.Time) (time.Time, bool) {
	local := now.In(q.loc)
	m := local.Hour()*60 + local.Minute()
	y, mo, d := local.Date()
	endOn := func(day int) time.Time {
		return time.Date(y, mo, day, q.end/60, q.end%60, 0, 0, q.loc)
	}
	if q.start < q.end {
		if m >= q.start && m < q.end {
			return endOn(d), true
		}
		return time.Time{}, false
	}
	switch {
	case m >= q.start:
		return endOn(d + 1), true
	case m < q.end:
		return endOn(d), true
	}
	return time.Time{}, false
}
