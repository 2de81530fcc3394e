package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/clock"
)

// stubGuards answers with its name, or fails while broken.
type stubGuards struct {
	mu     sync.Mutex
	name   string
	broken bool
	calls  int
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (s *stubGuards) call() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.broken {
		return errDown
	}
	return nil
}

func (s *stubGuards) set(broken bool) {
	s.mu.Lock()
	s.broken = broken
	s.mu.Unlock()
}

func (s *stubGuards) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *stubGuards) Claim(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	if err := s.call(); err != nil {
		return "", false, err
	}
	return s.name, true, nil
}

func (s *stubGuards) Allow(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	if err := s.call(); err != nil {
		return false, 0, err
	}
	return true, time.Duration(len(s.name)), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), "\n")
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	lim := Limit{Rate: 1, Per: time.Second}
	for _, failOpen := range []bool{true, false} {
		name := "fail-closed"
		if failOpen {
			name = "fail-open"
		}
		t.Run(name, func(t *testing.T) {
			clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			primary, fallback := &stubGuards{name: "redis"}, &stubGuards{name: "embedded"}
			var logs syncBuffer
			f := NewFailover(primary, fallback, FailoverOptions{
				FailOpen: failOpen, Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if h, _ := f.Healthy(); !h {
				t.Fatal("unhealthy at start")
			}
			if holder, _, err := f.Claim(ctx, "k", "id", time.Minute); err != nil || holder != "redis" {
				t.Fatalf("Claim = %q, %v", holder, err)
			}

			primary.set(true)
			for i := range 3 {
				holder, _, err := f.Claim(ctx, "k", "id", time.Minute)
				_, retry, aerr := f.Allow(ctx, "k", lim)
				if failOpen {
					if err != nil || holder != "embedded" || aerr != nil || retry != time.Duration(len("embedded")) {
						t.Fatalf("call %d with the primary down: Claim = %q, %v; Allow = %v, %v", i, holder, err, retry, aerr)
					}
				} else if !errors.Is(err, ErrGuardUnavailable) || !errors.Is(aerr, ErrGuardUnavailable) {
					t.Fatalf("call %d with the primary down: Claim err %v, Allow err %v; want ErrGuardUnavailable", i, err, aerr)
				}
			}
			// Only the first call tried the primary: the next probe is due later.
			if n := primary.count(); n != 2 {
				t.Fatalf("primary called %d times, want 2", n)
			}
			h, why := f.Healthy()
			if h || !strings.Contains(why, "connection refused") {
				t.Fatalf("Healthy = %v, %q", h, why)
			}
			if failOpen != strings.Contains(why, "embedded") {
				t.Fatalf("Healthy's reason %q for failOpen %v", why, failOpen)
			}
			if n := logs.lines(); n != 1 {
				t.Fatalf("%d log lines, want 1", n)
			}

			// Probes every ProbeEvery, logged at most once a minute.
			for range 10 {
				clk.Advance(DefaultProbeEvery)
				f.Claim(ctx, "k", "id", time.Minute)
				f.Claim(ctx, "k", "id", time.Minute)
			}
			if n := primary.count(); n != 12 {
				t.Fatalf("primary called %d times in 10 probe intervals, want 12", n)
			}
			if n := logs.lines(); n != 1 {
				t.Fatalf("%d log lines within a minute, want 1", n)
			}
			clk.Advance(15 * time.Second) // a minute since the first line
			f.Claim(ctx, "k", "id", time.Minute)
			if n := logs.lines(); n != 2 {
				t.Fatalf("%d log lines after a minute, want 2", n)
			}

			// Back as soon as the primary answers a probe.
			primary.set(false)
			if holder, _, _ := f.Claim(ctx, "k", "id", time.Minute); holder == "redis" {
				t.Fatal("primary used before the next probe")
			}
			clk.Advance(DefaultProbeEvery)
			if holder, _, err := f.Claim(ctx, "k", "id", time.Minute); err != nil || holder != "redis" {
				t.Fatalf("after recovery Claim = %q, %v", holder, err)
			}
			if h, why := f.Healthy(); !h {
				t.Fatalf("unhealthy after recovery: %s", why)
			}
			if ok, retry, err := f.Allow(ctx, "k", lim); !ok || err != nil || retry != time.Duration(len("redis")) {
				t.Fatalf("after recovery Allow = %v, %v, %v", ok, retry, err)
			}
		})
	}
}

// The caller's own cancellation does not mark the primary down, and
// invalid arguments are refused before either store is asked.
func TestFailoverCallerErrors(t *testing.T) {
	primary, fallback := &stubGuards{name: "redis", broken: true}, &stubGuards{name: "embedded"}
	f := NewFailover(primary, fallback, FailoverOptions{FailOpen: true, Clock: clock.NewFake(time.Unix(0, 0))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Claim(ctx, "k", "id", time.Minute); err == nil {
		t.Fatal("no error")
	}
	if h, _ := f.Healthy(); !h {
		t.Fatal("a cancelled call marked the primary down")
	}
	if _, _, err := f.Claim(context.Background(), "k", "id", 0); err == nil {
		t.Fatal("Claim with ttl 0: no error")
	}
	if _, _, err := f.Allow(context.Background(), "k", Limit{}); err == nil {
		t.Fatal("Allow with an empty limit: no error")
	}
	// The fallback records the claim first (fail-open), then the primary
	// is asked.
	if primary.count() != 1 || fallback.count() != 1 {
		t.Fatalf("calls: primary %d, fallback %d", primary.count(), fallback.count())
	}
}

// mapGuards holds claims in a map, or fails while broken.
type mapGuards struct {
	stubGuards
	claims map[string]string
}

func (m *mapGuards) Claim(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	if err := m.call(); err != nil {
		return "", false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.claims[key]; ok {
		return h, false, nil
	}
	m.claims[key] = id
	return id, true, nil
}

// A key claimed before, during or after an outage of the primary is never
// claimed twice on the node, in both modes.
func TestFailoverClaimsSurviveOutages(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ failOpen, all bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		failOpen := c.failOpen
		clk := clock.NewFake(time.Unix(0, 0))
		primary := &mapGuards{claims: map[string]string{}}
		fallback := &mapGuards{claims: map[string]string{}}
		f := NewFailover(primary, fallback, FailoverOptions{FailOpen: failOpen, Clock: clk,
			Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))})
		claim := func(key, id string) (string, bool) {
			if c.all { // ClaimAll, with a claim of a key of its own alongside
				res := f.ClaimAll(ctx, []ClaimRequest{{Key: key, ID: id}, {Key: "other-" + id, ID: id}}, time.Hour)
				for _, r := range res {
					if r.Err != nil {
						t.Fatalf("failOpen %v: ClaimAll(%s, %s): %v", failOpen, key, id, r.Err)
					}
				}
				if res[1] != (ClaimResult{Holder: id, Claimed: true}) {
					t.Fatalf("failOpen %v: ClaimAll of a new key: %+v", failOpen, res[1])
				}
				return res[0].Holder, res[0].Claimed
			}
			h, c, err := f.Claim(ctx, key, id, time.Hour)
			if err != nil {
				t.Fatalf("failOpen %v: Claim(%s, %s): %v", failOpen, key, id, err)
			}
			return h, c
		}
		if h, c := claim("before", "a"); h != "a" || !c {
			t.Fatalf("first claim: %s %v", h, c)
		}
		primary.set(true)
		if failOpen {
			if h, c := claim("before", "b"); h != "a" || c {
				t.Fatalf("failOpen: during the outage a key from before: %s %v", h, c)
			}
			if h, c := claim("during", "c"); h != "c" || !c {
				t.Fatalf("failOpen: a new key during the outage: %s %v", h, c)
			}
		}
		primary.set(false)
		clk.Advance(DefaultProbeEvery)
		if h, c := claim("before", "d"); h != "a" || c {
			t.Fatalf("failOpen %v: after the outage a key from before: %s %v", failOpen, h, c)
		}
		if failOpen {
			if h, c := claim("during", "e"); h != "c" || c {
				t.Fatalf("after the outage a key from during it: %s %v", h, c)
			}
		}
	}
}

// AllowAll asks one store for every check: the primary while it answers,
// the fallback (fail-open) once it does not.
func TestFailoverAllowAll(t *testing.T) {
	primary, fallback := &stubGuards{name: "redis"}, &stubGuards{name: "embedded"}
	f := NewFailover(primary, fallback, FailoverOptions{FailOpen: true, Clock: clock.NewFake(time.Unix(0, 0)),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	checks := []LimitCheck{{Key: "a", Limit: Limit{Rate: 1, Per: time.Second}}, {Key: "b", Limit: Limit{Rate: 1, Per: time.Second}}}
	if ok, _, err := f.AllowAll(context.Background(), checks); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if primary.count() != 2 || fallback.count() != 0 {
		t.Fatalf("calls: primary %d, fallback %d", primary.count(), fallback.count())
	}
	primary.set(true)
	if ok, _, err := f.AllowAll(context.Background(), checks); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if primary.count() != 3 || fallback.count() != 2 {
		t.Fatalf("calls with the primary down: primary %d, fallback %d", primary.count(), fallback.count())
	}
	if _, _, err := f.AllowAll(context.Background(), []LimitCheck{{Key: "a"}}); err == nil {
		t.Fatal("AllowAll with an empty limit: no error")
	}
}
