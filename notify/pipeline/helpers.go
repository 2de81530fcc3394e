package pipeline

import "time"

// helpers run short tasks (accepting one notification of a batch) on
// goroutines that outlive a task. Accepting one notification runs deep
// (validation, the guards, storing) and grew a new goroutine's stack,
// copying it at each doubling: on a goroutine per notification that copy
// was a twentieth of the broker's CPU. A helper that is done waits a while
// (helperIdle) for the next task with its grown stack; run hands a task to
// one that waits, or starts a new one when none does, so a task that
// blocks holds up no other.
type helpers struct {
	handoff chan func() // unbuffered: taken only by a waiting helper
}

// helperIdle is how long a helper waits for a task before it exits.
const helperIdle = 2 * time.Second

// run runs f on a waiting helper, or on a new one.
func (h *helpers) run(f func()) {
	select {
	case h.handoff <- f:
	default:
		go h.loop(f)
	}
}

// loop runs f, then the tasks run hands it, until none came for
// helperIdle.
func (h *helpers) loop(f func()) {
	idle := time.NewTimer(helperIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(helperIdle)
		select {
		case f = <-h.handoff:
		case <-idle.C:
			return
		}
	}
}
