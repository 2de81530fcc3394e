//go:build linux

package netpark

import (
	"testing"
	"time"
)

// Exactly one of waking, the deadline and closing ends a parking.
func TestSlot(t *testing.T) {
	p := newPoller(t)

	t.Run("the deadline passes", func(t *testing.T) {
		a, b := pair(t)
		var s Slot
		wake, woke := woken()
		expire, expired := woken()
		if !s.Park(p, rawConn(t, b), time.Now().Add(50*time.Millisecond), wake, expire) {
			t.Fatal("Park refused")
		}
		expectWake(t, expired)
		a.Write([]byte("late"))
		expectNoWake(t, woke)
		if s.Close(p) {
			t.Fatal("Close won after the expiry")
		}
	})

	t.Run("bytes arrive first", func(t *testing.T) {
		a, b := pair(t)
		var s Slot
		woke := make(chan struct{}, 10)
		expire, expired := woken()
		if !s.Park(p, rawConn(t, b), time.Now().Add(200*time.Millisecond), func() { s.Woken(); woke <- struct{}{} }, expire) {
			t.Fatal("Park refused")
		}
		a.Write([]byte("x"))
		expectWake(t, woke)
		time.Sleep(300 * time.Millisecond)
		expectNoWake(t, expired)
		if s.Close(p) {
			t.Fatal("Close won after the wake")
		}
	})

	t.Run("closed while parked", func(t *testing.T) {
		a, b := pair(t)
		var s Slot
		wake, woke := woken()
		expire, expired := woken()
		if !s.Park(p, rawConn(t, b), time.Now().Add(100*time.Millisecond), wake, expire) {
			t.Fatal("Park refused")
		}
		if !s.Close(p) {
			t.Fatal("Close did not win on a parked slot")
		}
		b.Close()
		a.Write([]byte("x"))
		time.Sleep(200 * time.Millisecond)
		expectNoWake(t, woke)
		expectNoWake(t, expired)
		if s.Close(p) {
			t.Fatal("a second Close won")
		}
		if s.Park(p, rawConn(t, b), time.Time{}, wake, expire) {
			t.Fatal("Park after Close")
		}
	})
}
