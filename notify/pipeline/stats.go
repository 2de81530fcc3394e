package pipeline

import (
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// counters are the pipeline's delivery counters since start, served by
// GET /api/v1/stats (the console turns them into rates). They are atomics
// found through sync.Maps: after a key's first use, counting takes no lock.
type counters struct {
	events sync.Map // eventKey -> *atomic.Uint64
	sends  sync.Map // sendKey -> *sendCounter
}

type eventKey struct{ channel, status string }

type sendKey struct{ channel, provider string }

type sendCounter struct {
	ok, failed atomic.Uint64
	nanos      atomic.Uint64 // total time of the calls
}

func (c *counters) event(channel, status string) {
	k := eventKey{channel, status}
	v, ok := c.events.Load(k)
	if !ok {
		v, _ = c.events.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func (c *counters) send(channel, provider string, d time.Duration, err error) {
	k := sendKey{channel, provider}
	v, ok := c.sends.Load(k)
	if !ok {
		v, _ = c.sends.LoadOrStore(k, new(sendCounter))
	}
	s := v.(*sendCounter)
	if err != nil {
		s.failed.Add(1)
	} else {
		s.ok.Add(1)
	}
	if d > 0 {
		s.nanos.Add(uint64(d))
	}
}

// StatusCount is one channel's count of one status event.
type StatusCount struct {
	Channel string `json:"channel"`
	Status  string `json:"status"`
	Count   uint64 `json:"count"`
}

// ProviderCount is one provider's calls on one channel.
type ProviderCount struct {
	Channel  string  `json:"channel"`
	Provider string  `json:"provider"`
	OK       uint64  `json:"ok"`
	Failed   uint64  `json:"failed"`
	Seconds  float64 `json:"seconds"` // total time of the calls
}

// Stats are the pipeline's counters since start, sorted by channel.
type Stats struct {
	Channels  []string        `json:"channels"`
	Events    []StatusCount   `json:"events"`
	Providers []ProviderCount `json:"providers"`
}

// Stats returns the delivery counters since start.
func (p *Pipeline) Stats() Stats {
	st := Stats{Channels: append([]string{}, p.channels...), Events: []StatusCount{}, Providers: []ProviderCount{}}
	p.counters.events.Range(func(k, v any) bool {
		ek := k.(eventKey)
		st.Events = append(st.Events, StatusCount{Channel: ek.channel, Status: ek.status, Count: v.(*atomic.Uint64).Load()})
		return true
	})
	p.counters.sends.Range(func(k, v any) bool {
		sk, s := k.(sendKey), v.(*sendCounter)
		st.Providers = append(st.Providers, ProviderCount{Channel: sk.channel, Provider: sk.provider,
			OK: s.ok.Load(), Failed: s.failed.Load(), Seconds: float64(s.nanos.Load()) / 1e9})
		return true
	})
	sort.Slice(st.Events, func(i, j int) bool {
		a, b := st.Events[i], st.Events[j]
		return a.Channel < b.Channel || a.Channel == b.Channel && a.Status < b.Status
	})
	sort.Slice(st.Providers, func(i, j int) bool {
		a, b := st.Providers[i], st.Providers[j]
		return a.Channel < b.Channel || a.Channel == b.Channel && a.Provider < b.Provider
	})
	return st
}

func (p *Pipeline) getStats(w http.ResponseWriter, r *http.Request, s *vstate) {
	writeJSON(w, http.StatusOK, p.Stats())
}
