package clock

import (
	"reflect"
	"testing"
	"time"
)

func TestFakeRunsTimersInOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	var got []string
	var at []time.Duration
	record := func(name string) func() {
		return func() { got = append(got, name); at = append(at, f.Now().Sub(start)) }
	}
	f.AfterFunc(3*time.Second, record("c"))
	f.AfterFunc(1*time.Second, func() {
		record("a")()
		f.AfterFunc(500*time.Millisecond, record("a2")) // due within the same Advance
	})
	stopped := f.AfterFunc(2*time.Second, record("stopped"))
	reset := f.AfterFunc(time.Second, record("reset"))
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if !reset.Reset(10 * time.Second) {
		t.Fatal("Reset of a pending timer reported false")
	}
	f.Advance(5 * time.Second)
	if want := []string{"a", "a2", "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if want := []time.Duration{time.Second, 1500 * time.Millisecond, 3 * time.Second}; !reflect.DeepEqual(at, want) {
		t.Fatalf("ran at %v, want %v", at, want)
	}
	if f.Now().Sub(start) != 5*time.Second {
		t.Fatalf("clock shows %v after Advance(5s)", f.Now().Sub(start))
	}
	if f.Pending() != 1 {
		t.Fatalf("%d timers pending, want the reset one", f.Pending())
	}
	f.Advance(5 * time.Second)
	if got[len(got)-1] != "reset" {
		t.Fatalf("reset timer did not run at its new time: %v", got)
	}
	if stopped.Stop() {
		t.Fatal("Stop of a stopped timer reported true")
	}
}

func TestFakeChangedSignalsNewTimers(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("changed before any timer")
	default:
	}
	f.AfterFunc(time.Second, func() {})
	select {
	case <-ch:
	default:
		t.Fatal("arming a timer did not signal Changed")
	}
}
